// examples/pm2 under real PM2 (the devDependency), as its users run it: `pm2 start` of the ecosystem, then
// `pm2 reload` while a client sends requests without pause. __test__/examples.spec.ts simulates PM2 for a
// fast check; only the real one shows what its reload does: it starts the new instance N, waits until it
// listens, then SIGINTs the old one and waits for its exit, two instances at a time.
//
// The PM2 daemon is this test's own (PM2_HOME in a temporary directory), is killed at the end (`pm2 kill`,
// then SIGKILL of whatever is left), and serves on port 31300: below Linux's ephemeral range, and used by
// no other test file.
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { SlotTable } from '../index.js'
import { deadline, inCI, tempDir } from './helpers.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const ECOSYSTEM = join(ROOT, 'examples', 'pm2', 'ecosystem.config.cjs')
const APP = join(ROOT, 'examples', 'pm2', 'app.js')
const PORT = 31300
const require = createRequire(import.meta.url)

/** PM2's CLI script, or null when the devDependency is not installed. */
function pm2Bin(): string | null {
  try {
    const manifest = require.resolve('pm2/package.json')
    return join(dirname(manifest), (require(manifest) as { bin: Record<string, string> }).bin.pm2!)
  } catch {
    return null
  }
}

const PM2 = pm2Bin()
/** Runs wherever PM2 is installed (it is a devDependency); in CI its absence is a failure. */
const pm2Test = PM2 || inCI ? test : test.skip

type Answer = { instance: number; processId: number; processCount: number; pid: number }
/** An answer of the app, with when its request was sent and when the answer arrived (performance.now()). */
type Timed = Answer & { sent: number; received: number }
/** One snapshot of the slot table: its alive holders by slot, read between `from` and `to`. */
type Sample = { from: number; to: number; holders: Map<number, number> }

/** A PM2 daemon of its own: every command runs with this PM2_HOME and the example's environment. */
class Pm2 {
  readonly home: string
  readonly env: NodeJS.ProcessEnv
  constructor(dir: string, file: string) {
    this.home = join(dir, 'pm2')
    this.env = {
      ...process.env,
      PM2_HOME: this.home,
      PM2_DISABLE_VERSION_CHECK: 'true',
      PORT: String(PORT),
      PROCSLOT_SLOTS_FILE: file,
      DATA_DIR: join(dir, 'data'),
    }
  }

  /** Runs `pm2 ...args` to its end and returns its stdout; SIGKILLs it past `ms`. */
  run(args: string[], ms = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const options = { env: this.env, cwd: ROOT, timeout: ms, killSignal: 'SIGKILL' as const }
      execFile(process.execPath, [PM2!, ...args], options, (err, stdout, stderr) => {
        if (err?.killed) reject(new Error(`timed out after ${ms} ms waiting for pm2 ${args.join(' ')}\n${stdout}${stderr}`))
        else if (err) reject(new Error(`pm2 ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`))
        else resolve(stdout)
      })
    })
  }

  /** `pm2 jlist`: the PID of every online instance, by instance number. */
  async instances(): Promise<Map<number, number>> {
    const out = await this.run(['jlist'])
    const list = JSON.parse(out.slice(out.indexOf('['))) as Array<{ pid: number; pm2_env: { status: string; NODE_APP_INSTANCE: number } }>
    const online = list.filter((p) => p.pm2_env.status === 'online')
    return new Map(online.map((p) => [Number(p.pm2_env.NODE_APP_INSTANCE), p.pid]))
  }

  /** The daemon's PID, from its PID file. */
  daemonPid(): number | null {
    const file = join(this.home, 'pm2.pid')
    return existsSync(file) ? Number(readFileSync(file, 'utf8')) : null
  }
}

/** A map's entries, by key. */
function entries(map: Map<number, number>): Array<[number, number]> {
  return [...map].sort(([a], [b]) => a - b)
}

/** GET / on a fresh connection (no keep-alive), timed; given up (the connection closed) after 10 s. */
function get(): Promise<Timed> {
  const sent = performance.now()
  const signal = AbortSignal.timeout(10_000)
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(signal.aborted ? new Error(`no answer from port ${PORT} within 10000 ms`, { cause: err }) : err)
    http
      .get({ host: '127.0.0.1', port: PORT, path: '/', agent: false, headers: { connection: 'close' }, signal }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${body}`))
          try {
            resolve({ ...(JSON.parse(body) as Answer), sent, received: performance.now() })
          } catch (err) {
            reject(err)
          }
        })
        res.on('error', fail)
      })
      .on('error', fail)
  })
}

/**
 * Requests without pause on `concurrency` connections at once, each on a fresh connection, until
 * `stop()`; every answer and every failure is kept. `until(n, pred)` resolves once `n` more answers
 * satisfying `pred` have arrived.
 */
class Load {
  readonly answers: Timed[] = []
  readonly failures: Array<{ sent: number; error: string }> = []
  #stopped = false
  readonly #loops: Promise<void>[]
  #watchers: Array<{ left: number; pred: (a: Timed) => boolean; resolve: () => void }> = []

  constructor(concurrency: number) {
    this.#loops = Array.from({ length: concurrency }, () => this.#loop())
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const sent = performance.now()
      try {
        const answer = await get()
        this.answers.push(answer)
        for (const w of this.#watchers) if (w.pred(answer)) w.left--
        for (const w of this.#watchers.filter((w) => w.left === 0)) w.resolve()
        this.#watchers = this.#watchers.filter((w) => w.left > 0)
      } catch (err) {
        this.failures.push({ sent, error: (err as Error).message })
      }
    }
  }

  until(n: number, what: string, pred: (a: Timed) => boolean = () => true): Promise<void> {
    return deadline(new Promise<void>((resolve) => this.#watchers.push({ left: n, pred, resolve })), 60_000, what)
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await Promise.all(this.#loops)
  }
}

/** Answers until each of `pids` has answered once; a refused connection (nothing listens yet) is retried. */
async function answersFrom(pids: Set<number>): Promise<Timed[]> {
  const seen = new Map<number, Timed>()
  const started = performance.now()
  while (seen.size < pids.size) {
    if (performance.now() - started > 60_000) throw new Error(`timed out waiting for answers of PIDs ${[...pids]}`)
    try {
      const answer = await get()
      if (pids.has(answer.pid)) seen.set(answer.pid, answer)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw err
    }
  }
  return [...seen.values()]
}

/** The slot table's alive holders (slot → PID), sampled every 20 ms until `stop()`. */
function sampleTable(file: string): { samples: Sample[]; stop: () => void } {
  const table = SlotTable.open(file)
  const samples: Sample[] = []
  const take = () => {
    const from = performance.now()
    const holders = new Map(
      table
        .snapshot()
        .filter((s) => s.alive)
        .map((s) => [s.slot, s.pid]),
    )
    samples.push({ from, to: performance.now(), holders })
  }
  take()
  const timer = setInterval(take, 20)
  return {
    samples,
    stop: () => {
      if (table.closed) return
      clearInterval(timer)
      take()
      table.close()
    },
  }
}

/**
 * `pm2 kill`, then SIGKILL of whatever is left of this test's PM2: its daemon (its title names its
 * PM2_HOME) and the instances (`pids`, and the slot file's holders), each checked by command line.
 */
async function killAll(t: ExecutionContext, pm2: Pm2, file: string, pids: Set<number>): Promise<void> {
  const daemon = pm2.daemonPid()
  await pm2.run(['kill'], 20_000).catch((err: Error) => t.log(err.message))
  if (existsSync(file)) {
    const table = SlotTable.open(file)
    for (const s of table.snapshot()) if (s.alive) pids.add(s.pid)
    table.close()
  }
  const ours = (pid: number, marker: string) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)
    } catch {
      return false // gone
    }
  }
  const left = [...pids].filter((pid) => ours(pid, APP))
  if (daemon && ours(daemon, pm2.home)) left.push(daemon)
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
}

pm2Test('pm2 reload: instance N holds slot N before, during and after, and not one request fails', async (t) => {
  if (!PM2) throw new Error('pm2 is not installed: `npm install` installs it (a devDependency)')
  const { dir, cleanup } = tempDir('procslot-pm2-')
  const file = join(dir, 'slots')
  const pm2 = new Pm2(dir, file)
  const pids = new Set<number>()
  t.teardown(async () => {
    await killAll(t, pm2, file, pids)
    cleanup()
  })
  const instances = (require(ECOSYSTEM) as { apps: Array<{ instances: number }> }).apps[0]!.instances
  const numbers = Array.from({ length: instances }, (_, i) => i)

  // The fleet: `pm2 start`, then one answer from each instance (an answer means it holds its slot).
  await pm2.run(['start', ECOSYSTEM])
  const before = await pm2.instances()
  for (const pid of before.values()) pids.add(pid)
  t.deepEqual([...before.keys()].sort(), numbers, 'pm2 runs every instance')
  for (const answer of await answersFrom(new Set(before.values()))) {
    t.is(answer.instance, [...before].find(([, pid]) => pid === answer.pid)![0])
    t.is(answer.processId, answer.instance, `instance ${answer.instance} holds slot ${answer.instance}`)
  }
  const sampler = sampleTable(file)
  t.teardown(sampler.stop)
  t.deepEqual(entries(sampler.samples[0]!.holders), entries(before), 'slot N is held by the PID pm2 gives for instance N')

  // The reload, with requests flowing from before it starts until every new instance has answered.
  const load = new Load(4)
  t.teardown(() => load.stop())
  await load.until(50, 'answers before the reload')
  const reloadStarted = performance.now()
  await pm2.run(['reload', ECOSYSTEM])
  const reloadMs = performance.now() - reloadStarted
  const jlistStarted = performance.now()
  const after = await pm2.instances()
  const jlistMs = performance.now() - jlistStarted
  for (const pid of after.values()) pids.add(pid)
  t.deepEqual([...after.keys()].sort(), numbers, 'pm2 runs every instance after the reload')
  for (const n of numbers) t.not(after.get(n), before.get(n), `instance ${n} is a new process`)
  const newPids = new Set(after.values())
  await load.until(instances, 'an answer from every new instance', (a) => newPids.has(a.pid))
  await load.until(50, 'answers after the reload')
  await load.stop()
  sampler.stop()
  const { samples } = sampler
  t.deepEqual(entries(samples.at(-1)!.holders), entries(after), 'after the reload, slot N is held by the new instance N')

  // Not one request failed, and every answer names the instance's own slot.
  if (load.failures.length > 0) t.log(`PM2's log:\n${readFileSync(join(pm2.home, 'pm2.log'), 'utf8').split('\n').slice(-40).join('\n')}`)
  t.deepEqual(
    load.failures.map((f) => `sent ${(f.sent - reloadStarted).toFixed(0)} ms after pm2 reload began: ${f.error}`),
    [],
    'no request failed',
  )
  const instanceOf = new Map<number, number>()
  for (const [n, pid] of [...before, ...after]) instanceOf.set(pid, n)
  const byPid = new Map<number, Timed[]>()
  for (const a of load.answers) {
    if (!byPid.has(a.pid)) byPid.set(a.pid, [])
    byPid.get(a.pid)!.push(a)
  }
  t.deepEqual([...byPid.keys()].filter((pid) => !instanceOf.has(pid)), [], 'every answer comes from an instance pm2 listed')
  const misnamed = load.answers.filter((a) => a.instance !== instanceOf.get(a.pid) || a.processId !== a.instance || a.processCount !== instances)
  t.deepEqual(misnamed, [], 'instance N answers with processId N, during the reload too')

  // No ID held by two live processes. The answers of two processes naming one ID never interleave: if
  // process P answered with ID k before a request to Q was sent, and again to a request sent after Q's
  // answer with ID k arrived, P held k across Q's answer (a process takes its ID once and keeps it).
  const spans = [...byPid].map(([pid, answers]) => ({
    pid,
    processId: answers[0]!.processId,
    firstReceived: Math.min(...answers.map((a) => a.received)),
    lastSent: Math.max(...answers.map((a) => a.sent)),
  }))
  const interleaved = load.answers.filter((a) =>
    spans.some((s) => s.pid !== a.pid && s.processId === a.processId && s.firstReceived < a.sent && a.received < s.lastSent),
  )
  t.deepEqual(interleaved, [], "no process answers with an ID while another one's answers name it")
  // The table agrees: at every sample, slot k's holder is instance k, and no other process answered with
  // ID k both before and after that sample.
  const overlaps: string[] = []
  for (const sample of samples) {
    if (new Set(sample.holders.values()).size !== sample.holders.size) overlaps.push(`one PID in two slots: ${entries(sample.holders)}`)
    for (const [slot, pid] of sample.holders) {
      if (instanceOf.get(pid) !== slot) overlaps.push(`slot ${slot} held by PID ${pid}, instance ${instanceOf.get(pid)}`)
      for (const s of spans) {
        if (s.pid !== pid && s.processId === slot && s.firstReceived < sample.from && sample.to < s.lastSent) {
          overlaps.push(`slot ${slot} held by PID ${pid} while PID ${s.pid} answered with it`)
        }
      }
    }
  }
  t.deepEqual(overlaps, [], 'at every sample, slot N is held by instance N and by no one else')

  // What the reload took: pm2's command (its own start included: compare `pm2 jlist`); for each instance,
  // how long the new process waited for slot N (from its start) and how soon it had it after the old one
  // began to give it back (the app's log lines, for PM2's log); how many table samples saw a slot free;
  // the slowest request (one that reached a new instance before it had its slot waited for it).
  const lines = readdirSync(join(pm2.home, 'logs'))
    .filter((name) => name.includes('-out-'))
    .flatMap((name) => readFileSync(join(pm2.home, 'logs', name), 'utf8').split('\n'))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { event: string; pid: number; waitedMs?: number; at: number })
  const handovers = numbers.map((n) => {
    const ready = lines.find((l) => l.event === 'ready' && l.pid === after.get(n))
    const released = lines.find((l) => l.event === 'releasing' && l.pid === before.get(n))
    const free = samples.filter((s) => !s.holders.has(n)).length
    const gap = ready && released ? `, ${(ready.at - released.at).toFixed(1)} ms after the old one let go` : ''
    return `instance ${n}: waited ${ready?.waitedMs} ms${gap}, free in ${free} of ${samples.length} samples`
  })
  const during = load.answers.filter((a) => a.sent >= reloadStarted && a.sent <= reloadStarted + reloadMs)
  const slowest = Math.max(...load.answers.map((a) => a.received - a.sent))
  t.log(`pm2 reload took ${reloadMs.toFixed(0)} ms (pm2 jlist: ${jlistMs.toFixed(0)} ms)`)
  t.log(`${load.answers.length} requests, ${during.length} of them sent during pm2 reload, ${load.failures.length} failed; slowest ${slowest.toFixed(0)} ms`)
  for (const line of handovers) t.log(line)
})
