import { spawn as spawnChild, type ChildProcess } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, statSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { join, resolve } from 'node:path'

import { ProcessError, SpawnError, TargetLockedError, nativeError } from './errors'
import {
  isMountPoint,
  openProcess,
  processIdentity,
  startedAfter,
  unmountLazy,
  type NativeProcess,
  type NativeTargetLock,
} from './native'
import { PidFileStore, checkTargetId, toPidFileInfo, type PidFileInfo } from './pidfile'
import { checkFunction, checkMs, checkObject, checkOneOf, checkString, optional } from './validate'

/** Anything with pino- or console-style logging methods. Each is called as `(fields, message)`. */
export interface Logger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

/** What `args` is given to build a daemon's command line. */
export interface SpawnContext {
  /** The target being started. */
  readonly targetId: string
  /** Where its filesystem is to be mounted (absolute). */
  readonly mountPath: string
}

/** Options of {@link FuseProcessManager}. */
export interface FuseProcessManagerOptions {
  /** The PID-file directory, created (mode 0755) if missing. Shared by every manager of these daemons. */
  readonly pidDir: string
  /** The daemon's executable (looked up on `PATH`), e.g. `bindfs` or your FUSE daemon. */
  readonly command: string
  /**
   * The daemon's arguments for a target. It must stay in the foreground (`-f` for most FUSE daemons):
   * the manager tracks the process it started.
   * @default ({ mountPath }) => [mountPath]
   */
  readonly args?: (context: SpawnContext) => readonly string[]
  /**
   * When a spawned daemon counts as started: `'mount'` once `mountPath` is a mount point, `'alive'` once
   * it has stayed up for `settleMs`.
   * @default 'mount'
   */
  readonly ready?: 'mount' | 'alive'
  /**
   * Where each daemon's output is appended, as `<logDir>/<targetId>.log` (never an unread pipe).
   * @default pidDir
   */
  readonly logDir?: string
  /** Receives what the manager does; secrets in environments are redacted. @default silent */
  readonly logger?: Logger
  /** How long `kill` waits after SIGTERM before SIGKILL. @default 10000 */
  readonly killTimeoutMs?: number
  /** How long `spawn` waits for a daemon to be ready. @default 10000 */
  readonly startTimeoutMs?: number
  /** With `ready: 'alive'`: how long a daemon must stay up to count as started. @default 250 */
  readonly settleMs?: number
}

/** Options of {@link FuseProcessManager.kill}. */
export interface KillOptions {
  /** SIGKILL at once instead of SIGTERM first. @default false */
  readonly force?: boolean
  /** How long to wait after SIGTERM before SIGKILL. @default the manager's `killTimeoutMs` (10000) */
  readonly timeoutMs?: number
}

/** A tracked daemon. */
export interface ProcessInfo {
  readonly targetId: string
  readonly pid: number
  /**
   * Where it mounts (absolute). For a process loaded from a PID file, the path its spawner recorded
   * beside it (`.<targetId>.mount`); `null` when none was (a PID file written by another tool).
   */
  readonly mountPath: string | null
  /** When the process started. */
  readonly startTime: Date
  /** Names (never values) of the environment variables it was given on top of `process.env`. */
  readonly envKeys: readonly string[]
  /** `exited` once it is known to be dead. */
  readonly status: 'running' | 'exited'
  /** Found through its PID file rather than spawned by this manager. */
  readonly loadedFromDisk: boolean
  /** Alive right now. */
  readonly alive: boolean
  /** Its PID file. */
  readonly pidFile: string
  /** Whether its PID file exists right now. */
  readonly pidFileExists: boolean
}

/** What {@link FuseProcessManager.getStats} returns (the Python manager's `get_stats`, camelCased). */
export interface ManagerStats {
  readonly totalTracked: number
  readonly alive: number
  readonly dead: number
  /** How many processes this manager has spawned in its life. */
  readonly allPidsEverSpawned: number
  readonly pidFilesOnDisk: number
  readonly pidDirectory: string
  readonly processes: ReadonlyArray<{
    readonly targetId: string
    readonly pid: number
    readonly alive: boolean
    readonly uptimeSeconds: number
    readonly mountPath: string | null
    readonly pidFile: string
    readonly pidFileExists: boolean
  }>
}

/** A PID file the manager will not touch. */
export interface UntrustedPidFile {
  readonly targetId: string
  readonly path: string
  readonly reason: string
}

/** Payloads of the manager's events. */
export interface ManagerEvents {
  /** A daemon was started and is ready. */
  spawn: [info: ProcessInfo]
  /** A tracked daemon died on its own (not through `kill`). */
  exit: [event: { targetId: string; pid: number; code: number | null; signal: NodeJS.Signals | null }]
  /** A daemon was killed through `kill`. */
  kill: [event: { targetId: string; pid: number | null; signal: 'SIGTERM' | 'SIGKILL' | null }]
  /** A PID file was dropped: its process is dead, its PID was reused, or its content is invalid. */
  stale: [event: { targetId: string; pid: number | null; path: string; reason: string }]
  /** Something failed in the background (a cleanup step). */
  error: [error: Error]
}

/**
 * A tracked process: its PID pinned by its start time. The native handle (a pidfd) is opened on first
 * use, so that loading thousands of PID files opens no descriptor until one is needed.
 */
class Proc {
  #handle: NativeProcess | null | undefined

  constructor(
    readonly pid: number,
    readonly startTicks: number,
    readonly startTimeMs: number,
    handle?: NativeProcess,
  ) {
    this.#handle = handle
  }

  /** The handle, or `null` once the process is gone (or its PID belongs to another process). */
  get handle(): NativeProcess | null {
    if (this.#handle === undefined) this.#handle = openProcess(this.pid, this.startTicks)
    return this.#handle
  }

  isAlive(): boolean {
    const h = this.handle
    return h !== null && h.isAlive()
  }

  signalGroup(signal: number): 'group' | 'process' | 'gone' {
    const h = this.handle
    return h === null ? 'gone' : h.signalGroup(signal)
  }

  waitExit(timeoutMs: number): Promise<boolean> {
    const h = this.handle
    return h === null ? Promise.resolve(true) : h.waitExit(timeoutMs)
  }
}

/** What the process table said of a PID file's process when it was read. */
interface Seen {
  readonly startTicks: number
  readonly startTimeMs: number
  readonly zombie: boolean
}

interface Tracked {
  readonly targetId: string
  readonly pid: number
  readonly proc: Proc
  /**
   * Where it mounts; `null` when unknown; `undefined` for a daemon loaded from a PID file until its
   * recorded mount path (`.<targetId>.mount`) is first needed (loading 10,000 files reads none of them).
   */
  mountPath: string | null | undefined
  readonly envKeys: readonly string[]
  readonly loadedFromDisk: boolean
  readonly child: ChildProcess | null
  killing: boolean
  exitReported: boolean
}

const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} }
const SECRET = /KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL/i
const SIG = osConstants.signals
/** How long a SIGKILLed process may take to be gone before `kill` gives up on it. */
const AFTER_SIGKILL_MS = 5000

/** Environment values whose names look like credentials, replaced by `[redacted]`. @internal */
export function redactEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(env)) out[k] = SECRET.test(k) ? '[redacted]' : v
  return out
}

function positive(name: string, value: number | undefined, fallback: number): number {
  return optional(value, fallback, (v) => checkMs(name, v))
}

/**
 * Supervises one long-running daemon per target — first of all FUSE filesystems — and tracks each in
 * memory and in a standard PID file (`<pidDir>/<targetId>.pid`), so that a restarted manager finds them
 * again. The port of the Python dual-tracking manager, without its flaws: atomic PID files, output to log
 * files instead of unread pipes, readiness and exits waited for on the events themselves, never a signal
 * to a process that is not its own, target IDs checked before they become paths, and daemons that outlive
 * the manager.
 *
 * @example
 * ```js
 * const manager = new FuseProcessManager({
 *   pidDir: '/run/myapp/fuse',
 *   command: 'bindfs',
 *   args: ({ mountPath, targetId }) => ['-f', `/srv/data/${targetId}`, mountPath],
 * })
 * await manager.spawn('target-123', '/mnt/target-123')
 * manager.isRunning('target-123') // true
 * await manager.kill('target-123')
 * ```
 */
export class FuseProcessManager extends EventEmitter<ManagerEvents> {
  /** The PID-file directory. */
  readonly pidDir: string
  /** How many live daemons construction found through their PID files. */
  readonly loaded: number
  /** How many stale or invalid PID files construction deleted. */
  readonly cleaned: number
  /** PID files construction found but will not touch (another owner, writable by others, a link). */
  readonly untrusted: readonly UntrustedPidFile[]

  readonly #store: PidFileStore
  readonly #command: string
  readonly #args: (context: SpawnContext) => readonly string[]
  readonly #ready: 'mount' | 'alive'
  readonly #logDir: string
  readonly #log: Logger
  readonly #killTimeoutMs: number
  readonly #startTimeoutMs: number
  readonly #settleMs: number
  readonly #tracked = new Map<string, Tracked>()
  readonly #queues = new Map<string, Promise<unknown>>()
  #spawnedCount = 0

  /**
   * Creates `pidDir` and loads every PID file in it: live daemons are tracked (`loadedFromDisk: true`),
   * stale files (dead process, reused PID) and invalid ones are deleted, untrusted ones are reported and
   * left alone.
   * @throws {PidFileError} `EUNSAFE` for a world-writable `pidDir` without the sticky bit, or the
   * operating system's error.
   */
  constructor(options: FuseProcessManagerOptions) {
    super()
    checkObject('options', options)
    checkString('options.command', options.command)
    if (options.args !== undefined) checkFunction('options.args', options.args)
    if (options.ready !== undefined) checkOneOf('options.ready', options.ready, ['mount', 'alive'])
    this.#store = new PidFileStore(options.pidDir)
    this.pidDir = options.pidDir
    this.#command = options.command
    this.#args = options.args ?? (({ mountPath }) => [mountPath])
    this.#ready = options.ready ?? 'mount'
    this.#logDir = options.logDir ?? options.pidDir
    this.#log = options.logger ?? SILENT
    this.#killTimeoutMs = positive('killTimeoutMs', options.killTimeoutMs, 10_000)
    this.#startTimeoutMs = positive('startTimeoutMs', options.startTimeoutMs, 10_000)
    this.#settleMs = positive('settleMs', options.settleMs, 250)

    const { runningIds, runningPids, runningStartTicks, runningStartTimeMs, others } = this.#store.native.load()
    this.#log.info({ pidDir: this.pidDir, files: runningIds.length + others.length }, 'loading PID files')
    // Files naming a live process that started before them (judged natively): adopted as they come.
    for (let i = 0; i < runningIds.length; i++) {
      this.#trackLoaded(runningIds[i]!, runningPids[i]!, runningStartTicks[i]!, runningStartTimeMs[i]!)
    }
    let loaded = runningIds.length
    let cleaned = 0
    const untrusted: UntrustedPidFile[] = []
    // The rest (stale, reused, invalid, untrusted) one by one, with the same rules as later look-ups.
    for (const other of others) {
      const entry = toPidFileInfo(other.entry)
      const seen: Seen | null =
        other.startTicks == null
          ? null
          : { startTicks: other.startTicks, startTimeMs: other.startTimeMs!, zombie: other.zombie }
      const outcome = this.#adopt(entry, false, seen)
      if (outcome === 'adopted') loaded++
      else if (outcome === 'cleaned') cleaned++
      else if (outcome === 'untrusted') {
        untrusted.push({ targetId: entry.targetId, path: entry.path, reason: entry.reason ?? 'untrusted' })
      }
    }
    this.loaded = loaded
    this.cleaned = cleaned
    this.untrusted = untrusted
    this.#log.info({ loaded, cleaned, untrusted: untrusted.length }, 'PID file loading complete')
  }

  /** Tracked daemons by target ID (a read-only view). */
  get processes(): ReadonlyMap<string, ProcessInfo> {
    return new Map([...this.#tracked.values()].map((t) => [t.targetId, this.#info(t)]))
  }

  /**
   * The path of the target's PID file.
   * @throws {InvalidTargetIdError}
   */
  pidFileFor(targetId: string): string {
    return this.#store.pathFor(targetId)
  }

  /**
   * Starts the target's daemon, or returns the running one (found in memory, then through its PID file)
   * without starting another. The daemon runs `command` with `args({ targetId, mountPath })` in its own
   * process group, detached (it outlives the manager), with `env` over `process.env` and its output
   * appended to `<logDir>/<targetId>.log`. Resolves once it is ready — `mountPath` is a mount point, or
   * with `ready: 'alive'` it stayed up for `settleMs` — with its PID file written and it tracked.
   *
   * Two calls for one target at once — in this manager or in managers of other processes sharing
   * `pidDir` — never start two daemons.
   * @throws {InvalidTargetIdError}
   * @throws {SpawnError} it exited, was not ready within `startTimeoutMs`, or could not be started; its
   * process group was killed and nothing stays tracked or on disk. `logTail` has the end of its log.
   */
  spawn(targetId: string, mountPath: string, env: Readonly<Record<string, string>> = {}): Promise<ProcessInfo> {
    try {
      checkTargetId(targetId)
      checkString('mountPath', mountPath)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#serialize(targetId, this.#startTimeoutMs, (why) =>
      new SpawnError(`target ${targetId}: ${why}`, { targetId, reason: 'locked' }),
      () => this.#spawnLocked(targetId, resolve(mountPath), env),
    )
  }

  /**
   * Stops the target's daemon: SIGTERM (then SIGCONT, so that a stopped process can act on it) to its
   * process group, SIGKILL if it is still there after `timeoutMs` (at once with `force`), resolving as soon
   * as it is gone. Then unmounts its mount point if it is still mounted (a dead FUSE daemon leaves
   * "Transport endpoint is not connected" behind), forgets it and deletes its PID file. Resolves `true`,
   * also for a target that is unknown or already dead (cleaned up all the same); `false` when its PID file
   * is untrusted (left alone, nothing signalled).
   *
   * The PID comes from memory or from the PID file, and is never signalled unless the process is still
   * the one recorded (same start time; for a PID file, started before the file was written).
   * @throws {InvalidTargetIdError}
   * @throws {TargetLockedError} another call kept the target busy past `timeoutMs`.
   */
  kill(targetId: string, options: KillOptions = {}): Promise<boolean> {
    let timeoutMs: number
    try {
      checkTargetId(targetId)
      timeoutMs = positive('timeoutMs', options.timeoutMs, this.#killTimeoutMs)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#serialize(
      targetId,
      timeoutMs + AFTER_SIGKILL_MS + this.#startTimeoutMs,
      (why) => new TargetLockedError(targetId, why),
      () => this.#killLocked(targetId, options.force === true, timeoutMs),
    )
  }

  /**
   * Whether the target's daemon is running: memory first, else its PID file — a live process found there
   * (and not a reused PID) is loaded into memory.
   * @throws {InvalidTargetIdError}
   */
  isRunning(targetId: string): boolean {
    const t = this.#tracked.get(targetId)
    if (t !== undefined) return t.proc.isAlive()
    checkTargetId(targetId)
    const entry = this.#store.inspect(targetId)
    return entry !== null && this.#adopt(entry, true) === 'adopted'
  }

  /**
   * The tracked daemon of a target (memory, then its PID file), or `null`.
   * @throws {InvalidTargetIdError}
   */
  getProcessInfo(targetId: string): ProcessInfo | null {
    if (!this.#tracked.has(targetId)) this.isRunning(targetId)
    const t = this.#tracked.get(targetId)
    return t ? this.#info(t) : null
  }

  /** Every tracked daemon. */
  listAllProcesses(): ProcessInfo[] {
    return [...this.#tracked.values()].map((t) => this.#info(t))
  }

  /**
   * Drops dead daemons from memory and disk (and lazily unmounts what they left mounted), and deletes PID
   * files of dead processes that were not tracked. Returns how many were dropped. Targets busy in a
   * `spawn` or `kill` are left to it.
   */
  cleanupDeadProcesses(): number {
    let dropped = 0
    for (const t of [...this.#tracked.values()]) {
      if (t.proc.isAlive() || t.killing || this.#queues.has(t.targetId)) continue
      this.#reportExit(t, null, null)
      this.#forget(t, 'its process is dead')
      dropped++
    }
    for (const entry of this.#store.list()) {
      if (this.#tracked.has(entry.targetId) || this.#queues.has(entry.targetId)) continue
      if (this.#adopt(entry, true) === 'cleaned') dropped++
    }
    return dropped
  }

  /** Kills every tracked daemon (see {@link kill}). */
  async cleanupAll(options: { force?: boolean } = {}): Promise<void> {
    await Promise.all([...this.#tracked.keys()].map((id) => this.kill(id, { force: options.force })))
  }

  /** Counts and per-daemon details, in the Python manager's shape (camelCased). */
  getStats(): ManagerStats {
    const now = Date.now()
    const processes = [...this.#tracked.values()].map((t) => {
      const pidFile = this.#store.pathFor(t.targetId)
      return {
        targetId: t.targetId,
        pid: t.pid,
        alive: t.proc.isAlive(),
        uptimeSeconds: Math.max(0, (now - t.proc.startTimeMs) / 1000),
        mountPath: this.#mountOf(t),
        pidFile,
        pidFileExists: existsSync(pidFile),
      }
    })
    const alive = processes.filter((p) => p.alive).length
    return {
      totalTracked: processes.length,
      alive,
      dead: processes.length - alive,
      allPidsEverSpawned: this.#spawnedCount,
      pidFilesOnDisk: this.#store.list().length,
      pidDirectory: this.pidDir,
      processes,
    }
  }

  // ---- internals ------------------------------------------------------------------------------------

  /**
   * Runs `work` for one target at a time: after earlier calls of this manager for it, and holding the
   * target's lock in `pidDir` (other processes). Waiting for the lock ends after `lockTimeoutMs`.
   */
  #serialize<T>(
    targetId: string,
    lockTimeoutMs: number,
    lockedError: (why: string) => Error,
    work: () => Promise<T>,
  ): Promise<T> {
    const before = this.#queues.get(targetId) ?? Promise.resolve()
    const run = before.then(async () => {
      const lock = await this.#lock(targetId, lockTimeoutMs, lockedError)
      try {
        return await work()
      } finally {
        lock.release()
      }
    })
    const tail = run.catch(() => {})
    this.#queues.set(targetId, tail)
    void tail.then(() => {
      if (this.#queues.get(targetId) === tail) this.#queues.delete(targetId)
    })
    return run
  }

  async #lock(targetId: string, timeoutMs: number, lockedError: (why: string) => Error): Promise<NativeTargetLock> {
    const native = this.#store.native
    let now: NativeTargetLock | null
    try {
      now = native.tryLock(targetId)
    } catch (err) {
      throw nativeError(err, { targetId })
    }
    if (now) return now
    this.#log.debug({ targetId }, 'target busy in another process; waiting for its lock')
    const waiting = native.lock(targetId).catch((err: unknown) => {
      throw nativeError(err, { targetId })
    })
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((res) => {
      timer = setTimeout(res, timeoutMs, 'timeout')
    })
    const got = await Promise.race([waiting, timedOut]).finally(() => clearTimeout(timer))
    if (got === 'timeout') {
      // The waiting thread still gets the lock some day: let it go at once then.
      waiting.then((l) => l.release(), () => {})
      throw lockedError(`busy in another process for more than ${timeoutMs} ms`)
    }
    return got
  }

  async #spawnLocked(
    targetId: string,
    mountPath: string,
    env: Readonly<Record<string, string>>,
  ): Promise<ProcessInfo> {
    if (this.isRunning(targetId)) {
      const t = this.#tracked.get(targetId)!
      this.#log.debug({ targetId, pid: t.pid }, 'already running')
      return this.#info(t)
    }
    const old = this.#tracked.get(targetId)
    if (old !== undefined) {
      // Dead (isRunning said so): drop it and what it left mounted before starting another.
      this.#reportExit(old, null, null)
      this.#forget(old, 'its process is dead')
    }
    if (isMountPoint(mountPath)) {
      if (!isStaleMount(mountPath)) {
        throw new SpawnError(`target ${targetId}: ${mountPath} is already a mount point`, {
          targetId,
          reason: 'mounted',
        })
      }
      this.#unmount(targetId, mountPath)
    }
    mkdirSync(mountPath, { recursive: true })
    mkdirSync(this.#logDir, { recursive: true })
    const logFile = join(this.#logDir, `${targetId}.log`)
    const args = [...this.#args({ targetId, mountPath })]
    this.#log.info(
      { targetId, mountPath, command: this.#command, args, env: redactEnv(env), logFile },
      'spawning daemon',
    )
    const fd = openSync(logFile, 'a', 0o640)
    let child: ChildProcess
    try {
      child = spawnChild(this.#command, args, {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, ...env },
      })
    } finally {
      closeSync(fd)
    }
    child.unref()
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    exited.catch(() => {})
    try {
      await once(child, 'spawn')
    } catch (err) {
      throw new SpawnError(`target ${targetId}: ${this.#command} could not be started: ${(err as Error).message}`, {
        targetId,
        reason: 'spawn',
        logFile,
        logTail: tail(logFile),
        cause: err,
      })
    }
    const pid = child.pid!
    this.#spawnedCount++
    const proc = openProcess(pid)
    const fail = async (reason: 'exited' | 'timeout', what: string): Promise<never> => {
      if (proc) {
        proc.signalGroup(SIG.SIGKILL)
        await awaitNative(proc.waitExit(AFTER_SIGKILL_MS), AFTER_SIGKILL_MS)
      }
      if (isMountPoint(mountPath)) this.#unmount(targetId, mountPath)
      let code: number | null = null
      let signal: NodeJS.Signals | null = null
      if (reason === 'exited') [code, signal] = await exited
      throw new SpawnError(`target ${targetId}: ${this.#command} (PID ${pid}) ${what}`, {
        targetId,
        reason,
        exitCode: code,
        signal,
        logFile,
        logTail: tail(logFile),
      })
    }
    if (proc === null) return fail('exited', 'exited at once')
    const outcome =
      this.#ready === 'mount'
        ? await awaitNative(proc.waitMount(mountPath, this.#startTimeoutMs), this.#startTimeoutMs)
        : (await awaitNative(proc.waitExit(this.#settleMs), this.#settleMs))
          ? 'exited'
          : 'mounted'
    if (outcome === 'exited') {
      return fail('exited', `exited before ${this.#ready === 'mount' ? `${mountPath} was mounted` : 'it settled'}`)
    }
    if (outcome === 'timeout') {
      return fail('timeout', `did not mount ${mountPath} within ${this.#startTimeoutMs} ms`)
    }
    try {
      // The mount path first: a PID file written by us then always has it, for whoever adopts the daemon.
      this.#store.native.writeMountPath(targetId, mountPath)
      this.#store.write(targetId, pid)
    } catch (err) {
      proc.signalGroup(SIG.SIGKILL)
      await awaitNative(proc.waitExit(AFTER_SIGKILL_MS), AFTER_SIGKILL_MS)
      this.#unmount(targetId, mountPath)
      throw err
    }
    const t: Tracked = {
      targetId,
      pid,
      proc: new Proc(pid, proc.startTicks, proc.startTimeMs, proc),
      mountPath,
      envKeys: Object.keys(env),
      loadedFromDisk: false,
      child,
      killing: false,
      exitReported: false,
    }
    this.#tracked.set(targetId, t)
    void exited.then(([code, signal]) => this.#reportExit(t, code, signal))
    const info = this.#info(t)
    this.#log.info({ targetId, pid, mountPath }, 'daemon ready')
    this.emit('spawn', info)
    return info
  }

  async #killLocked(targetId: string, force: boolean, timeoutMs: number): Promise<boolean> {
    let t = this.#tracked.get(targetId)
    if (t === undefined) {
      const entry = this.#store.inspect(targetId)
      if (entry?.status === 'untrusted') {
        this.#log.warn({ targetId, path: entry.path, reason: entry.reason }, 'untrusted PID file: not killing')
        return false
      }
      if (entry !== null && this.#adopt(entry, true) === 'adopted') t = this.#tracked.get(targetId)
    }
    if (t === undefined) {
      this.#log.debug({ targetId }, 'kill: not running')
      this.emit('kill', { targetId, pid: null, signal: null })
      return true
    }
    t.killing = true
    let signal: 'SIGTERM' | 'SIGKILL' | null = null
    if (t.proc.isAlive()) {
      signal = force ? 'SIGKILL' : 'SIGTERM'
      this.#log.info({ targetId, pid: t.pid, signal }, 'killing daemon')
      if (this.#signal(t, SIG[signal]) && !force) this.#signal(t, SIG.SIGCONT)
      const grace = force ? AFTER_SIGKILL_MS : timeoutMs
      if (!(await awaitNative(t.proc.waitExit(grace), grace)) && !force) {
        signal = 'SIGKILL'
        this.#log.warn({ targetId, pid: t.pid, timeoutMs }, 'still alive after SIGTERM; sending SIGKILL')
        this.#signal(t, SIG.SIGKILL)
        await awaitNative(t.proc.waitExit(AFTER_SIGKILL_MS), AFTER_SIGKILL_MS)
      }
      if (t.proc.isAlive()) {
        t.killing = false
        throw new ProcessError(`target ${targetId}: PID ${t.pid} survived SIGKILL for ${AFTER_SIGKILL_MS} ms`, {
          code: 'ESURVIVED',
          pid: t.pid,
        })
      }
    }
    this.#forget(t, 'killed')
    this.emit('kill', { targetId, pid: t.pid, signal })
    return true
  }

  /** Signals a tracked process's group (or the process alone when it does not lead one); whether it was there. */
  #signal(t: Tracked, signal: number): boolean {
    try {
      return t.proc.signalGroup(signal) !== 'gone'
    } catch (err) {
      throw nativeError(err, { targetId: t.targetId })
    }
  }

  /**
   * Tracks the process a PID file names, or drops the file: `adopted` (tracked now), `cleaned` (stale or
   * invalid, deleted), `untrusted` (left alone), `busy` (another process holds the target; left alone).
   */
  #adopt(
    entry: PidFileInfo,
    emitStale: boolean,
    seen?: Seen | null,
  ): 'adopted' | 'cleaned' | 'untrusted' | 'busy' {
    if (entry.status === 'untrusted') {
      this.#log.warn({ targetId: entry.targetId, path: entry.path, reason: entry.reason }, 'untrusted PID file left alone')
      return 'untrusted'
    }
    let reason: string
    if (entry.status === 'invalid' || entry.pid === null) {
      reason = `invalid content: ${entry.reason ?? 'not a PID'}`
    } else {
      if (seen === undefined) {
        const id = processIdentity(entry.pid)
        seen = id && { startTicks: id.startTicks, startTimeMs: id.startTimeMs, zombie: id.zombie }
      }
      if (seen === null || seen.zombie) {
        reason = `PID ${entry.pid} is not running`
      } else if (startedAfter(seen.startTimeMs, entry.mtime.getTime())) {
        reason = `PID ${entry.pid} was reused: its process started after the PID file was written`
      } else {
        this.#trackLoaded(entry.targetId, entry.pid, seen.startTicks, seen.startTimeMs)
        this.#log.debug({ targetId: entry.targetId, pid: entry.pid }, 'loaded existing process')
        return 'adopted'
      }
    }
    const lock = this.#store.native.tryLock(entry.targetId)
    if (lock === null) return 'busy'
    try {
      // Under the lock, the file must still be the one judged (another manager may have just rewritten it).
      const now = this.#store.inspect(entry.targetId)
      if (now === null || now.pid !== entry.pid || now.mtime.getTime() !== entry.mtime.getTime()) return 'busy'
      // Its daemon is gone: what it left mounted (as its spawner recorded) goes with the file.
      const mountPath = this.#recordedMount(entry.targetId)
      if (mountPath !== null) this.#unmountStale(entry.targetId, mountPath)
      this.#store.delete(entry.targetId)
    } finally {
      lock.release()
    }
    this.#log.info({ targetId: entry.targetId, pid: entry.pid, reason }, 'cleaned up stale PID file')
    if (emitStale) this.emit('stale', { targetId: entry.targetId, pid: entry.pid, path: entry.path, reason })
    return 'cleaned'
  }

  /** Tracks a live process found through its PID file (its mount path is read when first needed). */
  #trackLoaded(targetId: string, pid: number, startTicks: number, startTimeMs: number): void {
    this.#tracked.set(targetId, {
      targetId,
      pid,
      proc: new Proc(pid, startTicks, startTimeMs),
      mountPath: undefined,
      envKeys: [],
      loadedFromDisk: true,
      child: null,
      killing: false,
      exitReported: false,
    })
  }

  /** Forgets a dead process: unmounts what it left mounted, deletes its PID file if it still names it. */
  #forget(t: Tracked, why: string): void {
    if (this.#tracked.get(t.targetId) === t) this.#tracked.delete(t.targetId)
    const mountPath = this.#mountOf(t)
    if (mountPath !== null) this.#unmountStale(t.targetId, mountPath)
    if (this.#store.read(t.targetId) === t.pid) this.#store.delete(t.targetId)
    this.#log.debug({ targetId: t.targetId, pid: t.pid, why }, 'forgot process')
  }

  /** Where a tracked daemon mounts: known since its spawn, or read once from what its spawner recorded. */
  #mountOf(t: Tracked): string | null {
    if (t.mountPath === undefined) t.mountPath = this.#recordedMount(t.targetId)
    return t.mountPath
  }

  /** The mount path recorded beside a target's PID file, `null` when none can be trusted or read. */
  #recordedMount(targetId: string): string | null {
    try {
      return this.#store.native.readMountPath(targetId)
    } catch (err) {
      this.#log.warn({ targetId, err: (err as Error).message }, 'could not read the recorded mount path')
      return null
    }
  }

  /**
   * Unmounts what a dead daemon left at `mountPath`: only a stale mount ("Transport endpoint is not
   * connected"); a live one belongs to some other daemon now.
   */
  #unmountStale(targetId: string, mountPath: string): void {
    if (isMountPoint(mountPath) && isStaleMount(mountPath)) this.#unmount(targetId, mountPath)
  }

  #unmount(targetId: string, mountPath: string): void {
    try {
      if (unmountLazy(mountPath)) this.#log.info({ targetId, mountPath }, 'unmounted a stale mount')
    } catch (err) {
      const error = nativeError(err, { path: mountPath })
      this.#log.error({ targetId, mountPath, err: error.message }, 'could not unmount')
      if (this.listenerCount('error') > 0) this.emit('error', error)
    }
  }

  #reportExit(t: Tracked, code: number | null, signal: NodeJS.Signals | null): void {
    if (t.killing || t.exitReported) return
    t.exitReported = true
    this.#log.warn({ targetId: t.targetId, pid: t.pid, code, signal }, 'daemon exited on its own')
    this.emit('exit', { targetId: t.targetId, pid: t.pid, code, signal })
  }

  #info(t: Tracked): ProcessInfo {
    const alive = t.proc.isAlive()
    const pidFile = this.#store.pathFor(t.targetId)
    return {
      targetId: t.targetId,
      pid: t.pid,
      mountPath: this.#mountOf(t),
      startTime: new Date(t.proc.startTimeMs),
      envKeys: t.envKeys,
      status: alive ? 'running' : 'exited',
      loadedFromDisk: t.loadedFromDisk,
      alive,
      pidFile,
      pidFileExists: existsSync(pidFile),
    }
  }
}

/**
 * A native wait runs on a thread of its own, which does not keep Node's event loop alive: a program whose
 * only pending work is `await manager.spawn(...)` would exit half-way. A timer for the wait's own deadline
 * keeps the loop alive until the wait settles.
 */
function awaitNative<T>(wait: Promise<T>, timeoutMs: number): Promise<T> {
  const timer = setTimeout(() => {}, timeoutMs + 1000)
  return wait.finally(() => clearTimeout(timer))
}

/** A mount point whose FUSE daemon is gone: `stat` fails with "Transport endpoint is not connected". */
function isStaleMount(path: string): boolean {
  try {
    statSync(path)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTCONN'
  }
}

/** The last 4 KiB of a log file, from a line start. */
function tail(path: string): string {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const size = fstatSync(fd).size
    const len = Math.min(size, 4096)
    const buf = Buffer.alloc(len)
    readSync(fd, buf, 0, len, size - len)
    let text = buf.toString('utf8')
    if (len < size) text = text.slice(text.indexOf('\n') + 1)
    return text.trimEnd()
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
