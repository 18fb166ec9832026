/**
 * The manager when resources run out and events pile up: descriptors at their limit, a full disk, a
 * kernel without pidfds, restart storms, ten thousand daemons. Every manager here runs in a process of its
 * own (fixtures/limits.cjs) under the real limit (`prlimit --nofile`) or the real filter (a seccomp
 * filter that makes `pidfd_open` fail with ENOSYS: fixtures/enosys.py), and the daemons are real processes.
 */
import test, { type ExecutionContext } from 'ava'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { NativePidFileStore } from '../binding.js'
import { FuseProcessManager } from '../index.js'
import { deadline, inCI, isRoot } from './helpers.ts'
import { alive, daemonsWith, sandbox } from './manager-helpers.ts'

const LIMITS = fileURLToPath(new URL('./fixtures/limits.cjs', import.meta.url))
const SLEEPERS = fileURLToPath(new URL('./fixtures/sleepers.py', import.meta.url))
const ENOSYS = fileURLToPath(new URL('./fixtures/enosys.py', import.meta.url))

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0
const hasPython = spawnSync('python3', ['--version']).status === 0
/** Tests that need prlimit and python3 (both installed by CI, where their absence fails). */
const limitsTest = (hasPrlimit && hasPython) || inCI ? test : test.skip
/** Tests that mount a tmpfs: root only (CI runs as root). */
const rootTest = isRoot || inCI ? test : test.skip

type Line = { reply?: unknown; error?: string; event?: string; at?: number; targetId?: string; pid?: number | null; log?: string; code?: string | null }

/** A manager in a process of its own (fixtures/limits.cjs), started behind `prefix` (prlimit, no-pidfd). */
class LimitsManager {
  readonly child: ChildProcess
  readonly events: Line[] = []
  readonly logs: Line[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  output = ''
  readonly #replies: Line[] = []
  readonly #waiters: Array<() => void> = []

  constructor(options: object, prefix: string[] = []) {
    const argv = [...prefix, process.execPath, LIMITS, JSON.stringify(options)]
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })))
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()))
    // A process that died is reported by `until`, not by a write to its closed stdin.
    this.child.stdin!.on('error', () => {})
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      this.output += text + '\n'
      const line = JSON.parse(text) as Line
      if ('reply' in line) this.#replies.push(line)
      else if (line.event !== undefined) this.events.push(line)
      else this.logs.push(line)
      for (const w of this.#waiters.splice(0)) w()
    })
  }

  /** Resolves once `ready()` holds after a line arrived; rejects if the process dies first. */
  async until<T>(ready: () => T | undefined, ms: number, what: string): Promise<T> {
    for (;;) {
      const v = ready()
      if (v !== undefined) return v
      const next = new Promise<void>((resolve) => this.#waiters.push(resolve))
      const died = this.exited.then(({ code, signal }) => {
        throw new Error(`the manager process exited (${code ?? signal}) before ${what}; output:\n${this.output}`)
      })
      await deadline(Promise.race([next, died]), ms, what)
    }
  }

  async reply<T>(what: string, ms = 60_000): Promise<T> {
    const line = await this.until(() => this.#replies.shift(), ms, what)
    if (line.error !== undefined) throw new Error(`${what}: ${line.error}`)
    return line.reply as T
  }

  ask<T>(op: string, args: object = {}, ms = 60_000): Promise<T> {
    this.child.stdin!.write(JSON.stringify({ op, ...args }) + '\n')
    return this.reply<T>(op, ms)
  }

  /** The events named `name` for `targetId`, once there is one. */
  event(name: string, targetId: string, ms = 20_000): Promise<Line> {
    return this.until(() => this.events.find((e) => e.event === name && e.targetId === targetId), ms, `${name} of ${targetId}`)
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    await deadline(this.exited, 20_000, 'the manager process to exit')
  }
}

type Stats = { tracked: number; alive: number; unwatched: number; onDisk: number; listed: number; running: number; fds: number }

/** `n` live adoptable daemons with plain PID files t0..t<n-1> (fixtures/sleepers.py, their parent). */
async function sleepers(t: { teardown: (fn: () => void) => void }, n: number, marker: string, pidDir: string): Promise<number[]> {
  mkdirSync(pidDir, { recursive: true })
  const child = spawn('python3', [SLEEPERS, String(n), pidDir], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, SLEEPERS_MARKER: marker },
  })
  t.teardown(() => child.stdin!.end())
  const [line] = (await deadline(once(createInterface({ input: child.stdout! }), 'line'), 120_000, `${n} sleepers`)) as [string]
  return (JSON.parse(line) as { pids: number[] }).pids
}

/** The files of a PID directory that name targets: PID files and spawn records. */
function targetFiles(pidDir: string): string[] {
  return readdirSync(pidDir).filter((f) => f.endsWith('.pid') || f.endsWith('.record'))
}

/** Every live daemon with `marker` is the one its target's PID file names; returns those without one. */
function withoutPidFile(marker: string, pidDir: string): number[] {
  const named = new Set<number>()
  for (const f of readdirSync(pidDir).filter((f) => f.endsWith('.pid'))) {
    named.add(Number(readFileSync(join(pidDir, f), 'utf8').trim()))
  }
  return daemonsWith(marker).filter((pid) => !named.has(pid))
}

limitsTest('a manager at its descriptor limit (--nofile=256) adopting 300 live daemons, with no error listener, lives on: all listed, each SIGKILLed one gives exit', async (t) => {
  const box = sandbox(t)
  const pids = await sleepers(t, 300, box.marker, box.pidDir)
  const m = new LimitsManager({ pidDir: box.pidDir, marker: box.marker }, ['prlimit', '--nofile=256:256', '--'])
  t.teardown(() => m.stop())
  t.like(await m.reply<object>('construction'), { loaded: 300 })
  const stats = await m.ask<Stats>('stats')
  t.like(stats, { tracked: 300, alive: 300, listed: 300, running: 300 })
  t.true(stats.unwatched > 0, 'past the limit, daemons are watched by the fallback')
  t.true(stats.fds < 256, `${stats.fds} descriptors open`)
  t.log(`${stats.unwatched} of 300 watched without a pidfd; ${stats.fds} descriptors open`)
  // Some from the start of the list (pidfds), some from its end (the fallback).
  const victims = [0, 1, 150, 298, 299]
  const killedAt = Date.now()
  for (const i of victims) process.kill(pids[i]!, 'SIGKILL')
  for (const i of victims) {
    const e = await m.event('exit', `t${i}`, 10_000)
    t.is(e.pid, pids[i])
    t.true(e.at! - killedAt < 1000, `t${i}: exit ${e.at! - killedAt} ms after the kill`)
  }
  t.like(await m.ask<Stats>('stats'), { tracked: 300, alive: 295, listed: 300 })
  t.is(m.logs.filter((l) => l.code === 'EMFILE').length, 1, 'the limit is reported once, through the logger')
  t.is(m.child.exitCode, null, 'the process lives on')
})

limitsTest('a manager adopting 300 daemons holds at most one descriptor per daemon, plus a constant', async (t) => {
  const box = sandbox(t)
  const empty = join(box.dir, 'empty')
  mkdirSync(empty)
  const base = new LimitsManager({ pidDir: empty, marker: box.marker })
  t.teardown(() => base.stop())
  await base.reply('construction')
  const before = (await base.ask<Stats>('stats')).fds
  await sleepers(t, 300, box.marker, box.pidDir)
  const m = new LimitsManager({ pidDir: box.pidDir, marker: box.marker })
  t.teardown(() => m.stop())
  await m.reply('construction')
  const stats = await m.ask<Stats>('stats')
  t.like(stats, { tracked: 300, unwatched: 0 })
  t.log(`${stats.fds} descriptors with 300 daemons watched, ${before} with none`)
  t.true(stats.fds <= before + 300 + 8, `${stats.fds - before} descriptors for 300 daemons`)
})

limitsTest('100 concurrent spawns under --nofile=128 leave no live daemon that no PID file names', async (t) => {
  const box = sandbox(t)
  mkdirSync(box.pidDir, { recursive: true })
  const m = new LimitsManager({ pidDir: box.pidDir, marker: box.marker }, ['prlimit', '--nofile=128:128', '--'])
  t.teardown(() => m.stop())
  await m.reply('construction')
  const ids = Array.from({ length: 100 }, (_, i) => `s${i}`)
  const out = await m.ask<{ ready: number; failed: Array<{ message: string; code: string; reason: string; cause: string | null }> }>('spawn', {
    ids,
    mountBase: join(box.dir, 'mnt'),
  })
  t.log(`${out.ready} ready, ${out.failed.length} refused: ${[...new Set(out.failed.map((f) => f.message.replace(/^target s\d+: /, '')))].slice(0, 4).join(' | ')}`)
  for (const f of out.failed) t.is(f.code, 'ESPAWN', f.message)
  t.is(out.ready + out.failed.length, 100)
  t.deepEqual(withoutPidFile(box.marker, box.pidDir), [], 'every live daemon is named by its PID file')
  t.is(daemonsWith(box.marker).length, out.ready, 'one live daemon for each spawn that resolved, none for the refused ones')
  await m.stop()
  t.deepEqual(withoutPidFile(box.marker, box.pidDir), [], 'and so after its manager is gone')
})

rootTest('a PID directory on a full 64 KiB tmpfs: spawn rejects naming the cause (No space left on device) and leaves no daemon', async (t) => {
  const box = sandbox(t)
  const fs = join(box.dir, 'tiny')
  mkdirSync(fs)
  t.is(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', fs]).status, 0)
  t.teardown(() => void spawnSync('umount', ['-l', fs]))
  const pidDir = join(fs, 'pids')
  const manager = new FuseProcessManager({ pidDir, logDir: box.dir, command: 'sleep', args: () => ['600', box.marker], ready: 'alive', settleMs: 20 })
  t.teardown(() => manager.close())
  spawnSync('dd', ['if=/dev/zero', `of=${join(fs, 'fill')}`, 'bs=4k'])
  const err = await t.throwsAsync(manager.spawn('t1', join(box.dir, 'mnt', 't1')), { code: 'ESPAWN' })
  t.regex(err!.message, /No space left on device/)
  t.is((err as unknown as { errno: number }).errno, -28)
  t.is((err!.cause as { code?: string } | undefined)?.code, 'ENOSPC')
  t.deepEqual(daemonsWith(box.marker), [], 'its process group was killed before the rejection')
  t.deepEqual(targetFiles(pidDir), [])
  t.false(manager.isRunning('t1'))

  // The log on a filesystem with no inode left: the OS's words again.
  const noInodes = join(box.dir, 'no-inodes')
  mkdirSync(noInodes)
  t.is(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,nr_inodes=2,mode=0755', 'tmpfs', noInodes]).status, 0)
  t.teardown(() => void spawnSync('umount', ['-l', noInodes]))
  writeFileSync(join(noInodes, 'x'), '')
  const logs = new FuseProcessManager({ pidDir: box.pidDir, logDir: noInodes, command: 'sleep', args: () => ['600', box.marker], ready: 'alive', settleMs: 20 })
  t.teardown(() => logs.close())
  const logErr = await t.throwsAsync(logs.spawn('t2', join(box.dir, 'mnt', 't2')), { code: 'ESPAWN' })
  t.regex(logErr!.message, /No space left on device/)
  t.like(logErr, { reason: 'log', errno: -28 })
  t.deepEqual(daemonsWith(box.marker), [])
})

/**
 * A restart storm: 10 targets whose daemons (`sh`, with the marker) die every 100 ms, restarted 'always'.
 * The first daemons hold still until all 10 spawns have resolved (while the file `hold` exists): on a busy
 * machine a spawn can take longer than a 100 ms life, and would reject with "exited before it settled".
 */
async function storm(t: ExecutionContext, round: number, script: string) {
  const box = sandbox(t)
  const hold = join(box.dir, 'hold')
  writeFileSync(hold, '')
  const manager = new FuseProcessManager({
    pidDir: box.pidDir,
    command: 'sh',
    args: () => ['-c', `while [ -e ${hold} ]; do sleep 0.02; done; ${script}`, 'storm', box.marker],
    ready: 'alive',
    // Ready at once: on a loaded machine a 100 ms daemon could die inside a settle time, and the storm
    // would end before it began.
    settleMs: 0,
    restart: 'always',
    restartDelayMs: 10,
    restartMaxDelayMs: 40,
    maxRestarts: 10_000,
  })
  // A round that fails half-way must not leave a manager restarting daemons for ever (it would keep the
  // test process alive): torn down before the sandbox's own teardown kills what is left.
  t.teardown(async () => {
    await manager.cleanupAll({ force: true })
    manager.close()
  })
  const ids = Array.from({ length: 10 }, (_, i) => `r${round}-${i}`)
  await Promise.all(ids.map((id) => manager.spawn(id, box.mnt(id))))
  rmSync(hold)
  // Let it rage: until 20 + 5 * round restarts have happened.
  let restarts = 0
  await deadline(
    new Promise<void>((resolve) => manager.on('restart', () => ++restarts === 20 + 5 * round && resolve())),
    30_000,
    'the storm',
  )
  return { box, manager, ids }
}

test('cleanupAll() during a restart storm, 5 rounds: when it resolves nothing of its targets runs and no PID file or record is left', async (t) => {
  for (let round = 0; round < 5; round++) {
    const { box, manager } = await storm(t, round, 'sleep 0.1; exit 1')
    await manager.cleanupAll()
    manager.close()
    t.deepEqual(daemonsWith(box.marker), [], `round ${round}: no daemon runs`)
    t.deepEqual(targetFiles(box.pidDir), [], `round ${round}: no PID file or record`)
  }
})

test('cleanupAll() without close() during a restart storm: nothing comes back afterwards', async (t) => {
  const { box, manager, ids } = await storm(t, 0, 'sleep 0.1; exit 1')
  await manager.cleanupAll()
  t.deepEqual(daemonsWith(box.marker), [])
  // Whatever was still on its way (a death reported late, a timer) must not start anything: a spawn of
  // a new target after it goes through the same queue and lock, so once it is done, so is all before it.
  const later = new FuseProcessManager({ pidDir: box.pidDir, command: 'sleep', args: () => ['600', box.marker], ready: 'alive', settleMs: 20 })
  t.teardown(() => later.close())
  for (const id of ids) t.false(later.isRunning(id), id)
  t.deepEqual(daemonsWith(box.marker), [])
  t.deepEqual(targetFiles(box.pidDir), [])
  t.true(manager.listAllProcesses().every((p) => !p.alive))
})

test('close() during a restart storm, 5 rounds: no daemon is left running without its PID file', async (t) => {
  for (let round = 0; round < 5; round++) {
    const flag = join(sandbox(t).dir, 'crash')
    writeFileSync(flag, '')
    // Crash while the flag is there; once it is gone, a daemon (a restart in progress) stays up, as
    // `sleep 600 <marker>` ($1: the marker), so that it is still found by its marker.
    const { box, manager, ids } = await storm(t, round, `if [ -e ${flag} ]; then sleep 0.1; exit 1; fi; exec sleep 600 "$1"`)
    rmSync(flag)
    manager.close()
    // A restart in progress holds its target's lock until it is done (or undone): wait for each lock.
    const store = NativePidFileStore.open(box.pidDir)
    for (const id of ids) (await deadline(store.lock(id), 30_000, `the lock of ${id}`)).release()
    t.deepEqual(withoutPidFile(box.marker, box.pidDir), [], `round ${round}: every live daemon has its PID file`)
    const left = daemonsWith(box.marker)
    t.log(`round ${round}: ${left.length} daemons left running, each with its PID file`)
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {} // gone since it was listed
    }
  }
})

limitsTest('without pidfds (pidfd_open fails with ENOSYS): adopted and spawned daemons SIGKILLed give exit within 1 s, and a restart works', async (t) => {
  const box = sandbox(t)
  const pids = await sleepers(t, 5, box.marker, box.pidDir)
  const m = new LimitsManager({ pidDir: box.pidDir, marker: box.marker }, ['python3', ENOSYS, 'pidfd_open'])
  t.teardown(() => m.stop())
  t.like(await m.reply<object>('construction'), { loaded: 5 })
  t.like(await m.ask<object>('spawn', { ids: ['r'], mountBase: join(box.dir, 'mnt'), restart: 'on-failure' }), { ready: 1 })
  t.like(await m.ask<Stats>('stats'), { tracked: 6, alive: 6, unwatched: 6 })
  const killedAt = Date.now()
  for (const pid of pids) process.kill(pid, 'SIGKILL')
  for (let i = 0; i < pids.length; i++) {
    const e = await m.event('exit', `t${i}`, 10_000)
    t.true(e.at! - killedAt < 1000, `t${i}: exit ${e.at! - killedAt} ms after the kill`)
  }
  const spawned = m.events.find((e) => e.event === 'spawn' && e.targetId === 'r')!.pid!
  const at = Date.now()
  process.kill(spawned, 'SIGKILL')
  const exit = await m.event('exit', 'r', 10_000)
  t.true(exit.at! - at < 1000, `r: exit ${exit.at! - at} ms after the kill`)
  const restart = await m.event('restart', 'r', 10_000)
  t.not(restart.pid, spawned)
  t.true(alive(restart.pid!))
  t.is(readFileSync(join(box.pidDir, 'r.pid'), 'utf8'), `${restart.pid}\n`)
  t.is(m.logs.filter((l) => l.code === 'EMFILE').length, 0, 'no pidfds is not running out of descriptors')
  await m.ask('cleanupAll')
  t.deepEqual(daemonsWith(box.marker), [])
  t.false(existsSync(join(box.pidDir, 'r.pid')))
})

limitsTest('10 000 adopted daemons under --nofile=12000: loaded and watched through pidfds, each SIGKILLed one gives exit within a second, cleanupAll() leaves nothing', async (t) => {
  t.timeout(5 * 60_000)
  const box = sandbox(t)
  const started = Date.now()
  const pids = await sleepers(t, 10_000, box.marker, box.pidDir)
  const ready = Date.now()
  const m = new LimitsManager({ pidDir: box.pidDir, marker: box.marker }, ['prlimit', '--nofile=12000:12000', '--'])
  t.teardown(() => m.stop())
  t.like(await m.reply<object>('construction', 120_000), { loaded: 10_000 })
  const loaded = Date.now()
  const stats = await m.ask<Stats>('stats', {}, 120_000)
  t.like(stats, { tracked: 10_000, alive: 10_000, listed: 10_000, unwatched: 0 })
  t.true(stats.fds <= 10_000 + 40, `${stats.fds} descriptors`)
  const victims = [0, 1, 2, 3, 4, 5000, 9995, 9996, 9998, 9999]
  const killedAt = Date.now()
  for (const i of victims) process.kill(pids[i]!, 'SIGKILL')
  for (const i of victims) {
    const e = await m.event('exit', `t${i}`, 10_000)
    t.true(e.at! - killedAt < 1000, `t${i}: exit ${e.at! - killedAt} ms after the kill`)
  }
  const cleaning = Date.now()
  await m.ask('cleanupAll', {}, 240_000)
  t.log(
    `started in ${ready - started} ms, loaded and watched in ${loaded - ready} ms, exits within ${Math.max(...m.events.filter((e) => e.event === 'exit').map((e) => e.at! - killedAt))} ms, cleanupAll in ${Date.now() - cleaning} ms`,
  )
  t.deepEqual(daemonsWith(box.marker), [])
  t.deepEqual(targetFiles(box.pidDir), [])
})
