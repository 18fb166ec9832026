import test from 'ava'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

import {
  DEFAULT_SLOTS_FILE,
  MultiProcessClient,
  SlotFileError,
  SlotTable,
  SlotsExhaustedError,
  acquireMultiProcessConfig,
  defaultConfig,
  getProcessId,
  multiProcessConfig,
  newClient,
  newMultiProcessClient,
  newMultiProcessClientWithFile,
  releaseProcessId,
} from '../index.js'
import { Holder, JsonLines, tempDir } from './helpers.ts'

const CLIENT = fileURLToPath(new URL('./fixtures/client.cjs', import.meta.url))

/** A temporary directory with a slot file of exactly `slots` free slots (zeros: a new file gets more). */
function slotFile(t: { teardown: (fn: () => void) => void }, slots = 4): { dir: string; file: string } {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  writeFileSync(file, Buffer.alloc(8 * slots), { mode: 0o600 })
  return { dir, file }
}

/** Which slots hold a live process, and whose. */
function holders(file: string): Array<{ slot: number; pid: number }> {
  const table = SlotTable.open(file)
  try {
    return table
      .snapshot()
      .filter((s) => s.alive)
      .map(({ slot, pid }) => ({ slot, pid }))
  } finally {
    table.close()
  }
}

test('defaultConfig is single-process on the default slot file, a fresh object each time', (t) => {
  const config = defaultConfig()
  t.deepEqual(config, { concurrency: { processId: 0, processCount: 0, slotsFile: DEFAULT_SLOTS_FILE } })
  t.not(defaultConfig(), config)
  t.not(defaultConfig().concurrency, config.concurrency)
  config.concurrency.processCount = 4
  t.is(defaultConfig().concurrency.processCount, 0, 'editing a copy changes no other')
})

test('multiProcessConfig validates its arguments and returns a fresh, editable object', (t) => {
  t.deepEqual(multiProcessConfig(2, 4, '/run/x/slots'), {
    concurrency: { processId: 2, processCount: 4, slotsFile: '/run/x/slots' },
  })
  t.is(multiProcessConfig(0, 1).concurrency.slotsFile, DEFAULT_SLOTS_FILE)
  const config = multiProcessConfig(1, 2)
  config.concurrency.processId = 0
  t.is(multiProcessConfig(1, 2).concurrency.processId, 1)

  t.throws(() => multiProcessConfig(1.5, 4), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /processId .*must be an integer >= 0\. Received 1\.5/ })
  t.throws(() => multiProcessConfig(0, Number.NaN), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /processCount/ })
  t.throws(() => multiProcessConfig('1' as unknown as number, 4), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /processId.*"1"/ })
  t.throws(() => multiProcessConfig(-1, 4), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /processId .*>= 0\. Received -1/ })
  t.throws(() => multiProcessConfig(4, 4), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /processId .*below processCount \(4\)\. Received 4/ })
  t.throws(() => multiProcessConfig(0, 0), { instanceOf: RangeError })
  t.throws(() => multiProcessConfig(0, 2, ''), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE', message: /slotsFile/ })
})

test('acquireMultiProcessConfig takes this process ID as getProcessId does; processCount is the table size', (t) => {
  const { file } = slotFile(t, 6)
  const config = acquireMultiProcessConfig(file)
  t.deepEqual(config, { concurrency: { processId: 0, processCount: 6, slotsFile: file } })
  t.is(getProcessId(file), 0, 'the same ID')
  t.not(acquireMultiProcessConfig(file), config, 'a fresh object each time')
  t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }])
  t.true(releaseProcessId(file))
  t.deepEqual(holders(file), [])
})

test('acquireMultiProcessConfig throws SlotsExhaustedError on a full table and SlotFileError on a refused file', async (t) => {
  const { dir, file } = slotFile(t, 1)
  const holder = await Holder.start(file)
  t.teardown(() => holder.stop())
  t.is((await holder.ask('id')).id, 0)
  const full = t.throws(() => acquireMultiProcessConfig(file), { instanceOf: SlotsExhaustedError, code: 'ESLOTSFULL' })
  t.is(full?.slots, 1)
  t.regex(full?.message ?? '', new RegExp(file))

  mkdirSync(join(dir, 'a-directory'))
  t.throws(() => acquireMultiProcessConfig(join(dir, 'a-directory')), { instanceOf: SlotFileError, code: 'ENOTREG' })
})

test('newClient creates dataDir and uses the config as given, acquiring and releasing nothing', (t) => {
  const { dir, file } = slotFile(t)
  const dataDir = join(dir, 'data', 'deep', 'er')
  const client = newClient(dataDir, multiProcessConfig(3, 8, file))
  t.true(client instanceof MultiProcessClient)
  t.true(statSync(dataDir).isDirectory())
  t.is(client.dataDir, dataDir)
  t.is(client.processId, 3)
  t.is(client.processCount, 8)
  t.true(client.isMultiProcess)
  t.deepEqual(holders(file), [], 'nothing acquired')
  client.close()

  const single = newClient(join(dir, 'single'))
  t.deepEqual(single.config, defaultConfig())
  t.false(single.isMultiProcess)
  single.close()

  // An acquired config: the caller releases it, not the client.
  const acquired = acquireMultiProcessConfig(file)
  newClient(join(dir, 'data'), acquired).close()
  t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }], 'closing a newClient releases nothing')
  t.true(releaseProcessId(file))

  t.throws(() => newClient(dataDir, { concurrency: { processId: 5, processCount: 4, slotsFile: file } }), {
    instanceOf: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /config\.concurrency\.processId is out of range: it must be below processCount \(4\)\. Received 5/,
  })
  t.throws(() => newClient(dataDir, { concurrency: { processId: 1, processCount: 0, slotsFile: file } }), { instanceOf: RangeError })
  t.throws(() => newClient('', defaultConfig()), { instanceOf: TypeError, message: /dataDir/ })
})

test('newMultiProcessClient acquires from the slot file, freezes its config and releases the ID on close', (t) => {
  const { dir, file } = slotFile(t, 4)
  const client = newMultiProcessClient(join(dir, 'data'), { concurrency: { slotsFile: file } })
  t.is(client.processId, 0)
  t.is(client.processCount, 4)
  t.true(client.isMultiProcess)
  t.deepEqual(client.config, { concurrency: { processId: 0, processCount: 4, slotsFile: file } })
  t.true(Object.isFrozen(client.config))
  t.true(Object.isFrozen(client.config.concurrency))
  t.throws(() => {
    ;(client.config.concurrency as { processId: number }).processId = 2
  }, { instanceOf: TypeError })
  t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }])
  t.is(getProcessId(file), 0, 'one slot per process and file: getProcessId sees the same one')

  client.close()
  t.true(client.closed)
  t.deepEqual(holders(file), [], 'close released the ID')
  t.notThrows(() => client.close(), 'close is idempotent')
  t.is(client.processId, 0, 'a closed client still says what it was')
})

test('newMultiProcessClientWithFile is newMultiProcessClient with that file', (t) => {
  const { dir, file } = slotFile(t, 3)
  const client = newMultiProcessClientWithFile(join(dir, 'data'), file)
  t.deepEqual(client.config.concurrency, { processId: 0, processCount: 3, slotsFile: file })
  client.close()
  t.deepEqual(holders(file), [])
  t.throws(() => newMultiProcessClientWithFile(join(dir, 'data'), ''), { instanceOf: TypeError, message: /slotsFile/ })
})

test('a multi-process config is used as given: nothing acquired, nothing released', (t) => {
  const { dir, file } = slotFile(t, 4)
  const client = newMultiProcessClient(join(dir, 'data'), multiProcessConfig(2, 3, file))
  t.deepEqual(client.config.concurrency, { processId: 2, processCount: 3, slotsFile: file })
  t.deepEqual(holders(file), [])
  client.close()

  const partial = newMultiProcessClient(join(dir, 'data'), { concurrency: { processCount: 5, processId: 4 } })
  t.deepEqual(partial.config.concurrency, { processId: 4, processCount: 5, slotsFile: DEFAULT_SLOTS_FILE })
  partial.close()

  t.throws(() => newMultiProcessClient(join(dir, 'data'), { concurrency: { processCount: 3, processId: 3 } }), {
    instanceOf: RangeError,
  })
  t.throws(() => newMultiProcessClient(join(dir, 'data'), { concurrency: { processCount: 2.5 } }), { instanceOf: RangeError })
})

test('clients of one file in one process share its slot, released when the last one closes', (t) => {
  const { dir, file } = slotFile(t, 4)
  const a = newMultiProcessClientWithFile(join(dir, 'a'), file)
  const b = newMultiProcessClientWithFile(join(dir, 'b'), file)
  t.is(a.processId, b.processId)
  a.close()
  t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }], 'b still uses the slot')
  b.close()
  t.deepEqual(holders(file), [])
})

test('a client does not release a slot this process held before it (getProcessId keeps it)', (t) => {
  const { dir, file } = slotFile(t, 4)
  const table = SlotTable.open(file)
  t.is(table.acquire({ preferred: 2 }), 2)
  const client = newMultiProcessClientWithFile(join(dir, 'data'), file)
  t.is(client.processId, 2)
  client.close()
  t.is(table.held, 2, 'the table that took the slot still holds it')
  table.close()
  t.deepEqual(holders(file), [])

  t.is(getProcessId(file), 0)
  newMultiProcessClientWithFile(join(dir, 'data'), file).close()
  t.is(getProcessId(file), 0)
  t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }])
  t.true(releaseProcessId(file))
})

test('owns and ownedShards partition the shards exactly across all IDs', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  for (const processCount of [2, 3, 4, 7, 16]) {
    const clients = Array.from({ length: processCount }, (_, id) => newClient(dir, multiProcessConfig(id, processCount)))
    for (const total of [0, 1, processCount - 1, processCount, 5, 64, 101]) {
      const owners = new Map<number, number>()
      for (const c of clients) {
        const shards = c.ownedShards(total)
        t.deepEqual(shards, [...shards].sort((x, y) => x - y), 'in increasing order')
        for (const shard of shards) {
          t.false(owners.has(shard), `shard ${shard} of ${total} has two owners`)
          owners.set(shard, c.processId)
        }
      }
      t.is(owners.size, total, `every one of ${total} shards is owned (${processCount} processes)`)
      for (let shard = 0; shard < total; shard++) {
        t.is(clients.filter((c) => c.owns(shard)).map((c) => c.processId).join(), String(owners.get(shard)))
      }
    }
    for (const c of clients) c.close()
  }
  const single = newClient(dir)
  t.deepEqual(single.ownedShards(4), [0, 1, 2, 3])
  t.true(single.owns(12345))
  t.throws(() => single.owns(-1), { instanceOf: RangeError })
  t.throws(() => single.owns(0.5), { instanceOf: RangeError })
  t.throws(() => single.ownedShards(Number.POSITIVE_INFINITY), { instanceOf: RangeError })
  single.close()
})

test('when dataDir cannot be created, the acquired ID is released before the error is thrown', (t) => {
  const { dir, file } = slotFile(t, 2)
  const notADir = join(dir, 'a-file')
  writeFileSync(notADir, '')
  const err = t.throws(() => newMultiProcessClientWithFile(join(notADir, 'data'), file), { code: 'ENOTDIR' })
  t.truthy(err)
  t.deepEqual(holders(file), [], 'the slot is free again')
  const table = SlotTable.open(file)
  t.is(table.held, -1, 'this process holds nothing')
  table.close()
  const client = newMultiProcessClientWithFile(join(dir, 'data'), file)
  t.is(client.processId, 0)
  client.close()
})

test('a full table or a refused file throws, leaving nothing held and no dataDir', async (t) => {
  const { dir, file } = slotFile(t, 1)
  const holder = await Holder.start(file)
  t.teardown(() => holder.stop())
  t.is((await holder.ask('id')).id, 0)
  t.throws(() => newMultiProcessClientWithFile(join(dir, 'data'), file), { instanceOf: SlotsExhaustedError, code: 'ESLOTSFULL' })
  t.false(existsSync(join(dir, 'data')))
  t.throws(() => newMultiProcessClientWithFile(join(dir, 'data'), dir), { instanceOf: SlotFileError, code: 'ENOTREG' })
  t.deepEqual(holders(file), [{ slot: 0, pid: holder.pid }])
})

test('`using` closes the client at the end of the block', (t) => {
  const { dir, file } = slotFile(t, 2)
  let seen: MultiProcessClient
  {
    using client = newMultiProcessClientWithFile(join(dir, 'data'), file)
    seen = client
    t.is(client.processId, 0)
    t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }])
  }
  t.true(seen.closed)
  t.deepEqual(holders(file), [])

  const explicit = newMultiProcessClientWithFile(join(dir, 'data'), file)
  explicit[Symbol.dispose]()
  t.true(explicit.closed)
  t.deepEqual(holders(file), [])
})

test('client processes get distinct IDs; a slot is freed by close() and when its process exits without close()', async (t) => {
  const { dir, file } = slotFile(t, 3)
  const start = async (): Promise<JsonLines> => {
    const child = new JsonLines(CLIENT, [file, join(dir, 'data')])
    t.teardown(() => child.kill())
    await child.next('the client to open')
    return child
  }
  const children: JsonLines[] = []
  for (let i = 0; i < 3; i++) children.push(await start())
  const ids = await Promise.all(children.map(async (c) => (await c.ask('info')).processId))
  t.deepEqual(ids, [0, 1, 2])
  t.deepEqual(
    holders(file).map((h) => h.pid),
    children.map((c) => c.child.pid),
  )

  // A fourth finds the table full.
  const fourth = new JsonLines(CLIENT, [file, join(dir, 'data')])
  t.like(await fourth.next('the refusal'), { error: 'SlotsExhaustedError', code: 'ESLOTSFULL' })
  t.is((await fourth.exited).code, 3)

  // close() frees slot 1 while its process lives on.
  t.like(await children[1]!.ask('close'), { closed: true, processId: 1 })
  t.deepEqual(holders(file).map((h) => h.slot), [0, 2])

  // Slot 2's process exits without close(): its slot is free the moment it is gone.
  t.deepEqual(await children[2]!.stop(), { code: 0, signal: null })
  t.deepEqual(holders(file).map((h) => h.slot), [0])

  // SIGKILL: the same.
  await children[0]!.kill()
  t.deepEqual(holders(file), [])

  const next = await start()
  t.is((await next.ask('info')).processId, 0)
  t.is((await next.ask('info')).processCount, 3)
})

test('the fleet size: concurrency.slots and acquireMultiProcessConfig({ slots }) make a new file exactly that big', (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const client = newMultiProcessClient(join(dir, 'data'), { concurrency: { slotsFile: join(dir, 'a'), slots: 3 } })
  t.teardown(() => client.close())
  t.is(client.processCount, 3)
  t.is(statSync(join(dir, 'a')).size, 24)
  const config = acquireMultiProcessConfig(join(dir, 'b'), { slots: 1 })
  t.teardown(() => releaseProcessId(join(dir, 'b')))
  t.deepEqual(config.concurrency, { processId: 0, processCount: 1, slotsFile: join(dir, 'b') })
  t.throws(() => newMultiProcessClient(join(dir, 'data'), { concurrency: { slots: 0 } }), { instanceOf: RangeError })
  t.throws(() => acquireMultiProcessConfig(join(dir, 'c'), { slots: 1.5 }), { instanceOf: RangeError })
})

test('with waitMs or a signal, newMultiProcessClient and acquireMultiProcessConfig wait for a free slot', async (t) => {
  const { dir, file } = slotFile(t, 1)
  const holder = await Holder.start(file)
  t.teardown(() => holder.stop())
  t.is((await holder.ask('id')).id, 0)

  await t.throwsAsync(newMultiProcessClient(join(dir, 'data'), { concurrency: { slotsFile: file }, waitMs: 100 }), {
    instanceOf: SlotsExhaustedError,
  })
  const controller = new AbortController()
  const aborted = acquireMultiProcessConfig(file, { signal: controller.signal })
  controller.abort(new Error('stop'))
  await t.throwsAsync(aborted, { message: 'stop' })

  const waiting = newMultiProcessClient(join(dir, 'data'), { concurrency: { slotsFile: file }, waitMs: 60_000 })
  t.true(waiting instanceof Promise)
  await holder.ask('release')
  const client = await waiting
  t.is(client.processId, 0)
  t.is(client.processCount, 1)
  t.deepEqual(holders(file), [{ slot: 0, pid: process.pid }])
  client.close()
  t.deepEqual(holders(file), [], 'close gives the waited-for slot back')

  const config = await acquireMultiProcessConfig(file, { waitMs: 1000 })
  t.is(config.concurrency.processId, 0)
  t.is(getProcessId(file), 0)
  t.true(releaseProcessId(file))
})
