/**
 * `procslot demo` (and `npm run demo`): a node:cluster prefork HTTP server on a loopback port whose workers
 * each open `newMultiProcessClient` on a temporary slot file and answer `GET /` with their `processId` and
 * PID. The demo sends requests, SIGKILLs one worker, forks a replacement that takes the freed slot, prints
 * the slot table at each step, shuts down and exits 0 — or 1 with the reason when a step goes otherwise.
 *
 * The primary holds no slot: it creates the file and reads it as `procslot slots` does. Every wait is on
 * an event (an IPC message, 'listening', 'exit', an HTTP response) with a deadline; there are no sleeps.
 * @internal
 */
import cluster, { type Worker } from 'node:cluster'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { newMultiProcessClient, type MultiProcessClient } from '../client'
import { listSlots, SLOT_COLUMNS, slotCells } from './slots'
import { fail, formatTable, parse } from './common'

const WORKERS = 4 // and as many slots
const STEP_MS = 15_000 // deadline of every wait
const VICTIM_SLOT = 1 // the slot whose worker is SIGKILLed
const FILE_ENV = 'PROCSLOT_DEMO_FILE'
const DATA_ENV = 'PROCSLOT_DEMO_DATA'

type Exit = { code: number | null; signal: string | null }
type Answer = { processId: number; pid: number }

interface WorkerRecord {
  readonly worker: Worker
  readonly id: number
  readonly pid: number
  slot?: number
  port?: number
  expectExit: boolean
  readonly exited: Promise<Exit>
  readonly ready: Promise<WorkerRecord>
}

// ---------------------------------------------------------------------------------------------------
// Worker: open a client (it takes a slot), tell the primary, answer GET / with { processId, pid }.

function worker(): void {
  let client: MultiProcessClient
  try {
    client = newMultiProcessClient(process.env[DATA_ENV]!, { concurrency: { slotsFile: process.env[FILE_ENV]! } })
  } catch (err) {
    const e = err as Error & { code?: string }
    process.send!({ type: 'error', message: `${e.name} ${e.code ?? ''}: ${e.message}` })
    process.exitCode = 1
    process.disconnect()
    return
  }
  process.send!({ type: 'slot', slot: client.processId, count: client.processCount, pid: process.pid })

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ processId: client.processId, pid: process.pid }))
    } else {
      res.writeHead(404).end()
    }
  })
  // Port 0 in a cluster: the primary binds one ephemeral port and every worker (the replacement too)
  // shares it.
  server.listen(0, '127.0.0.1')

  // worker.disconnect() from the primary closes the server, then the IPC channel: close the client, which
  // gives its slot back (ending the process would free it too).
  process.once('disconnect', () => client.close())
}

// ---------------------------------------------------------------------------------------------------
// Primary.

class Demo {
  readonly records: WorkerRecord[] = []
  readonly dir = mkdtempSync(join(tmpdir(), 'procslot-demo-'))
  readonly file = join(this.dir, 'slots')
  #cleaned = false

  async run(): Promise<void> {
    const started = Date.now()
    cluster.schedulingPolicy = cluster.SCHED_RR // the primary deals connections out in turn (all platforms)
    cluster.setupPrimary({ exec: __filename, args: [], silent: false })

    // A slot file is N zeroed 8-byte words: WORKERS free slots.
    writeFileSync(this.file, Buffer.alloc(8 * WORKERS), { mode: 0o600, flag: 'wx' })
    console.log(`procslot prefork demo: ${WORKERS} workers, ${WORKERS} slots`)
    console.log(`slot file: ${this.file}`)
    console.log(`primary pid ${process.pid} (holds no slot)`)

    // A worker that dies without being told to fails the run, whatever step is waiting.
    let crashed!: (err: Error) => void
    const crash = new Promise<never>((_, reject) => (crashed = reject))
    crash.catch(() => {})
    cluster.on('exit', (w, code, signal) => {
      const rec = this.records.find((r) => r.worker === w)
      if (rec && !rec.expectExit) {
        crashed(new Error(`worker #${w.id} (pid ${rec.pid}) exited unexpectedly (${signal ?? `code ${code}`})`))
      }
    })
    const step = <T>(promise: Promise<T>, what: string): Promise<T> =>
      deadline(Promise.race([promise, crash]), STEP_MS, what)

    // 1. Fork the workers.
    header(1, `Forking ${WORKERS} workers; each takes a slot with newMultiProcessClient(dataDir, { concurrency: { slotsFile } })`)
    const first = Array.from({ length: WORKERS }, () => this.fork())
    await step(Promise.all(first.map((r) => r.ready)), `${WORKERS} workers to listen and report their slots`)
    for (const r of [...first].sort((a, b) => a.slot! - b.slot!)) say(`worker #${r.id}  pid ${r.pid}  took slot ${r.slot}`)
    const port = first[0]!.port!
    if (first.some((r) => r.port !== port)) {
      throw new Error(`workers listen on different ports: ${first.map((r) => r.port).join(', ')}`)
    }
    if (new Set(first.map((r) => r.slot)).size !== WORKERS) throw new Error(`the workers did not get ${WORKERS} distinct slots`)
    say(`all ${WORKERS} listening on http://127.0.0.1:${port}/`)
    say('')
    this.printTable()

    // 2. Requests.
    header(2, `Sending 12 requests to http://127.0.0.1:${port}/ (3 rounds of 4 in parallel)`)
    const answers: Answer[] = []
    for (let round = 0; round < 3; round++) {
      answers.push(...(await step(Promise.all(Array.from({ length: 4 }, () => get(port))), 'HTTP responses')))
    }
    this.printAnswers(answers)

    // 3. SIGKILL the worker holding slot 1.
    const victim = first.find((r) => r.slot === VICTIM_SLOT)!
    header(3, `SIGKILL worker #${victim.id} (pid ${victim.pid}), the holder of slot ${VICTIM_SLOT}`)
    victim.expectExit = true
    victim.worker.process.kill('SIGKILL')
    const { code, signal } = await step(victim.exited, `worker #${victim.id} to exit`)
    say(`cluster 'exit': worker #${victim.id} pid ${victim.pid} ended by ${signal ?? `exit code ${code}`}`)
    const after = listSlots(this.file).slots[VICTIM_SLOT]!
    if (after.alive) throw new Error(`slot ${VICTIM_SLOT} still shows a live holder (pid ${after.pid}) after its worker died`)
    say(`slot ${VICTIM_SLOT} still names pid ${after.pid}, but nobody holds its lock: free for the taking`)
    say('')
    this.printTable()

    // 4. Fork a replacement: it must get the freed slot.
    header(4, 'Forking a replacement worker')
    const replacement = this.fork()
    await step(replacement.ready, `the replacement worker #${replacement.id} to listen and report its slot`)
    if (replacement.slot !== VICTIM_SLOT) {
      throw new Error(
        `the replacement (pid ${replacement.pid}) took slot ${replacement.slot}, not slot ${VICTIM_SLOT} freed by pid ${victim.pid}`,
      )
    }
    if (replacement.port !== port) throw new Error(`the replacement listens on port ${replacement.port}, not ${port}`)
    say(`replacement worker #${replacement.id} pid ${replacement.pid} took slot ${replacement.slot}, the slot freed by pid ${victim.pid}`)
    say('')
    this.printTable()

    // 5. Requests until the replacement (and every other slot) has answered.
    const MAX_REQUESTS = 200
    const MAX_MS = 10_000
    header(5, `Sending requests until the replacement and all ${WORKERS} slots have answered (at most ${MAX_REQUESTS} or ${MAX_MS / 1000} s)`)
    const until = Date.now() + MAX_MS
    const again: Answer[] = []
    const heard = (): boolean =>
      new Set(again.map((a) => a.processId)).size === WORKERS && again.some((a) => a.pid === replacement.pid)
    while (!heard()) {
      if (again.length >= MAX_REQUESTS || Date.now() > until) {
        throw new Error(`the replacement (pid ${replacement.pid}) did not answer within ${again.length} requests`)
      }
      again.push(await step(get(port), 'an HTTP response'))
    }
    this.printAnswers(again)
    const firstFromReplacement = again.findIndex((a) => a.pid === replacement.pid) + 1
    say(`the replacement answered request ${firstFromReplacement} of ${again.length} with processId ${replacement.slot}`)

    // 6. Shut down.
    header(6, 'Shutting down: disconnecting every worker (each closes its client, releasing its slot)')
    const live = this.records.filter((r) => !r.expectExit)
    for (const r of live) {
      r.expectExit = true
      r.worker.disconnect()
    }
    const exits = await step(Promise.all(live.map((r) => r.exited)), 'the workers to exit')
    live.forEach((r, i) => {
      const { code, signal } = exits[i]!
      say(`worker #${r.id}  pid ${r.pid}  slot ${r.slot}  exited with ${signal ?? `code ${code}`}`)
    })
    const bad = live.filter((_, i) => exits[i]!.code !== 0)
    if (bad.length > 0) throw new Error(`workers ${bad.map((r) => `#${r.id}`).join(', ')} did not exit cleanly`)
    say('')
    this.printTable()
    const held = listSlots(this.file).slots.filter((s) => s.alive)
    if (held.length > 0) throw new Error(`slots still held after shutdown: ${held.map((s) => s.slot).join(', ')}`)
    this.cleanup()
    say(`removed ${this.dir}`)
    console.log(`\ndone in ${Date.now() - started} ms`)
  }

  /** Forks a worker and tracks it: `ready` once it has both reported its slot and is listening. */
  fork(): WorkerRecord {
    const worker = cluster.fork({ [FILE_ENV]: this.file, [DATA_ENV]: join(this.dir, 'data') })
    const exited = new Promise<Exit>((resolve) => worker.once('exit', (code, signal) => resolve({ code, signal })))
    const rec: WorkerRecord = {
      worker,
      id: worker.id,
      pid: worker.process.pid!,
      expectExit: false,
      exited,
      ready: new Promise<WorkerRecord>((resolve, reject) => {
        const check = (): void => {
          if (rec.slot !== undefined && rec.port !== undefined) resolve(rec)
        }
        worker.on('message', (msg: { type?: string; slot?: number; pid?: number; message?: string }) => {
          if (msg?.type === 'slot') {
            if (msg.pid !== rec.pid) reject(new Error(`worker #${rec.id} reports pid ${msg.pid}, the primary knows ${rec.pid}`))
            rec.slot = msg.slot
            check()
          } else if (msg?.type === 'error') {
            reject(new Error(`worker #${rec.id} (pid ${rec.pid}) could not take a slot: ${msg.message}`))
          }
        })
        worker.on('listening', (address) => {
          rec.port = address.port
          check()
        })
        void exited.then(({ code, signal }) =>
          reject(new Error(`worker #${rec.id} (pid ${rec.pid}) exited (${signal ?? `code ${code}`}) before it was ready`)),
        )
      }),
    }
    rec.ready.catch(() => {}) // reported by whichever step waits on it
    this.records.push(rec)
    return rec
  }

  /** Kills whatever workers are left and removes the temporary directory. Idempotent. */
  cleanup(): void {
    if (this.#cleaned) return
    this.#cleaned = true
    for (const r of this.records) {
      if (r.worker.process.exitCode === null && r.worker.process.signalCode === null) {
        r.expectExit = true
        r.worker.process.kill('SIGKILL')
      }
    }
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** The slot table as `procslot slots` shows it, plus which worker holds each slot. */
  printTable(): void {
    const listing = listSlots(this.file)
    const cells = slotCells(listing, 40).map((row, i) => {
      const s = listing.slots[i]!
      const rec = s.pid === 0 ? undefined : [...this.records].reverse().find((r) => r.pid === s.pid)
      let who = '-'
      if (rec) who = `#${rec.id}${rec.worker.process.signalCode === 'SIGKILL' ? ' (SIGKILLed)' : ''}`
      else if (s.pid !== 0) who = '?'
      return [...row.slice(0, 3), who, ...row.slice(3)]
    })
    const head = [...SLOT_COLUMNS.slice(0, 3), 'worker', ...SLOT_COLUMNS.slice(3)]
    process.stdout.write(formatTable(head, cells, '    '))
  }

  /** Which slots answered, how often. */
  printAnswers(answers: Answer[]): void {
    const bySlot = new Map<string, { slot: number; pid: number; count: number }>()
    for (const a of answers) {
      const key = `${a.processId}:${a.pid}`
      bySlot.set(key, { slot: a.processId, pid: a.pid, count: (bySlot.get(key)?.count ?? 0) + 1 })
    }
    const rows = [...bySlot.values()]
      .sort((a, b) => a.slot - b.slot || a.pid - b.pid)
      .map((a) => {
        const rec = this.records.find((r) => r.pid === a.pid)
        return [String(a.slot), String(a.pid), rec ? `#${rec.id}` : '?', String(a.count)]
      })
    say(`${answers.length} answers from ${rows.length} workers:`)
    process.stdout.write(formatTable(['processId', 'pid', 'worker', 'answers'], rows, '    '))
  }
}

/** GET / on a fresh connection (no keep-alive, so the primary deals each one to the next worker). */
function get(port: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' }, timeout: 5_000 },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`GET / answered ${res.statusCode}`))
          try {
            resolve(JSON.parse(body) as Answer)
          } catch {
            reject(new Error(`GET / answered something other than JSON: ${body}`))
          }
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('GET / timed out')))
    req.on('error', reject)
  })
}

/** Rejects after `ms` with `what` in the message, unless `promise` settles first. */
function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function header(n: number, text: string): void {
  console.log(`\n[${n}] ${text}`)
}

function say(text: string): void {
  console.log(text === '' ? '' : `    ${text}`)
}

/** Runs the demo in this process (the cluster primary); resolves to the exit code. */
export async function runDemo(): Promise<number> {
  const demo = new Demo()
  const interrupted = (sig: NodeJS.Signals): void => {
    console.error(`\nerror: interrupted by ${sig}`)
    demo.cleanup()
    process.exit(1)
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  try {
    await demo.run()
    return 0
  } catch (err) {
    console.error(`\nerror: ${err instanceof Error ? err.message : String(err)}`)
    demo.cleanup()
    return 1
  } finally {
    process.off('SIGINT', interrupted)
    process.off('SIGTERM', interrupted)
  }
}

/** `procslot demo` (its line in the dispatcher's table says so). */
export function run(argv: string[]): Promise<number> {
  const { positionals } = parse('demo', argv, {})
  if (positionals.length > 0) fail(`demo: takes no arguments, got ${positionals.join(' ')}`)
  return runDemo()
}

// A cluster worker forked by the demo runs this file as its main module.
if (require.main === module && cluster.isWorker) worker()
