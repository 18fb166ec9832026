// The suite's body, shared by the three test-runner examples: see ../test-runners/suite.cjs. Its
// procslot-setup.mjs is imported first: node:test has no setup-file option, and each test file is a process.
import './procslot-setup.mjs'
import suite from '../test-runners/suite.cjs'

export const { worker, useWorkerResources } = suite('node-test')
