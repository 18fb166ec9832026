// Every example in examples/ runs here, as its users would run it (PM2 cluster mode as PM2 runs the app).
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { SlotTable } from '../index.js'
import { JsonLines, deadline, tempDir } from './helpers.ts'

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url))
const require = createRequire(import.meta.url)

type Exit = { code: number | null; signal: NodeJS.Signals | null }

/** The live holders of a slot file, by slot. */
function liveSlots(file: string): number[] {
  const table = SlotTable.open(file)
  try {
    return table
      .snapshot()
      .filter((s) => s.alive)
      .map((s) => s.slot)
  } finally {
    table.close()
  }
}

/** GET / on a fresh connection, parsed as JSON. */
function get(port: number): Promise<Record<string, unknown>> {
  return deadline(
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => (body += chunk))
          res.on('end', () => resolve(JSON.parse(body)))
        })
        .on('error', reject)
    }),
    10_000,
    `GET http://127.0.0.1:${port}/`,
  )
}

/** A process whose output lines can be awaited by pattern. */
class Lines {
  readonly child: ChildProcess
  readonly exited: Promise<Exit>
  output = ''
  readonly #lines: string[] = []
  readonly #waiters: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = []

  constructor(script: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => resolve({ code, signal })))
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()))
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.output += line + '\n'
      const i = this.#waiters.findIndex((w) => w.re.test(line))
      if (i >= 0) {
        const { re, resolve } = this.#waiters.splice(i, 1)[0]!
        resolve(re.exec(line)!)
      } else {
        this.#lines.push(line)
      }
    })
  }

  /** The next line (past or future) matching `re` (no `g` flag). */
  line(re: RegExp, what: string): Promise<RegExpExecArray> {
    const i = this.#lines.findIndex((l) => re.test(l))
    if (i >= 0) return Promise.resolve(re.exec(this.#lines.splice(i, 1)[0]!)!)
    const wait = new Promise<RegExpExecArray>((resolve) => this.#waiters.push({ re, resolve }))
    const died = this.exited.then(({ code, signal }) => {
      throw new Error(`process exited (${code ?? signal}) before ${what}; output:\n${this.output}`)
    })
    return deadline(Promise.race([wait, died]), 20_000, what).catch((err: Error) => {
      throw new Error(`${err.message}; output so far:\n${this.output}`)
    })
  }
}

test('cluster-server.js: each worker takes a slot; a SIGKILLed worker is replaced on its slot; SIGTERM frees all', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  const env = { ...process.env, WORKERS: '3', PORT: '0', SLOTS_FILE: file, DATA_DIR: join(dir, 'data') }
  const server = new Lines(join(EXAMPLES, 'cluster-server.js'), [], env)
  const pids: number[] = []
  t.teardown(() => {
    for (const pid of [server.child.pid!, ...pids]) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
  })
  const WORKER = /^worker pid=(\d+) slot=(\d+) of (\d+) listening on http:\/\/127\.0\.0\.1:(\d+)\/$/
  const started = await Promise.all([0, 1, 2].map(() => server.line(WORKER, 'a worker to listen')))
  const workers = started.map((m) => ({ pid: Number(m[1]), slot: Number(m[2]), count: Number(m[3]), port: Number(m[4]) }))
  pids.push(...workers.map((w) => w.pid))
  t.deepEqual(workers.map((w) => w.slot).sort(), [0, 1, 2])
  t.true(workers.every((w) => w.count === 3 && w.port === workers[0]!.port))
  const port = workers[0]!.port
  t.deepEqual(liveSlots(file), [0, 1, 2])

  // Requests are dealt out to the workers in turn: every slot answers.
  const heard = new Set<unknown>()
  for (let i = 0; i < 60 && heard.size < 3; i++) heard.add((await get(port)).processId)
  t.deepEqual([...heard].sort(), [0, 1, 2])

  // SIGKILL the holder of slot 1: the primary forks a replacement, which takes slot 1.
  const victim = workers.find((w) => w.slot === 1)!
  process.kill(victim.pid, 'SIGKILL')
  await server.line(new RegExp(`^worker pid=${victim.pid} died \\(SIGKILL\\)`), 'the primary to see the worker die')
  const replaced = await server.line(WORKER, 'the replacement to listen')
  pids.push(Number(replaced[1]))
  t.not(Number(replaced[1]), victim.pid)
  t.is(Number(replaced[2]), 1, 'the replacement took the freed slot')
  t.deepEqual(liveSlots(file), [0, 1, 2])

  server.child.kill('SIGTERM')
  t.deepEqual(await deadline(server.exited, 20_000, 'the server to stop'), { code: 0, signal: null }, server.output)
  t.deepEqual(liveSlots(file), [], 'every worker released its slot')
})

test('PM2 cluster mode (ecosystem.config.cjs): instance N takes slot N, keeps it while it lives, gets it back on restart', async (t) => {
  const ecosystem = require(join(EXAMPLES, 'pm2', 'ecosystem.config.cjs')) as {
    apps: Array<{ script: string; exec_mode: string; instances: number; instance_var: string; env: Record<string, string> }>
  }
  const app = ecosystem.apps[0]!
  t.is(app.exec_mode, 'cluster')
  t.is(app.instance_var, 'NODE_APP_INSTANCE')
  t.true(existsSync(app.script))
  const instances = app.instances
  t.is(Number(app.env.PROCSLOT_FLEET), instances, 'the slot file has exactly one slot per instance')

  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const file = join(dir, 'slots')
  // The ecosystem's env, as PM2 passes it, with this test's own file, directory and ephemeral ports.
  const base = { ...process.env, ...app.env, PROCSLOT_SLOTS_FILE: file, DATA_DIR: join(dir, 'data'), PORT: '0' }
  const running: JsonLines[] = []
  t.teardown(() => Promise.all(running.map((p) => p.kill())))
  const launch = (instance: number) => {
    const proc = new JsonLines(app.script, [], { env: { ...base, NODE_APP_INSTANCE: String(instance) } })
    running.push(proc)
    return proc
  }
  type Listening = { instance: number; processId: number; processCount: number; pid: number; port: number }
  const listening = async (proc: JsonLines, instance: number) => ({
    proc,
    ...((await proc.next(`instance ${instance} to listen`)) as Listening),
  })
  const start = (instance: number) => listening(launch(instance), instance)
  const stop = async (proc: JsonLines) => {
    proc.child.kill('SIGINT') // what pm2 stop / pm2 reload send
    return deadline(proc.exited, 20_000, 'the instance to stop')
  }

  // PM2 starts the instances together, in no particular order: each takes its own number anyway.
  const order = [3, 1, 0, 2].filter((i) => i < instances)
  const fleet = await Promise.all(order.map(start))
  for (const member of fleet) t.is(member.processId, member.instance, `instance ${member.instance} holds slot ${member.instance}`)
  for (const member of fleet) {
    t.like(await get(member.port), { instance: member.instance, processId: member.instance, processCount: instances })
  }

  // A reload overlap: a new process of instance 1 starts while the old one lives. Every slot is held, so
  // it waits; when PM2 stops the old one, the new one takes slot 1. Never two live holders of slot 1.
  const oldOne = fleet.find((m) => m.instance === 1)!
  const newOne = launch(1)
  t.deepEqual(liveSlots(file), [0, 1, 2, 3].filter((i) => i < instances), 'the new process holds nothing yet')
  t.deepEqual(await stop(oldOne.proc), { code: 0, signal: null })
  const reloaded = await listening(newOne, 1)
  t.is(reloaded.processId, 1, 'the new instance 1 takes slot 1 once the old one is gone')
  fleet[fleet.indexOf(oldOne)] = reloaded

  // Instance 2 crashes and PM2 restarts it with the same number: it gets slot 2 back.
  const crashed = fleet.find((m) => m.instance === 2)!
  await crashed.proc.kill()
  const restarted = await start(2)
  t.not(restarted.pid, crashed.pid)
  t.is(restarted.processId, 2)
  t.deepEqual(liveSlots(file), [0, 1, 2, 3].filter((i) => i < instances))

  const live = [...fleet.filter((m) => m !== crashed), restarted]
  for (const exit of await Promise.all(live.map((m) => stop(m.proc)))) t.deepEqual(exit, { code: 0, signal: null })
  t.deepEqual(liveSlots(file), [], 'pm2 stop frees every slot')
})

/** A base port whose next `n` ports can all be bound now (below the ephemeral range). */
async function freePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000)
    const servers: net.Server[] = []
    try {
      for (let i = 0; i < n; i++) {
        const server = net.createServer()
        servers.push(server)
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(base + i, '127.0.0.1', () => resolve())
        })
      }
      return base
    } catch {
      // taken: try another range
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => (s.listening ? s.close(resolve) : resolve(undefined)))))
    }
  }
  throw new Error(`no ${n} free ports in a row`)
}

test('test-harness: N workers each take a slot and derive their port and scratch directory from it', async (t) => {
  const { dir, cleanup } = tempDir()
  t.teardown(cleanup)
  const base = await freePorts(4)
  const harness = new JsonLines(join(EXAMPLES, 'test-harness', 'harness.js'), ['4'], {
    env: { ...process.env, BASE_PORT: String(base), HARNESS_ROOT: dir },
  })
  t.teardown(() => harness.kill())
  const summary = (await harness.next('the harness summary')) as {
    ok: boolean
    slotsFile: string
    workers: Array<{ processId: number; pid: number; port: number; scratch: string }>
  }
  t.deepEqual(await deadline(harness.exited, 20_000, 'the harness to exit'), { code: 0, signal: null }, harness.output)
  t.true(summary.ok)
  t.deepEqual(
    summary.workers.map((w) => w.processId),
    [0, 1, 2, 3],
  )
  t.is(new Set(summary.workers.map((w) => w.pid)).size, 4)
  for (const w of summary.workers) {
    t.is(w.port, base + w.processId)
    t.is(w.scratch, join(dir, `worker-${w.processId}`))
    t.true(existsSync(w.scratch))
  }
  t.deepEqual(liveSlots(summary.slotsFile), [], 'the workers released their slots')
})
