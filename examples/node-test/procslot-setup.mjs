// node:test runs each test file in a process of its own (at most --test-concurrency at a time) and gives
// it no worker ID; it has no setup-file option either. So suite.mjs, which every test file imports,
// imports this first: the file's process takes a slot of a slot file shared by every test run on this
// host and keeps it until it exits. Its ID is unique among all the live test processes of all the runs,
// and a process that ends (or dies) frees it for the next one.
import os from 'node:os'
import path from 'node:path'

import { SlotTable } from 'procslot'

const file = process.env.PROCSLOT_SLOTS_FILE ?? path.join(os.tmpdir(), 'procslot-test-workers')
// Room for every test process of every run at once (4 per run here).
const table = SlotTable.open(file, { slots: Number(process.env.PROCSLOT_FLEET ?? 16) })
process.env.TEST_WORKER_ID = String(table.acquire())
process.env.TEST_WORKER_SLOT = process.env.TEST_WORKER_ID
