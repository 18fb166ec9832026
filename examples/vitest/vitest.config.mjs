// Vitest runs each test file in a worker process (pool 'forks', at most 4 at a time). Before a file's
// tests, procslot-setup.mjs takes the worker's ID: a slot of one slot file that every run on this host
// shares, so two runs at once never hand out the same ID (VITEST_POOL_ID is unique within one run only).
//
//   npx vitest run --config examples/vitest/vitest.config.mjs
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  test: {
    include: ['test/*.test.mjs'],
    pool: 'forks',
    maxWorkers: 4,
    setupFiles: ['./procslot-setup.mjs'],
    // A test may wait for the other workers (BARRIER_DIR, see suite.mjs).
    testTimeout: 60_000,
  },
})
