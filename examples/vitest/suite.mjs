// The suite's body, shared by the three test-runner examples: see ../test-runners/suite.cjs.
import suite from '../test-runners/suite.cjs'

export const { worker, useWorkerResources } = suite('vitest')
