// The suite's body, shared by the three test-runner examples: see ../test-runners/suite.cjs.
'use strict'

module.exports = require('../test-runners/suite.cjs')('jest')
