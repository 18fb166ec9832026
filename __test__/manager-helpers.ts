/**
 * What the manager's test files share: a sandbox (PID directory, bindfs source, mount points, managers
 * torn down with everything they mounted), and looks at the real system (mount table, /proc) that never
 * go through the code under test.
 */
import test from 'ava'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, fstatSync, openSync, readSync, mkdirSync, readFileSync, readdirSync, watch, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { FuseProcessManager } from '../index.js'
import { JsonLines, deadline, inCI, isRoot, tempDir } from './helpers.ts'

export const DAEMON = fileURLToPath(new URL('./fixtures/daemon.cjs', import.meta.url))
export const MANAGER = fileURLToPath(new URL('./fixtures/manager.cjs', import.meta.url))
export const MANAGER_REPL = fileURLToPath(new URL('./fixtures/manager-repl.cjs', import.meta.url))
export const VICTIM = fileURLToPath(new URL('./fixtures/victim.cjs', import.meta.url))

export const hasBindfs = spawnSync('bindfs', ['--version']).status === 0
export const hasFuse = existsSync('/dev/fuse')
export const fuseReady = hasBindfs && hasFuse && isRoot
/** Real FUSE tests: run wherever bindfs, /dev/fuse and root are there; in CI their absence is a failure. */
export const fuseTest = fuseReady || inCI ? test : test.skip

/** A sandbox: a PID directory, a bindfs source with one file, and a place for mount points. */
export function sandbox(t: { teardown: (fn: () => void | Promise<void>) => void }) {
  const tmp = tempDir('procslot-mgr-')
  const pidDir = join(tmp.dir, 'pids')
  const src = join(tmp.dir, 'src')
  mkdirSync(src)
  writeFileSync(join(src, 'hello.txt'), 'hello through FUSE\n')
  const managers: FuseProcessManager[] = []
  const bindfs = (options: Partial<ConstructorParameters<typeof FuseProcessManager>[0]> = {}) => {
    const m = new FuseProcessManager({
      pidDir,
      command: 'bindfs',
      args: ({ mountPath }) => ['-f', src, mountPath],
      startTimeoutMs: 20_000,
      ...options,
    })
    managers.push(m)
    return m
  }
  const node = (mode: string[], options: Partial<ConstructorParameters<typeof FuseProcessManager>[0]> = {}) => {
    const m = new FuseProcessManager({
      pidDir,
      command: process.execPath,
      args: () => [DAEMON, ...mode],
      ready: 'alive',
      settleMs: 100,
      ...options,
    })
    managers.push(m)
    return m
  }
  /** Digits only, so that `sleep 600 <marker>` takes it as a number (sleep adds its arguments up). */
  const marker = `0.${process.pid}${Math.floor(Math.random() * 1e9)}`
  /** A manager of `sleep 600 <marker>` daemons (ready when alive): cheap to start by the hundred. */
  const sleep = (options: Partial<ConstructorParameters<typeof FuseProcessManager>[0]> = {}) => {
    const m = new FuseProcessManager({
      pidDir,
      command: 'sleep',
      args: () => ['600', marker],
      ready: 'alive',
      settleMs: 20,
      ...options,
    })
    managers.push(m)
    return m
  }
  t.teardown(async () => {
    for (const m of managers) await m.cleanupAll({ force: true }).catch(() => {})
    // Daemons other processes started (and left behind when a test failed half-way).
    for (const pid of [...processesWith(marker), ...processesWith(tmp.dir)]) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    // Anything still mounted under the sandbox (a test that failed half-way) goes before the files do.
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const point = line.split(' ')[4]
      if (point?.startsWith(tmp.dir)) spawnSync('umount', ['-l', point])
    }
    tmp.cleanup()
  })
  return { dir: tmp.dir, pidDir, src, marker, mnt: (name: string) => join(tmp.dir, 'mnt', name), bindfs, node, sleep }
}

export function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === path)
}

export function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Processes whose command line mentions `needle`. */
export function processesWith(needle: string): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle) && alive(Number(name))) out.push(Number(name))
    } catch {}
  }
  return out
}

/** Resolves once `file` ends with `suffix`; the file is created empty first, then watched (not polled). */
export function logEndsWith(file: string, suffix: string): Promise<void> {
  writeFileSync(file, '')
  return new Promise((resolve) => {
    const check = () => {
      const fd = openSync(file, 'r')
      try {
        const size = fstatSync(fd).size
        const end = Buffer.alloc(Math.min(size, suffix.length))
        readSync(fd, end, 0, end.length, size - end.length)
        if (end.toString() !== suffix) return
      } finally {
        closeSync(fd)
      }
      watcher.close()
      resolve()
    }
    const watcher = watch(file, check)
    check()
  })
}

/** A process the manager must never signal; `signals()` reports what it received. */
export async function victim(t: { teardown: (fn: () => void) => void }) {
  const child = spawn(process.execPath, [VICTIM], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => child.kill('SIGKILL'))
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const first = JSON.parse((await deadline(lines.next(), 20_000, 'the victim to start')).value) as { pid: number }
  return {
    pid: first.pid,
    child,
    async signals(): Promise<string[]> {
      child.stdin!.write('signals\n')
      const next = await deadline(lines.next(), 20_000, 'the victim to answer')
      if (next.done) throw new Error('the victim died')
      return (JSON.parse(next.value) as { received: string[] }).received
    },
  }
}

/** Runs the manager fixture in a process of its own; resolves with its report once it has exited. */
export async function managerProcess(args: object): Promise<{ pid?: number; error?: string; code: number | null }> {
  const child: ChildProcess = spawn(process.execPath, [MANAGER, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  // 'close', not 'exit': its stdout may still hold the report when it has exited.
  const [code] = (await deadline(once(child, 'close'), 40_000, 'the manager process')) as [number | null]
  return { ...JSON.parse(out.trim() || '{}'), code }
}


/** A manager in a process of its own (fixtures/manager-repl.cjs), driven one JSON command at a time. */
export class ManagerProcess {
  readonly lines: JsonLines
  pid = 0

  private constructor(options: object) {
    this.lines = new JsonLines(MANAGER_REPL, [JSON.stringify(options)])
  }

  /** Starts one and waits until its manager is constructed. */
  static async start(options: { pidDir: string; daemon: 'sleep' | 'bindfs'; marker?: string; src?: string; dieAfterMs?: number; settleMs?: number }): Promise<ManagerProcess> {
    const m = new ManagerProcess(options)
    const ready = await m.lines.next('the manager process to start')
    m.pid = ready.pid as number
    return m
  }

  /** Sends a command without waiting for its answer. */
  send(op: string, targetId: string, mountPath?: string): void {
    this.lines.child.stdin!.write(JSON.stringify({ op, targetId, mountPath }) + '\n')
  }

  /** Runs a command; resolves with its value, rejects with its error. */
  async call(op: string, targetId: string, mountPath?: string): Promise<unknown> {
    this.send(op, targetId, mountPath)
    const r = await this.lines.next(op)
    if (!r.ok) throw Object.assign(new Error(String(r.error)), { reason: r.reason })
    return r.value
  }

  stop(): Promise<unknown> {
    return this.lines.stop()
  }
}

/** Live processes (not zombies) that have `marker` as a whole argument and are not node (a manager). */
export function daemonsWith(marker: string): number[] {
  return processesWith(marker).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      return argv.includes(marker) && argv[0] !== process.execPath
    } catch {
      return false
    }
  })
}

/** Mount points under `dir`, from the mount table. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.startsWith(dir + '/'))
}

/** Runs `work(i)` for i in 0..n-1, at most `concurrency` at a time. */
export async function pool(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < n) await work(next++)
  }
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, lane))
}
