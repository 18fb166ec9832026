// Jest runs the test files in worker processes (at most 4 at a time). In each worker, before each test
// file, procslot-setup.js takes the worker's ID: a slot of one slot file that every run on this host
// shares, so two runs at once never hand out the same ID (JEST_WORKER_ID is unique within one run only).
//
//   npx jest --config examples/jest/jest.config.js
'use strict'

module.exports = {
  rootDir: __dirname,
  testMatch: ['<rootDir>/test/*.test.js'],
  testEnvironment: 'node',
  transform: {}, // plain CommonJS: nothing to compile
  maxWorkers: 4,
  setupFiles: ['<rootDir>/procslot-setup.js'],
  // A test may wait for the other workers (BARRIER_DIR, see suite.js).
  testTimeout: 60_000,
}
