// Runs in every Vitest worker process before each of its test files. The worker takes a slot of a slot
// file shared by every test run on this host and keeps it until it exits: its ID is unique among all the
// live workers of all the runs, and a worker that ends (or dies) frees it for the next one.
//
// WORKER_IDS=runner uses Vitest's own VITEST_POOL_ID instead: unique within one run only, so two runs at
// once give two workers the same ID — the bug this example exists to show.
import os from 'node:os'
import path from 'node:path'

import { SlotTable } from 'procslot'

if (process.env.WORKER_IDS === 'runner') {
  process.env.TEST_WORKER_ID = process.env.VITEST_POOL_ID
} else {
  const file = process.env.PROCSLOT_SLOTS_FILE ?? path.join(os.tmpdir(), 'procslot-test-workers')
  // Room for every worker of every run at once (4 per run here). A process that holds a slot already (with
  // isolate: false a worker runs several files) gets the same one back.
  const table = SlotTable.open(file, { slots: Number(process.env.PROCSLOT_FLEET ?? 16) })
  process.env.TEST_WORKER_ID = String(table.acquire())
  process.env.TEST_WORKER_SLOT = process.env.TEST_WORKER_ID
}
