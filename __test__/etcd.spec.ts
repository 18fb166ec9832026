// Slots across hosts, against a real etcd (Debian's etcd-server) started on loopback ports: holders are
// separate processes (fixtures/etcd-holder.cjs) racing, killed, stopped past their TTL, and the server
// itself restarted or a cluster member killed — never two live holders of one slot.
import test, { type ExecutionContext } from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import type { Etcd3 } from 'etcd3'

import { EtcdError, EtcdSlotTable, ProcslotError, SlotsExhaustedError, newMultiProcessClient } from '../index.js'
import { EtcdCluster, etcdInstalled, freePort } from './fixtures/etcd-server.ts'
import { deadline, inCI, tempDir, TIME_SCALE } from './helpers.ts'

const HOLDER = fileURLToPath(new URL('./fixtures/etcd-holder.cjs', import.meta.url))
const README = fileURLToPath(new URL('../README.md', import.meta.url))

// CI installs etcd-server: there a missing etcd fails instead of skipping.
const etcdTest = etcdInstalled || inCI ? test : test.skip
const etcdSerial = etcdInstalled || inCI ? test.serial : test.skip

const tmp = tempDir('procslot-etcd-')
let shared: EtcdCluster | null = null
let prefixes = 0

/** A fresh key prefix on the shared server, so tests never see each other's slots. */
function prefix(): string {
  return `/procslot-test/${process.pid}/${++prefixes}`
}

test.before(async () => {
  if (etcdInstalled) shared = await EtcdCluster.start(join(tmp.dir, 'shared'), 1)
  else if (inCI) throw new Error('etcd is not installed: .ci/run installs Debian\'s etcd-server')
})

test.after.always(async () => {
  await shared?.stop()
  tmp.cleanup()
})

type Message = { pid: number; reply?: string; event?: string; [key: string]: unknown }

/** A holder process: commands on stdin, JSON replies and events on stdout. */
class Holder {
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly messages: Message[] = []
  #waiters: Array<() => void> = []
  #stderr = ''

  constructor(options: Record<string, unknown>) {
    // Unless a test sets it, a holder's call deadline is 20 s (times TIME_SCALE), not the default 5 s: its
    // first call comes after Node.js and gRPC start, which took more than 5 s for one holder among the
    // suite's workers on one CPU (taskset -c 0), and for 34 holders starting at once under emulation.
    // Losses are by the holder's own clock (TTL - margin), not by this deadline.
    if (options.callTimeoutMs === undefined) options = { ...options, callTimeoutMs: 20_000 * TIME_SCALE }
    this.child = spawn(process.execPath, [HOLDER, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })))
    this.child.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()))
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.messages.push(JSON.parse(line) as Message)
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  static async start(options: Record<string, unknown>): Promise<Holder> {
    const holder = new Holder(options)
    // A holder that is not ready in time is not left running (it would keep the test's worker alive).
    await holder.waitFor((m) => m.event === 'ready', 'ready').catch((error: unknown) => {
      holder.child.kill('SIGKILL')
      throw error
    })
    return holder
  }

  /** The first message (not yet taken) that matches; taken from the list. */
  async waitFor(match: (m: Message) => boolean, what: string, ms = 30_000): Promise<Message> {
    const find = () => {
      const i = this.messages.findIndex((m) => m.event === 'failed' || match(m))
      return i < 0 ? undefined : this.messages.splice(i, 1)[0]
    }
    const died = this.exited.then(({ code, signal }) => {
      throw new Error(`holder exited (${code ?? signal}) before ${what}; stderr: ${this.#stderr}`)
    })
    died.catch(() => {})
    const found = await deadline(
      Promise.race([
        (async () => {
          for (;;) {
            const m = find()
            if (m) return m
            await new Promise<void>((resolve) => this.#waiters.push(resolve))
          }
        })(),
        died,
      ]),
      ms,
      `${what} from holder ${this.child.pid}`,
    )
    if (found.event === 'failed') throw new Error(`holder failed: ${JSON.stringify(found)}`)
    return found
  }

  /** Sends a command and returns its reply. */
  async ask(command: string, ms?: number): Promise<Message> {
    this.child.stdin!.write(command + '\n')
    const name = command.split(' ')[0]
    return this.waitFor((m) => m.reply === name, command, ms)
  }

  signal(signal: NodeJS.Signals): void {
    process.kill(this.child.pid!, signal)
  }

  /** Closes stdin (the holder closes its table and must then exit by itself) and waits for the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.stdin!.end()
    return deadline(this.exited, 30_000, `holder ${this.child.pid} to exit after its stdin closed`)
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    await deadline(this.exited, 30_000, 'the holder to die')
  }
}

/** Stops every holder; each must exit by itself once its table is closed (nothing left running). */
async function stopAll(t: ExecutionContext, holders: Holder[]): Promise<void> {
  const results = await Promise.allSettled(
    holders.map(async (h) => {
      if (h.child.exitCode === null && h.child.signalCode === null) h.signal('SIGCONT')
      return h.stop()
    }),
  )
  await Promise.all(holders.map((h) => h.kill()))
  for (const r of results) {
    if (r.status === 'rejected') t.fail(String(r.reason))
    else if (r.value.signal === null) t.is(r.value.code, 0)
  }
}

/** Slot → PIDs of the holders that claim it now (`held`, which checks each holder's clock). */
async function claims(holders: Holder[]): Promise<Map<number, number[]>> {
  const map = new Map<number, number[]>()
  for (const h of holders) {
    if (h.child.exitCode !== null || h.child.signalCode !== null) continue
    const { held } = await h.ask('held')
    if (typeof held === 'number' && held >= 0) map.set(held, [...(map.get(held) ?? []), h.child.pid!])
  }
  return map
}

/**
 * Puts `key` on `lease`; `expired` resolves when etcd has deleted the key, i.e. when it expired the lease:
 * the server's own word that a TTL passed without a keep-alive of it. The watch starts at the put's
 * revision, so a delete before the watch was open is not missed.
 */
async function expiry(raw: Etcd3, key: string, lease: string): Promise<{ expired: Promise<void> }> {
  const { header } = await raw.put(key).value('sentinel').lease(lease).exec()
  const watcher = await raw.watch().key(key).startRevision(header.revision).create()
  const gone = new Promise<void>((resolve) => watcher.once('delete', () => resolve()))
  return { expired: gone.finally(() => watcher.cancel()) }
}

/** A bare etcd3 client (for what a table does not do: revoking its lease behind it, a sentinel key). */
async function rawClient(endpoint: string): Promise<Etcd3> {
  const { Etcd3 } = await import('etcd3')
  return new Etcd3({ hosts: endpoint })
}

// ---------------------------------------------------------------------------------------------------

test('options are checked with clear argument errors', async (t) => {
  const ok = { endpoints: 'http://127.0.0.1:1', prefix: '/p', slots: 4 }
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ...ok, endpoints: [] }, 'ERR_INVALID_ARG_VALUE'],
    [{ ...ok, endpoints: 7 }, 'ERR_INVALID_ARG_TYPE'],
    [{ ...ok, endpoints: ['a', ''] }, 'ERR_INVALID_ARG_VALUE'],
    [{ ...ok, prefix: '' }, 'ERR_INVALID_ARG_VALUE'],
    [{ ...ok, prefix: '/' }, 'ERR_INVALID_ARG_VALUE'],
    [{ ...ok, prefix: 5 }, 'ERR_INVALID_ARG_TYPE'],
    [{ ...ok, slots: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ ...ok, slots: 1.5 }, 'ERR_OUT_OF_RANGE'],
    [{ ...ok, slots: '4' }, 'ERR_INVALID_ARG_TYPE'],
    [{ ...ok, ttlSeconds: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ ...ok, ttlSeconds: 2, marginMs: 1500 }, 'ERR_OUT_OF_RANGE'],
    [{ ...ok, auth: 'x' }, 'ERR_INVALID_ARG_TYPE'],
  ]
  for (const [options, code] of cases) {
    await t.throwsAsync(EtcdSlotTable.open(options as never), { code }, JSON.stringify(options))
  }
  await t.throwsAsync(EtcdSlotTable.open(undefined as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
})

etcdTest('an unreachable etcd is an EtcdError EETCDUNAVAILABLE, within the call deadline', async (t) => {
  const port = await freePort() // nothing listens there
  const err = await t.throwsAsync(
    EtcdSlotTable.open({ endpoints: `127.0.0.1:${port}`, prefix: prefix(), slots: 2, callTimeoutMs: 2000 }),
    { instanceOf: EtcdError, code: 'EETCDUNAVAILABLE' },
  )
  t.regex(err!.message, new RegExp(`127\\.0\\.0\\.1:${port}.*unreachable`))
  t.true(err instanceof ProcslotError)
  t.deepEqual(err!.endpoints, [`127.0.0.1:${port}`])
})

etcdTest('acquire, preferred, snapshot, release and close on one table', async (t) => {
  const p = prefix()
  const a = await EtcdSlotTable.open({ endpoints: shared!.endpoint, prefix: p, slots: 3 })
  const b = await EtcdSlotTable.open({ endpoints: [shared!.endpoint], prefix: p + '/', slots: 3 })
  try {
    t.is(a.held, -1)
    t.is(await a.acquire({ preferred: 2 }), 2)
    t.is(await a.acquire(), 2, 'a table holds one slot: acquiring again returns it')
    t.is(a.held, 2)
    t.true(a.validForMs > 0)
    t.is(await b.acquire({ preferred: 2 }), 0, 'a held preferred slot: the lowest free one instead')
    const snap = await a.snapshot()
    t.deepEqual(
      snap.map((s) => [s.slot, s.alive, s.pid, s.self]),
      [
        [0, true, process.pid, false],
        [1, false, 0, false],
        [2, true, process.pid, true],
      ],
    )
    t.true(snap[2]!.since instanceof Date)
    t.is(typeof snap[2]!.host, 'string')
    t.regex(snap[2]!.revision!, /^[1-9][0-9]*$/)
    t.is(a.token, snap[2]!.revision, "the table's fencing token is its key's create revision")
    t.true(BigInt(b.token!) > BigInt(a.token!), 'a later holder has a larger token')
    t.not(snap[2]!.lease, snap[0]!.lease)
    t.true(await b.release())
    t.false(await b.release(), 'release is idempotent')
    t.is(b.held, -1)
    t.false((await a.snapshot())[0]!.alive)
    t.is(await b.acquire(), 0)
    t.is((await b.snapshot())[0]!.lease, snap[0]!.lease, "release kept the table's lease: the next acquire is one transaction on it")
  } finally {
    await Promise.all([a.close(), b.close()])
  }
  t.true(a.closed)
  await t.throwsAsync(a.acquire(), { instanceOf: EtcdError, code: 'ECLOSED' })
  await a.close()
  // Both closed tables gave their slots back.
  const c = await EtcdSlotTable.open({ endpoints: shared!.endpoint, prefix: p, slots: 3 })
  t.deepEqual(
    (await c.snapshot()).map((s) => s.alive),
    [false, false, false],
  )
  await c.close()
})

etcdSerial('32 processes racing on 32 slots get 32 distinct IDs; of 34, one fails at once, one waits', async (t) => {
  const options = { endpoints: shared!.endpoint, prefix: prefix(), slots: 32 }
  const holders: Holder[] = []
  try {
    // Every holder that started is stopped, even when another was not ready in time.
    const started = await Promise.allSettled(Array.from({ length: 34 }, () => Holder.start(options)))
    for (const r of started) if (r.status === 'fulfilled') holders.push(r.value)
    for (const r of started) if (r.status === 'rejected') throw r.reason
    const first = holders.slice(0, 32)
    // Each holder is ready before any acquires: the 32 claims race against each other.
    const replies = await Promise.all(first.map((h) => h.ask('acquire')))
    const slots = replies.map((r) => r.slot as number)
    t.deepEqual([...new Set(slots)].sort((x, y) => x - y), Array.from({ length: 32 }, (_, i) => i), JSON.stringify(replies))

    const [late, waiter] = [holders[32]!, holders[33]!]
    t.like(await late.ask('acquire'), { error: 'SlotsExhaustedError', code: 'ESLOTSFULL' })
    t.like(await late.ask('wait 200'), { error: 'SlotsExhaustedError', code: 'ESLOTSFULL' }, 'a short wait times out')
    waiter.child.stdin!.write('wait 60000\n')
    const freed = first[7]!
    t.like(await freed.ask('release'), { released: true })
    const got = await waiter.waitFor((m) => m.reply === 'wait', 'the waiter to get a slot')
    t.is(got.slot, slots[7], 'the waiter takes the slot that was freed')

    const claimed = await claims(holders)
    t.is(claimed.size, 32)
    for (const [slot, pids] of claimed) t.is(pids.length, 1, `slot ${slot}: ${pids}`)
  } finally {
    await stopAll(t, holders)
  }
})

etcdSerial("a SIGKILLed holder's slot is free within its TTL: a waiter takes it", async (t) => {
  const options = { endpoints: shared!.endpoint, prefix: prefix(), slots: 1, ttlSeconds: 2 }
  const [victim, waiter] = await Promise.all([Holder.start(options), Holder.start(options)])
  try {
    t.is((await victim.ask('acquire')).slot, 0)
    t.like(await waiter.ask('acquire'), { code: 'ESLOTSFULL' })
    waiter.child.stdin!.write('wait 60000\n')
    // The waiter is watching once its wait has started; kill the holder now.
    const killedAt = process.hrtime.bigint()
    await victim.kill()
    const got = await waiter.waitFor((m) => m.reply === 'wait', 'the waiter to take the dead holder\'s slot', 30_000)
    t.is(got.slot, 0)
    const ms = Number(BigInt(got.at as string) - killedAt) / 1e6
    t.log(`slot taken ${ms.toFixed(0)} ms after the holder was killed (TTL 2000 ms)`)
  } finally {
    await stopAll(t, [victim, waiter])
  }
})

etcdSerial('a holder SIGSTOPped past its TTL stopped using the ID before another took it, and reports lost on resume', async (t) => {
  const options = { endpoints: shared!.endpoint, prefix: prefix(), slots: 1, ttlSeconds: 3 }
  const [sleeper, other] = await Promise.all([Holder.start(options), Holder.start(options)])
  try {
    t.is((await sleeper.ask('acquire')).slot, 0)
    t.like(await sleeper.ask('use'), { using: 0, uses: 1 })
    sleeper.signal('SIGSTOP')
    const stoppedAt = process.hrtime.bigint()
    // The other holder waits for the slot: it frees when etcd expires the stopped holder's lease.
    const got = await other.ask('wait 60000', 60_000)
    t.is(got.slot, 0)
    const acquiredAt = BigInt(got.at as string)
    const resumedAt = process.hrtime.bigint()
    sleeper.signal('SIGCONT')
    const lost = await sleeper.waitFor((m) => m.event === 'lost', 'the resumed holder to report the loss')
    t.log(`lost reported ${(Number(BigInt(lost.at as string) - resumedAt) / 1e6).toFixed(1)} ms after SIGCONT`)
    t.is(lost.code, 'ELEASELOST')
    t.is(lost.slot, 0)
    t.true((lost.uses as number) > 0, 'it used the ID before it was stopped')
    const lastUse = BigInt(lost.lastUse as string)
    t.true(lastUse < acquiredAt, `last use ${lastUse} is before the other's acquisition ${acquiredAt}`)
    t.true(lastUse <= stoppedAt, 'no use after the stop')
    t.log(`stopped ${(Number(acquiredAt - stoppedAt) / 1e6).toFixed(0)} ms before the other acquired`)
    t.like(await sleeper.ask('held'), { held: -1 })
    t.like(await sleeper.ask('release'), { released: false, usesAfterLoss: 0 })
    t.deepEqual([...(await claims([sleeper, other])).entries()], [[0, [other.child.pid]]])
  } finally {
    await stopAll(t, [sleeper, other])
  }
})

etcdTest('a pending wait does not hold up snapshot(); close() ends it with ECLOSED', async (t) => {
  const etcd = { endpoints: shared!.endpoint, prefix: prefix(), slots: 1 }
  const holder = await EtcdSlotTable.open(etcd)
  const waiter = await EtcdSlotTable.open(etcd)
  try {
    await holder.acquire()
    const waiting = waiter.waitForSlot()
    const snap = await deadline(waiter.snapshot(), 10_000, 'a snapshot during a wait')
    t.like(snap[0], { alive: true, self: false })
    void waiter.close()
    await t.throwsAsync(waiting, { instanceOf: EtcdError, code: 'ECLOSED' })
    await t.throwsAsync(waiter.snapshot(), { code: 'ECLOSED' })
  } finally {
    await Promise.all([holder.close(), waiter.close()])
  }
})

etcdTest('a process whose acquire failed and whose waits timed out at every step exits by itself once its table is closed', async (t) => {
  const etcd = { endpoints: shared!.endpoint, prefix: prefix(), slots: 1 }
  const index = fileURLToPath(new URL('../index.js', import.meta.url))
  // The waits end at every point of their work: while the slot is claimed, while the watch is being opened,
  // while it waits — and while a new lease is granted, after a wait that ended during its claim gave the
  // table's lease up. The sweep is scaled by how long the first, failed acquire (a grant and a claim)
  // takes, so a slow machine is swept as finely as a fast one.
  const script = `
    const { EtcdSlotTable } = require(${JSON.stringify(index)})
    const full = (e) => { if (e.code !== 'ESLOTSFULL') throw e }
    ;(async () => {
      const table = await EtcdSlotTable.open(${JSON.stringify(etcd)})
      const start = performance.now()
      await table.acquire().then(() => { throw new Error('acquired a held slot') }, full)
      const step = (performance.now() - start) / 10
      for (let i = 0; i < 15; i++) {
        await table.waitForSlot({ timeoutMs: Math.round(i * step) }).then(() => { throw new Error('waited into a held slot') }, full)
      }
      await table.close()
      process.stdout.write('closed\\n')
    })().catch((err) => { process.stderr.write(String(err && err.stack) + '\\n'); process.exitCode = 1 })`
  const holder = await EtcdSlotTable.open(etcd)
  try {
    await holder.acquire()
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    let closedAt = 0
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString()
      if (output.includes('closed')) closedAt ||= performance.now()
    })
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      const code = await deadline(exited, 60_000, 'the process to exit by itself after closing its table')
      t.is(code, 0, output)
      t.true(output.includes('closed'), output)
      t.log(`exited ${(performance.now() - closedAt).toFixed(0)} ms after close() resolved`)
    } finally {
      child.kill('SIGKILL')
    }
  } finally {
    await holder.close()
  }
})

etcdTest('a wait outlives an etcd restart: its watch reconnects and it takes the slot freed after', async (t) => {
  const cluster = await EtcdCluster.start(join(tmp.dir, 'wait-restart'), 1)
  // A generous call deadline: a restart that lands before the wait's watch is open (while its lease is
  // granted or its claim read) is ridden out by the calls' retries; one that lands after breaks the watch,
  // which opens again from the revision after the last delete it saw.
  const etcd = { endpoints: cluster.endpoint, prefix: prefix(), slots: 1, ttlSeconds: 5, callTimeoutMs: 20_000 }
  const tables: EtcdSlotTable[] = []
  try {
    const holder = await EtcdSlotTable.open(etcd)
    const waiter = await EtcdSlotTable.open(etcd)
    tables.push(holder, waiter)
    t.is(await holder.acquire(), 0)
    const waiting = waiter.waitForSlot({ timeoutMs: 60_000 })
    t.like((await waiter.snapshot())[0], { alive: true, self: false })
    const member = cluster.members[0]!
    await member.kill()
    await member.start()
    // The holder kept its lease across the restart (etcd restores leases with a full TTL).
    t.true(await holder.release(), 'the holder still held its slot')
    t.is(await deadline(waiting, 30_000, 'the waiter to take the slot freed after the restart'), 0)
    t.is(waiter.held, 0)
  } finally {
    await Promise.all(tables.map((table) => table.close()))
    await cluster.stop()
  }
})

etcdTest('garbage collection of an unreferenced table never gives its slot back', async (t) => {
  const etcd = { endpoints: shared!.endpoint, prefix: prefix(), slots: 1, ttlSeconds: 2 }
  const index = fileURLToPath(new URL('../index.js', import.meta.url))
  // A holder that keeps no reference to its table, then collects garbage until a FinalizationRegistry
  // would have seen the table go.
  const script = `
    const { EtcdSlotTable } = require(${JSON.stringify(index)})
    const collected = new FinalizationRegistry(() => process.stdout.write('collected\\n'))
    ;(async () => {
      const slot = await (async () => {
        const table = await EtcdSlotTable.open(${JSON.stringify(etcd)})
        collected.register(table, 'table')
        return table.acquire()
      })()
      for (let i = 0; i < 10; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)) }
      process.stdout.write(JSON.stringify({ slot }) + '\\n')
    })()`
  const child = spawn(process.execPath, ['--expose-gc', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  const said = new Promise<void>((resolve) =>
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString()
      if (output.includes('{"slot"')) resolve()
    }),
  )
  const waiter = await EtcdSlotTable.open(etcd)
  try {
    await deadline(said, 30_000, 'the holder to acquire and collect garbage')
    t.false(output.includes('collected'), 'the table is still reachable: its keep-alive holds it')
    // Past two TTLs the slot is still held: the waiter times out.
    await t.throwsAsync(waiter.waitForSlot({ timeoutMs: 5000 }), { instanceOf: SlotsExhaustedError })
  } finally {
    child.kill('SIGKILL')
    await waiter.close()
  }
})

etcdTest('a lease revoked behind the holder is reported lost at its next keep-alive', async (t) => {
  const p = prefix()
  const a = await EtcdSlotTable.open({ endpoints: shared!.endpoint, prefix: p, slots: 2, ttlSeconds: 2 })
  const admin = await EtcdSlotTable.open({ endpoints: shared!.endpoint, prefix: p, slots: 2 })
  try {
    const events: EtcdError[] = []
    a.on('lost', (e) => events.push(e))
    t.is(await a.acquire(), 0)
    const lease = (await admin.snapshot())[0]!.lease!
    // Taken before the revoke: `lost` is the promise of the held slot's loss, and once that has happened,
    // of the next one's. A keep-alive answered after the revoke can be read before the revoke's own answer.
    const lost = a.lost
    const { Etcd3 } = await import('etcd3')
    const raw = new Etcd3({ hosts: shared!.endpoint })
    const revokedAt = performance.now()
    await raw.leaseClient.leaseRevoke({ ID: lease })
    raw.close()
    const err = await deadline(lost, 30_000, 'the loss to be reported')
    t.log(`loss reported ${(performance.now() - revokedAt).toFixed(0)} ms after the revoke (keep-alives every 500 ms)`)
    t.true(err instanceof EtcdError)
    t.is(err.code, 'ELEASELOST')
    t.is(err.slot, 0)
    t.deepEqual(events, [err])
    t.is(a.held, -1)
    t.is(await a.acquire(), 0, 'a new slot can be taken after a loss')
  } finally {
    await Promise.all([a.close(), admin.close()])
  }
})

etcdTest('a table that holds no slot longer than its TTL, then acquires at once, on the lease it kept alive', async (t) => {
  const p = prefix()
  const table = await EtcdSlotTable.open({ endpoints: shared!.endpoint, prefix: p, slots: 2, ttlSeconds: 3 })
  const raw = await rawClient(shared!.endpoint)
  try {
    const events: EtcdError[] = []
    table.on('lost', (e) => events.push(e))
    t.is(await table.acquire(), 0)
    const lease = (await table.snapshot())[0]!.lease!
    t.true(await table.release())
    const acked = table.keepAlives.acked
    // A lease with the table's TTL, granted after the release and never kept alive: when etcd expires it,
    // the table has held no slot for longer than its TTL.
    const { ID } = await raw.leaseClient.leaseGrant({ TTL: 3, ID: 0 })
    await deadline((await expiry(raw, `${p}-idle`, ID)).expired, 30_000, 'a TTL to pass on the server')
    const start = performance.now()
    t.is(await table.acquire({ preferred: 1 }), 1)
    t.log(`acquired in ${(performance.now() - start).toFixed(1)} ms, after more than 3 s with no slot`)
    t.like((await table.snapshot())[1], { alive: true, self: true, lease }, 'on the same lease: one transaction, no grant')
    t.true(table.keepAlives.acked > acked, 'the lease was kept alive while the table held no slot')
    t.deepEqual(events, [], 'nothing was lost')
    await table.close()
    t.true(Number((await raw.leaseClient.leaseTimeToLive({ ID: lease })).TTL) < 0, 'close() revoked the lease')
    t.is(await raw.get(`${p}/1`).string(), null, "and the held slot's key with it")
  } finally {
    raw.close()
    await table.close()
  }
})

etcdSerial('a holder SIGSTOPped past its TTL while it holds no slot acquires at once on resume, on a new lease, and reports no loss', async (t) => {
  const p = prefix()
  const options = { endpoints: shared!.endpoint, prefix: p, slots: 1, ttlSeconds: 2 }
  const holder = await Holder.start(options)
  const raw = await rawClient(shared!.endpoint)
  type Slot = { slot: number; alive: boolean; pid: number; self: boolean; lease: string | null }
  try {
    t.is((await holder.ask('acquire')).slot, 0)
    const lease = ((await holder.ask('snapshot')).snapshot as Slot[])[0]!.lease!
    t.like(await holder.ask('release'), { released: true })
    // A key on the holder's lease, which it keeps alive though it holds no slot: etcd deletes the key when
    // the stopped holder's lease expires.
    const { expired } = await expiry(raw, `${p}-sentinel`, lease)
    holder.signal('SIGSTOP')
    await deadline(expired, 30_000, "etcd to expire the stopped holder's lease")
    const resumedAt = process.hrtime.bigint()
    holder.signal('SIGCONT')
    const got = await holder.ask('acquire')
    t.is(got.slot, 0, JSON.stringify(got))
    t.log(`acquired ${(Number(BigInt(got.at as string) - resumedAt) / 1e6).toFixed(1)} ms after SIGCONT`)
    const after = ((await holder.ask('snapshot')).snapshot as Slot[])[0]!
    t.like(after, { alive: true, self: true, pid: holder.child.pid })
    t.not(after.lease, lease, 'on a new lease, granted by that acquire')
    t.like(await holder.ask('held'), { held: 0 })
    t.deepEqual(
      holder.messages.filter((m) => m.event === 'lost'),
      [],
      'a lease that ran out with no slot on it is no loss',
    )
  } finally {
    raw.close()
    await stopAll(t, [holder])
  }
})

etcdTest('a lease revoked behind a table that holds no slot is replaced at its next acquire, and no loss is reported', async (t) => {
  const p = prefix()
  const table = await EtcdSlotTable.open({ endpoints: shared!.endpoint, prefix: p, slots: 1 })
  const raw = await rawClient(shared!.endpoint)
  try {
    const events: EtcdError[] = []
    table.on('lost', (e) => events.push(e))
    t.is(await table.acquire(), 0)
    const lease = (await table.snapshot())[0]!.lease!
    t.true(await table.release())
    // Keep-alives every 2.7 s (TTL 10 s): the acquire right after the revoke finds etcd no longer knows
    // the lease (or, on a slow machine, a keep-alive answer has said so first).
    await raw.leaseClient.leaseRevoke({ ID: lease })
    t.is(await table.acquire(), 0)
    const after = (await table.snapshot())[0]!
    t.like(after, { alive: true, self: true })
    t.not(after.lease, lease, 'a new lease')
    t.is(table.held, 0)
    t.deepEqual(events, [], 'nothing was lost')
  } finally {
    raw.close()
    await table.close()
  }
})

etcdSerial('etcd restarted while holders run: they keep their slots or report lost, never two live holders', async (t) => {
  const cluster = await EtcdCluster.start(join(tmp.dir, 'restart'), 1)
  const options = { endpoints: cluster.endpoint, prefix: prefix(), slots: 4, ttlSeconds: 5 }
  const holders = await Promise.all(Array.from({ length: 3 }, () => Holder.start(options)))
  try {
    for (const h of holders) await h.ask('acquire')
    await Promise.all(holders.map((h) => h.ask('use')))
    const member = cluster.members[0]!
    await member.kill()
    await member.start()
    // A newcomer after the restart must not get a slot a live holder still claims.
    const newcomer = await Holder.start(options)
    holders.push(newcomer)
    const got = await newcomer.ask('acquire')
    t.is(typeof got.slot, 'number', JSON.stringify(got))
    const claimed = await claims(holders)
    for (const [slot, pids] of claimed) t.is(pids.length, 1, `slot ${slot} claimed by ${pids}`)
    // Every claim matches etcd's view: the key exists and names the claimant.
    const snapshot = (await newcomer.ask('snapshot')).snapshot as Array<{ slot: number; pid: number; alive: boolean }>
    for (const [slot, [pid]] of claimed) t.like(snapshot[slot], { alive: true, pid }, `slot ${slot}`)
    // A holder that does not claim its slot any more said so.
    for (const h of holders.slice(0, 3)) {
      const { held } = await h.ask('held')
      if (held === -1) t.truthy(h.messages.find((m) => m.event === 'lost') ?? (await h.waitFor((m) => m.event === 'lost', 'lost')))
    }
    t.log(`${claimed.size - 1} of 3 holders kept their slots across the restart`)
  } finally {
    await stopAll(t, holders)
    await cluster.stop()
  }
})

etcdSerial('etcd down past the TTL: every holder reports lost on its own clock and claims nothing after', async (t) => {
  const cluster = await EtcdCluster.start(join(tmp.dir, 'down'), 1)
  const options = { endpoints: cluster.endpoint, prefix: prefix(), slots: 2, ttlSeconds: 2 }
  const holders = await Promise.all(Array.from({ length: 2 }, () => Holder.start(options)))
  try {
    for (const h of holders) await h.ask('acquire')
    await Promise.all(holders.map((h) => h.ask('use')))
    const member = cluster.members[0]!
    const downAt = process.hrtime.bigint()
    await member.kill()
    // No etcd to answer: each holder gives its slot up by its clock, TTL - margin after its last ack.
    const lost = await Promise.all(holders.map((h) => h.waitFor((m) => m.event === 'lost', 'the loss with etcd down')))
    for (const l of lost) {
      t.is(l.code, 'ELEASELOST')
      t.true(BigInt(l.at as string) > downAt)
    }
    await member.start()
    const claimed = await claims(holders)
    t.is(claimed.size, 0, 'no holder claims a slot after its loss')
    for (const h of holders) t.like(await h.ask('release'), { released: false, usesAfterLoss: 0 })
    // Once etcd is back the fleet allocates again (the old keys go when their restored leases expire).
    const newcomer = await Holder.start(options)
    holders.push(newcomer)
    t.is(typeof (await newcomer.ask('wait 30000', 40_000)).slot, 'number')
  } finally {
    await stopAll(t, holders)
    await cluster.stop()
  }
})

/** The index of the cluster's leader, as its members see it. */
async function leaderOf(cluster: EtcdCluster): Promise<number> {
  const { Etcd3 } = await import('etcd3')
  const ids = await Promise.all(
    cluster.members.map(async (m) => {
      const client = new Etcd3({ hosts: m.endpoint })
      try {
        const status = await client.maintenance.status()
        return { self: status.header.member_id, leader: status.leader }
      } finally {
        client.close()
      }
    }),
  )
  const leader = ids.findIndex((s) => s.self === s.leader)
  if (leader < 0) throw new Error(`no member is the leader: ${JSON.stringify(ids)}`)
  return leader
}

etcdSerial('a three-member cluster with its leader killed keeps allocating', async (t) => {
  const cluster = await EtcdCluster.start(join(tmp.dir, 'cluster'), 3)
  const options = { endpoints: cluster.endpoints, prefix: prefix(), slots: 8, callTimeoutMs: 15_000 }
  const tables: EtcdSlotTable[] = []
  try {
    const a = await EtcdSlotTable.open(options)
    tables.push(a)
    t.is(await a.acquire(), 0)
    // The leader: the others must elect a new one while the calls go on (they retry through it).
    await cluster.members[await leaderOf(cluster)]!.kill()
    // New tables may pick the dead endpoint first: calls fail over to the others.
    for (let i = 1; i <= 3; i++) {
      const table = await EtcdSlotTable.open(options)
      tables.push(table)
      t.is(await table.acquire(), i)
    }
    t.is(a.held, 0, 'the first holder kept its slot')
    t.deepEqual(
      (await a.snapshot()).filter((s) => s.alive).map((s) => s.slot),
      [0, 1, 2, 3],
    )
    t.true(await tables[2]!.release())
    t.is(await tables[2]!.acquire({ preferred: 5 }), 5)
  } finally {
    await Promise.all(tables.map((table) => table.close()))
    await cluster.stop()
  }
})

etcdTest('newMultiProcessClient with concurrency.etcd resolves a client whose ID is an etcd slot', async (t) => {
  const p = prefix()
  const dataDir = join(tmp.dir, 'client-data')
  const etcd = { endpoints: shared!.endpoint, prefix: p, slots: 4 }
  const client = await newMultiProcessClient(dataDir, { concurrency: { etcd } })
  const other = await newMultiProcessClient(dataDir, { concurrency: { etcd: { ...etcd, preferred: 3 } } })
  const view = await EtcdSlotTable.open(etcd)
  try {
    t.is(client.processId, 0)
    t.is(client.processCount, 4)
    t.is(other.processId, 3)
    t.true(client.isMultiProcess)
    t.deepEqual(client.ownedShards(9), [0, 4, 8])
    t.deepEqual(
      (await view.snapshot()).map((s) => s.alive),
      [true, false, false, true],
    )
    client.close()
    other.close()
    await t.throwsAsync(newMultiProcessClient(dataDir, { concurrency: { etcd: { ...etcd, slots: 0 } } }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    })
    await t.throwsAsync(
      newMultiProcessClient('', { concurrency: { etcd } }),
      { instanceOf: TypeError },
      'a bad dataDir rejects (the etcd form never throws synchronously)',
    )
    // close() gives the slots back (asynchronously): a waiter gets slot 0.
    const again = await newMultiProcessClient(dataDir, { concurrency: { etcd: { ...etcd, preferred: 0, waitMs: 20_000 } } })
    t.true(again.processId === 0 || again.processId === 3)
    again.close()
  } finally {
    client.close()
    other.close()
    await view.close()
  }
})

etcdTest('a full etcd table makes newMultiProcessClient reject with SlotsExhaustedError', async (t) => {
  const etcd = { endpoints: shared!.endpoint, prefix: prefix(), slots: 1 }
  const holder = await EtcdSlotTable.open(etcd)
  try {
    await holder.acquire()
    await t.throwsAsync(newMultiProcessClient(join(tmp.dir, 'full'), { concurrency: { etcd } }), {
      instanceOf: SlotsExhaustedError,
      code: 'ESLOTSFULL',
    })
    const ac = new AbortController()
    const waiting = newMultiProcessClient(join(tmp.dir, 'full'), { concurrency: { etcd: { ...etcd, signal: ac.signal } } })
    ac.abort(new Error('enough'))
    await t.throwsAsync(waiting, { message: 'enough' })
  } finally {
    await holder.close()
  }
})

etcdTest("the README's \"Across hosts\" example runs against a real etcd", async (t) => {
  const readme = readFileSync(README, 'utf8')
  const section = readme.slice(readme.indexOf('## Across hosts'))
  const block = /^```ts\n([\s\S]*?)^```/m.exec(section)
  t.truthy(block, 'the section has a ts example')
  const code = block![1]!.replaceAll('http://etcd-1:2379', shared!.endpoint)
  // From the repo, 'procslot' resolves to this package: the dev dependency "procslot": "file:." links it.
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const codeOut = await deadline(
    new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))),
    30_000,
    'the README example to exit',
  )
  t.is(codeOut, 0, output)
})
