/**
 * `FuseProcessManager`: supervises one long-running daemon per target, tracked in memory and in a
 * standard PID file. This file composes the phases, each in a file of its own: `options` (checked, with
 * their defaults), `types` (the public types), `load` (opening the directories, taking in the PID files),
 * `queue` (one call per target, under its lock), `tracking` (memory as a cache of the PID directory,
 * adoption), `spawn` (spawn to ready), `kill` (the whole process group), `supervise` (watching, restarts),
 * `daemon-io` (logs, the gate, redaction), `stop` (`procslot stop`, by the kill path).
 * Re-exported by the package's `index.ts`.
 */
import { EventEmitter } from 'node:events'
import { resolve } from 'node:path'

import { InvalidTargetIdError, ProcslotError, SpawnError } from '../errors'
import { checkTargetId, type PidFileStore } from '../pidfile'
import { checkObject, checkString, optional } from '../validate'
import { killTarget } from './kill'
import { loadPidDir, openLogDir, openPidDir, readPidDir } from './load'
import { checkRestart, managerSettings, positive, type SpawnSettings } from './options'
import { TargetQueue, held } from './queue'
import { spawnLocked } from './spawn'
import { Supervisor } from './supervise'
import { Tracker } from './tracking'
import type * as T from './types'

export type * from './types'
export { redactEnv } from './daemon-io'

/**
 * Supervises one long-running daemon per target — first of all FUSE filesystems — and tracks each in
 * memory and in a standard PID file (`<pidDir>/<targetId>.pid`), so that a restarted manager finds them
 * again. The PID directory is the truth, memory a cache: several managers, in one process or many, may
 * share a `pidDir`, and every decision looks at the target's PID file again. A spawn records the daemon's
 * exact identity beside the PID file before the daemon may run, so a manager killed at any moment leaves
 * nothing the next one cannot see, and a reused PID is never taken for the daemon.
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
export class FuseProcessManager extends EventEmitter<T.ManagerEvents> implements Disposable {
  /** The PID-file directory. */
  readonly pidDir: string
  /** How many live daemons construction found through their PID files. */
  readonly loaded: number
  /** How many stale or invalid PID files construction deleted. */
  readonly cleaned: number
  /** PID files construction found but will not touch (another owner, writable by others, a link). */
  readonly untrusted: readonly T.UntrustedPidFile[]

  readonly #store: PidFileStore
  readonly #settings: SpawnSettings
  readonly #log: T.Logger
  readonly #queue: TargetQueue
  readonly #tracker: Tracker
  readonly #supervisor: Supervisor
  #spawnedCount = 0
  #closed = false

  /**
   * Creates `pidDir` and loads every PID file in it: live daemons are tracked (`loadedFromDisk: true`),
   * stale files (dead process, reused PID) and invalid ones are deleted, untrusted ones are reported and
   * left alone; spawns that never finished (a manager died half-way) are undone in the background,
   * before any call on their target. The `stale` events of the load are emitted after the constructor
   * returns; `loaded` and `cleaned` are set at once.
   * @throws {PidFileError} `EUNSAFE` for a `pidDir` or `logDir` other users can write to, or the operating
   * system's error.
   */
  constructor(options: T.FuseProcessManagerOptions) {
    super()
    const { settings, restart, logger } = managerSettings(options)
    this.#store = openPidDir(options.pidDir)
    this.pidDir = options.pidDir
    if (options.logDir !== undefined) openLogDir(settings.logDir)
    this.#log = logger
    this.#settings = settings
    this.#queue = new TargetQueue(this.#store.native, this.#log)
    this.#tracker = new Tracker(this.#store.native, this.#queue, this.#log, this)
    this.#supervisor = new Supervisor(this.#tracker, this.#queue, settings, restart, () => this.#spawnedCount++)
    this.#tracker.onTracked = (t) => this.#supervisor.watch(t)
    this.#tracker.onDropped = (t) => this.#supervisor.unwatch(t)

    const { loaded, cleaned, untrusted, stale } = loadPidDir(this.#store, this.#tracker, settings.killTimeoutMs)
    this.loaded = loaded
    this.cleaned = cleaned
    this.untrusted = untrusted
    // After the constructor returns: a listener attached right after `new` sees them.
    if (stale.length > 0) process.nextTick(() => stale.forEach((e) => this.emit('stale', e)))
    // The daemons found running are watched from the next turn of the event loop on (opening thousands
    // of pidfds is no part of construction); one that died meanwhile is reported then.
    if (loaded > 0) {
      setImmediate(() => {
        if (this.#closed) return
        for (const t of this.#tracker.all()) this.#supervisor.watch(t)
      })
    }
  }

  /** Tracked daemons by target ID (a read-only view). */
  get processes(): ReadonlyMap<string, T.ProcessInfo> {
    return new Map(this.#tracker.all().map((t) => [t.targetId, this.#tracker.info(t)]))
  }

  /**
   * The path of the target's PID file.
   * @throws {InvalidTargetIdError}
   */
  pidFileFor(targetId: string): string {
    return this.#store.pathFor(targetId)
  }

  /**
   * Starts the target's daemon, or returns the running one (found through its PID file, whichever
   * manager started it) without starting another. The daemon runs `command` with
   * `args({ targetId, mountPath })` in its own process group, detached (it outlives the manager), with
   * `env` over `process.env` and its output appended to `<logDir>/<targetId>.log`. Its identity (PID and
   * exact start time) is recorded beside the PID file before it runs. Resolves once it is ready —
   * `mountPath` is a mount point, or with `ready: 'alive'` it stayed up for `settleMs` — with its PID file
   * written and it tracked. With `ready: 'alive'`, `mountPath` may be `null`: a daemon that mounts
   * nothing (no mount point is made; `args` sees `mountPath: ''`).
   *
   * Two calls for one target at once — in this manager or in managers of other processes sharing
   * `pidDir` — never start two daemons. Nothing here touches `mountPath` on the JavaScript thread: a hung
   * FUSE mount there makes the spawn reject after `startTimeoutMs`.
   * @throws {InvalidTargetIdError}
   * @throws {SpawnError} it exited, was not ready within `startTimeoutMs`, could not be started, its log
   * file was refused (`log`), `mountPath` is another mount (`mounted`), the target runs at another path
   * (`mount-path-differs`) or its PID file is untrusted; its process group was killed and nothing stays
   * tracked or on disk. `logTail` has the end of its log.
   */
  spawn(
    targetId: string,
    mountPath: string | null,
    env: Readonly<Record<string, string>> = {},
    options: T.SpawnOptions = {},
  ): Promise<T.ProcessInfo> {
    let policy: T.RestartPolicy
    try {
      this.#open()
      checkTargetId(targetId)
      if (mountPath !== null || this.#settings.ready === 'mount') checkString('mountPath', mountPath)
      checkObject('options', options)
      policy = optional(options.restart, this.#supervisor.restart.restart, checkRestart)
    } catch (err) {
      return Promise.reject(err)
    }
    const s = this.#settings
    const path = mountPath === null ? null : resolve(mountPath)
    return held(
      this.#queue.run(
        targetId,
        s.startTimeoutMs,
        (why) => new SpawnError(`target ${targetId}: ${why}`, { targetId, reason: 'locked' }),
        async () => {
          // The plan first: a daemon that dies the moment it is ready is restarted by it.
          this.#supervisor.plan(targetId, policy, path, env)
          try {
            return await spawnLocked(this.#tracker, s, targetId, path, env, () => this.#spawnedCount++)
          } catch (err) {
            this.#supervisor.cancel(targetId)
            throw err
          }
        },
      ),
    )
  }

  /**
   * Stops the target's daemon — the one its PID file names, whichever manager started it: SIGTERM (then
   * SIGCONT, so that a stopped process can act on it) to its process group, SIGKILL to whoever is left
   * after `timeoutMs` (at once with `force`), resolving once the **whole group** is gone. Then unmounts
   * what it left mounted (the very mount it made, by identity), forgets it and deletes its PID file.
   * Resolves `true`, also for a target that is unknown or already dead (cleaned up all the same); `false`
   * when its PID file is untrusted (left alone, nothing signalled). Cancels the target's pending and
   * future restarts.
   *
   * Never signals a process that is not the one recorded (same exact start time; for a PID file written
   * by another tool, started before the file was written).
   * @throws {InvalidTargetIdError}
   * @throws {TargetLockedError} another call kept the target busy past `timeoutMs`.
   */
  kill(targetId: string, options: T.KillOptions = {}): Promise<boolean> {
    let timeoutMs: number
    try {
      this.#open()
      checkTargetId(targetId)
      timeoutMs = positive('timeoutMs', options.timeoutMs, this.#settings.killTimeoutMs)
    } catch (err) {
      return Promise.reject(err)
    }
    this.#supervisor.cancel(targetId)
    return held(killTarget(this.#tracker, targetId, options.force === true, timeoutMs, this.#settings.startTimeoutMs))
  }

  /**
   * Whether the target's daemon is running, by its PID file: a daemon another manager started is adopted,
   * a dead one marked exited. Never waits for a lock.
   * @throws {InvalidTargetIdError}
   */
  isRunning(targetId: string): boolean {
    const t = this.#tracker.get(targetId)
    if (t !== undefined && !t.exited && this.#settled(() => t.proc.check(), 'changed') === 'alive') return true
    checkTargetId(targetId)
    return this.#settled(
      () => this.#tracker.refresh(targetId) !== undefined,
      () => t !== undefined && !t.exited && t.proc.isAlive(),
    )
  }

  /**
   * The target's daemon (through its PID file, as {@link isRunning}), or the dead one memory still holds,
   * or `null`.
   * @throws {InvalidTargetIdError}
   */
  getProcessInfo(targetId: string): T.ProcessInfo | null {
    checkTargetId(targetId)
    this.#settled(() => this.#tracker.refresh(targetId), undefined)
    const t = this.#tracker.get(targetId)
    return t ? this.#tracker.info(t) : null
  }

  /** Every tracked daemon (running, or exited and not yet cleaned up). */
  listAllProcesses(): T.ProcessInfo[] {
    return this.#tracker.all().map((t) => this.#tracker.info(t))
  }

  /**
   * Drops dead daemons from memory and disk (and unmounts what they left mounted), and deletes PID files
   * of dead processes that were not tracked. Returns how many were dropped. Targets busy in a `spawn` or
   * `kill` (here or in another manager) are left for later.
   */
  cleanupDeadProcesses(): number {
    let dropped = 0
    for (const t of this.#tracker.all()) {
      if (t.killing || this.#queue.busy(t.targetId)) continue
      if (this.#tracker.refresh(t.targetId) !== undefined) continue
      const still = this.#tracker.get(t.targetId)
      if (still === undefined) {
        dropped++ // refresh found the file stale and dropped it
        continue
      }
      if (still.exited && this.#tracker.forget(still, false)) dropped++
    }
    for (const v of readPidDir(this.#store).others) {
      if (v.judgement === 'untrusted' || this.#tracker.get(v.targetId) !== undefined || this.#queue.busy(v.targetId)) continue
      if (this.#tracker.files.dropFile(v, false, (e) => this.emit('stale', e))) dropped++
    }
    return dropped
  }

  /**
   * Kills every tracked daemon (see {@link kill}), after cancelling every pending restart and waiting
   * for those in progress: when it resolves, no daemon of this manager's targets runs, and none of their
   * PID files or spawn records is left.
   */
  async cleanupAll(options: { force?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    // The targets with a restart plan too: one may be between two daemons (dead, restart due), and a
    // restart in progress holds its target's queue, so its kill runs after it.
    const targets = new Set([...this.#tracker.all().map((t) => t.targetId), ...this.#supervisor.planned()])
    this.#supervisor.cancelAll()
    await Promise.all([...targets].map((id) => this.kill(id, { force: options.force })))
  }

  /** Counts and per-daemon details, in the Python manager's shape (camelCased). */
  getStats(): T.ManagerStats {
    const now = Date.now()
    const processes = this.#tracker.all().map((t) => {
      const info = this.#tracker.info(t)
      return {
        targetId: t.targetId,
        pid: t.pid,
        alive: info.alive,
        uptimeSeconds: Math.max(0, (now - t.proc.startTimeMs) / 1000),
        mountPath: info.mountPath,
        pidFile: info.pidFile,
        pidFileExists: info.pidFileExists,
      }
    })
    const alive = processes.filter((p) => p.alive).length
    return {
      totalTracked: processes.length,
      alive,
      dead: processes.length - alive,
      unwatched: this.#supervisor.unwatched,
      allPidsEverSpawned: this.#spawnedCount,
      // Without a descriptor to list the directory with: the tracked daemons' files that exist.
      pidFilesOnDisk: this.#settled(
        () => this.#store.list().length,
        () => processes.filter((p) => p.pidFileExists).length,
      ),
      pidDirectory: this.pidDir,
      processes,
    }
  }

  /**
   * Makes the manager keep the process alive while it watches daemons, as `net.Server.ref()` does: a
   * script whose only work is `await once(manager, 'exit')` then waits for that event. The manager is
   * unref'd by default — its daemons outlive it, and watching them does not keep a program running. A
   * pending `spawn()` or `kill()` keeps the process alive until it settles either way.
   * @returns the manager
   */
  ref(): this {
    this.#supervisor.setRef(true)
    return this
  }

  /** The default: watching daemons does not keep the process alive (see {@link ref}). @returns the manager */
  unref(): this {
    this.#supervisor.setRef(false)
    return this
  }

  /**
   * Stops watching and frees this manager's process handles (pidfds), cancelling pending restarts. The
   * daemons are not touched: they run on, and the next
   * manager finds them through their PID files. Idempotent; calls after it reject with `ECLOSED`.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#supervisor.close()
    this.#tracker.close()
  }

  /** {@link close}. */
  [Symbol.dispose](): void {
    this.close()
  }

  /**
   * A read that must answer even when the process has run out of file descriptors (or the PID directory
   * cannot be read for a moment): `fallback` — what memory knows — when `read` throws.
   */
  #settled<T>(read: () => T, fallback: T | (() => T)): T {
    try {
      return read()
    } catch (err) {
      if (err instanceof InvalidTargetIdError) throw err
      this.#log.warn({ err: (err as Error).message }, 'a read fell back to memory')
      return typeof fallback === 'function' ? (fallback as () => T)() : fallback
    }
  }

  #open(): void {
    if (this.#closed) {
      throw new ProcslotError(`FuseProcessManager for ${this.pidDir} is closed`, { code: 'ECLOSED' })
    }
  }
}
