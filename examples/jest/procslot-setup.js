// Runs in every Jest worker process before each of its test files. The worker takes a slot of a slot file
// shared by every test run on this host and keeps it until it exits: its ID is unique among all the live
// workers of all the runs, and a worker that ends (or dies) frees it for the next one. A Jest worker runs
// many test files, each in a fresh module registry: this file runs again for each, and the process,
// which holds its slot already, gets the same one back.
//
// WORKER_IDS=runner uses Jest's own JEST_WORKER_ID instead: unique within one run only, so two runs at
// once give two workers the same ID — the bug this example exists to show.
'use strict'

const os = require('node:os')
const path = require('node:path')

const { SlotTable } = require('procslot')

if (process.env.WORKER_IDS === 'runner') {
  process.env.TEST_WORKER_ID = process.env.JEST_WORKER_ID
} else {
  const file = process.env.PROCSLOT_SLOTS_FILE ?? path.join(os.tmpdir(), 'procslot-test-workers')
  // Room for every worker of every run at once (4 per run here).
  const table = SlotTable.open(file, { slots: Number(process.env.PROCSLOT_FLEET ?? 16) })
  process.env.TEST_WORKER_ID = String(table.acquire())
  process.env.TEST_WORKER_SLOT = process.env.TEST_WORKER_ID
}
