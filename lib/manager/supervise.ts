/**
 * The manager as a supervisor: every tracked daemon is watched (the core's one watcher thread, an epoll
 * set over pidfds, reports its death within milliseconds, with no polling and without keeping the event
 * loop alive; a daemon without a pidfd — none on this kernel, or descriptors ran out — is watched by the
 * core's fallback, by PID and start time at least once a second); a death is cleaned up at once (the
 * mount it made, its PID file) and reported as `exit`; daemons this manager spawned are restarted by
 * their policy, with exponential backoff and a limit within a window. Nothing here ever throws into the
 * event loop: a failure is reported (the logger, and `'error'` when listened to).
 * Internal to the manager (not exported by the package).
 */
import { native, type NativeExitWatcher } from '../native'
import { ProcslotError, SpawnError } from '../errors'
import type { TargetQueue } from './queue'
import type { RestartSettings, SpawnSettings } from './options'
import { spawnLocked } from './spawn'
import type { Tracked } from './proc'
import type { Tracker } from './tracking'
import type { ProcessInfo, RestartPolicy } from './types'

/** How to start a target again: what its spawn was given, and its restarts so far. */
interface Plan {
  readonly policy: RestartPolicy
  readonly mountPath: string | null
  readonly env: Readonly<Record<string, string>>
  /** When each restart within the window was scheduled. */
  history: number[]
  timer: NodeJS.Timeout | null
  cancelled: boolean
}

export class Supervisor {
  #watcher: NativeExitWatcher | null = null
  readonly #tokens = new Map<number, Tracked>()
  readonly #tokenOf = new WeakMap<Tracked, number>()
  /** Daemons watched by the core's fallback (no pidfd). */
  readonly #unwatched = new Set<Tracked>()
  /** Why some daemon had no pidfd, reported once each (`EMFILE`, `ENOSYS`, ...). */
  readonly #told = new Set<string>()
  readonly #plans = new Map<string, Plan>()
  #next = 1
  #closed = false
  /**
   * Held while any daemon has a restart policy: supervising it is work, so the process stays alive.
   * Watching alone keeps nothing alive (the watcher's callback into JavaScript is weak).
   */
  #keepAlive: NodeJS.Timeout | null = null
  /** Whether watching keeps the process alive (`manager.ref()`), and the handle that does it. */
  #refed = false
  #refHandle: NodeJS.Timeout | null = null

  constructor(
    readonly tr: Tracker,
    readonly queue: TargetQueue,
    readonly spawn: SpawnSettings,
    readonly restart: RestartSettings,
    readonly onSpawned: () => void,
  ) {}

  /**
   * Whether watching keeps the process alive: while `refed` and any daemon is watched, a handle that never
   * fires (a timer of 2^30 ms: no tick while nothing happens) holds the event loop, as a ref'd
   * `net.Server` does.
   */
  setRef(refed: boolean): void {
    this.#refed = refed
    this.#updateRef()
  }

  #updateRef(): void {
    const want = this.#refed && !this.#closed && this.#tokens.size > 0
    if (want && this.#refHandle === null) this.#refHandle = setInterval(() => {}, 2 ** 30)
    if (!want && this.#refHandle !== null) {
      clearInterval(this.#refHandle)
      this.#refHandle = null
    }
  }

  /** How many tracked daemons the core's fallback watches (they have no pidfd). */
  get unwatched(): number {
    return this.#unwatched.size
  }

  /** The targets with a restart plan (a restart may be pending or in progress for them). */
  planned(): string[] {
    return [...this.#plans.keys()]
  }

  /** Watches a tracked daemon for its death (a dead one is handled at once). Never throws. */
  watch(t: Tracked): void {
    if (this.#closed || t.exited || this.#tokenOf.has(t)) return
    try {
      const handle = t.proc.handle
      if (handle === null) {
        queueMicrotask(() => this.#exited(t))
        return
      }
      this.#watcher ??= new native.NativeExitWatcher((token: number) => this.#onToken(token))
      const token = this.#next++
      const byPidfd = this.#watcher.watch(handle, token)
      if (byPidfd === null) return
      this.#tokens.set(token, t)
      this.#tokenOf.set(t, token)
      this.#updateRef()
      if (!byPidfd) {
        this.#unwatched.add(t)
        this.#tellNoPidfd(handle.noPidfd ?? 'ENOSYS')
      }
    } catch (err) {
      this.tr.out.report(err, 'could not watch a daemon', { targetId: t.targetId, pid: t.pid })
    }
  }

  /** Says once per cause why daemons are watched by the fallback. */
  #tellNoPidfd(why: string): void {
    if (this.#told.has(why)) return
    this.#told.add(why)
    if (why === 'EMFILE' || why === 'ENFILE') {
      const err = new ProcslotError(
        `out of file descriptors (${why}): daemons past the limit are watched by PID and start time, ` +
          'at least once a second, instead of through a pidfd each; raise the limit (ulimit -n) to watch them at once',
        { code: why, errno: why === 'EMFILE' ? -24 : -23 },
      )
      this.tr.out.report(err, 'out of file descriptors: some daemons are watched by the fallback')
    } else {
      this.tr.out.log.warn({ why }, 'no pidfds here: daemons are watched by PID and start time, at least once a second')
    }
  }

  /** Stops watching a daemon dropped from memory. */
  unwatch(t: Tracked): void {
    this.#unwatched.delete(t)
    const token = this.#tokenOf.get(t)
    if (token === undefined) return
    this.#tokenOf.delete(t)
    this.#tokens.delete(token)
    this.#watcher?.unwatch(token)
    this.#updateRef()
  }

  /** Remembers how a target was spawned, for restarts by `policy`. */
  plan(targetId: string, policy: RestartPolicy, mountPath: string | null, env: Readonly<Record<string, string>>): void {
    const old = this.#plans.get(targetId)
    if (policy === 'no') {
      if (old !== undefined) this.cancel(targetId)
      return
    }
    // A spawn that returned the running daemon keeps the plan (and its history) it has.
    if (old !== undefined && !old.cancelled && old.policy === policy && old.mountPath === mountPath) return
    if (old !== undefined) this.cancel(targetId)
    this.#plans.set(targetId, { policy, mountPath, env, history: [], timer: null, cancelled: false })
    this.#keepAliveIfPlanned()
  }

  /** Cancels a target's restarts, pending or future (`kill`, `cleanupAll`). */
  cancel(targetId: string): void {
    const plan = this.#plans.get(targetId)
    if (plan === undefined) return
    plan.cancelled = true
    if (plan.timer !== null) clearTimeout(plan.timer)
    this.#plans.delete(targetId)
    this.#keepAliveIfPlanned()
  }

  #keepAliveIfPlanned(): void {
    if (this.#plans.size > 0 && this.#keepAlive === null) this.#keepAlive = setInterval(() => {}, 2 ** 30)
    if (this.#plans.size === 0 && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
  }

  /** Cancels every pending and future restart (`cleanupAll`). */
  cancelAll(): void {
    for (const id of [...this.#plans.keys()]) this.cancel(id)
  }

  /** Cancels every restart and every watch (`close`); nothing is watched after it. */
  close(): void {
    this.#closed = true
    this.cancelAll()
    this.#watcher?.close()
    this.#tokens.clear()
    this.#unwatched.clear()
    this.#updateRef()
  }

  #onToken(token: number): void {
    const t = this.#tokens.get(token)
    if (t === undefined) return
    this.#tokens.delete(token)
    this.#tokenOf.delete(t)
    this.#unwatched.delete(t)
    // The `exit` event comes within this turn or the next (a child's exit code): the handle goes after it.
    setImmediate(() => this.#updateRef())
    const child = t.child
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      // Node reaps its own child and says how it ended moments later: wait for that (a deadline in case).
      const timer = setTimeout(() => this.#exited(t), 1000)
      child.once('exit', () => {
        clearTimeout(timer)
        this.#exited(t)
      })
      return
    }
    this.#exited(t)
  }

  /** A tracked daemon is dead: clean up, report, restart by its plan. Never throws. */
  #exited(t: Tracked): void {
    try {
      this.#onDeath(t)
    } catch (err) {
      this.#error(err)
    }
  }

  #onDeath(t: Tracked): void {
    if (t.exited || t.killing || this.tr.get(t.targetId) !== t) return
    const code = t.child?.exitCode ?? null
    const signal = t.child?.signalCode ?? null
    let cleaned: 'ours' | 'gone' | 'busy'
    try {
      cleaned = this.tr.files.cleanDisk(t, false)
    } catch (err) {
      this.#error(err)
      cleaned = 'busy'
    }
    this.tr.markExited(t, code, signal)
    const continueWith = (how: 'ours' | 'gone' | 'busy') => {
      const plan = this.#plans.get(t.targetId)
      if (plan === undefined || plan.cancelled || how !== 'ours') return
      const failed = code !== 0 || signal !== null
      if (plan.policy === 'always' || (plan.policy === 'on-failure' && failed)) this.#schedule(t.targetId, plan)
      else this.cancel(t.targetId)
    }
    if (cleaned !== 'busy') {
      continueWith(cleaned)
      return
    }
    // The target's lock is held (another call, maybe another manager): clean up under it.
    const locked = async () => this.tr.files.cleanDisk(t, true)
    this.queue
      .run(t.targetId, this.spawn.killTimeoutMs + this.spawn.startTimeoutMs, (why) => new Error(why), locked)
      .then(continueWith)
      .catch((err: unknown) => this.#error(err))
  }

  #schedule(targetId: string, plan: Plan): void {
    const now = Date.now()
    plan.history = plan.history.filter((at) => now - at < this.restart.restartWindowMs)
    if (plan.history.length >= this.restart.maxRestarts) {
      this.cancel(targetId)
      this.tr.out.log.error({ targetId, restarts: plan.history.length }, 'restarted too often; giving up')
      this.tr.out.events.emit('failed', { targetId, restarts: plan.history.length })
      return
    }
    const attempt = plan.history.length + 1
    const delayMs = Math.min(this.restart.restartDelayMs * 2 ** (attempt - 1), this.restart.restartMaxDelayMs)
    plan.history.push(now)
    this.tr.out.log.info({ targetId, attempt, delayMs }, 'restarting after a delay')
    plan.timer = setTimeout(() => {
      plan.timer = null
      this.#restart(targetId, plan, attempt, delayMs).catch((err: unknown) => this.#error(err))
    }, delayMs)
  }

  async #restart(targetId: string, plan: Plan, attempt: number, delayMs: number): Promise<void> {
    let info: ProcessInfo | null
    try {
      info = await this.queue.run(
        targetId,
        this.spawn.startTimeoutMs,
        (why) => new SpawnError(`target ${targetId}: ${why}`, { targetId, reason: 'locked' }),
        // A kill while this waited for the lock cancelled it: then nothing starts.
        async () => (plan.cancelled ? null : spawnLocked(this.tr, this.spawn, targetId, plan.mountPath, plan.env, this.onSpawned)),
      )
    } catch (err) {
      if (plan.cancelled) return
      this.tr.out.log.warn({ targetId, attempt, err: (err as Error).message }, 'a restart failed')
      this.#schedule(targetId, plan)
      return
    }
    if (info === null || plan.cancelled) return
    this.tr.out.events.emit('restart', { targetId, attempt, delayMs, pid: info.pid })
  }

  #error(err: unknown): void {
    this.tr.out.report(err, 'cleaning up after a dead daemon failed')
  }
}
