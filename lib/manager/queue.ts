/**
 * One call at a time per target: after the earlier calls of this manager for it (a promise chain), and
 * holding the target's lock in the PID directory (other managers, in this process or others).
 * Internal to the manager (not exported by the package).
 */
import { nativeError } from '../errors'
import type { NativePidFileStore, NativeTargetLock } from '../native'
import type { Logger } from './types'

export class TargetQueue {
  readonly #tails = new Map<string, Promise<unknown>>()

  constructor(
    readonly store: NativePidFileStore,
    readonly log: Logger,
  ) {}

  /** Whether a call for the target is queued or running in this manager. */
  busy(targetId: string): boolean {
    return this.#tails.has(targetId)
  }

  /**
   * Runs `work` for one target at a time, holding its lock. Waiting for the lock ends after
   * `lockTimeoutMs` with `lockedError(why)`.
   */
  run<T>(targetId: string, lockTimeoutMs: number, lockedError: (why: string) => Error, work: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(targetId) ?? Promise.resolve()
    const run = before.then(async () => {
      const lock = await this.#lock(targetId, lockTimeoutMs, lockedError)
      try {
        return await work()
      } finally {
        lock.release()
      }
    })
    const tail = run.catch(() => {})
    this.#tails.set(targetId, tail)
    void tail.then(() => {
      if (this.#tails.get(targetId) === tail) this.#tails.delete(targetId)
    })
    return run
  }

  /**
   * Runs `work` at once under the target's lock — the one the caller holds (`locked`), or taken if it is
   * free now — and returns what it returns; never waits: `busy` (nothing run) when the lock is held
   * elsewhere.
   */
  ifFree<T>(targetId: string, locked: boolean, busy: T, work: () => T): T {
    const lock = locked ? null : this.tryLock(targetId)
    if (!locked && lock === null) return busy
    try {
      return work()
    } finally {
      lock?.release()
    }
  }

  /** The target's lock if no other open holds it now (never waits), else `null`. */
  tryLock(targetId: string): NativeTargetLock | null {
    try {
      return this.store.tryLock(targetId)
    } catch (err) {
      throw nativeError(err, { targetId })
    }
  }

  async #lock(targetId: string, timeoutMs: number, lockedError: (why: string) => Error): Promise<NativeTargetLock> {
    const now = this.tryLock(targetId)
    if (now) return now
    this.log.debug({ targetId }, 'target busy in another process; waiting for its lock')
    const waiting = this.store.lock(targetId).catch((err: unknown) => {
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
}

/**
 * A native wait runs on a thread of its own, which does not keep Node's event loop alive. A public call
 * holds the loop as a whole ({@link held}); background work — a restart, the undo of a spawn that never
 * finished, started by the constructor — is held through its native waits: a timer for the wait's own
 * deadline keeps the loop alive until the wait settles, so the process does not end half-way through it.
 */
export function awaitNative<T>(wait: Promise<T>, timeoutMs: number): Promise<T> {
  const timer = setTimeout(() => {}, timeoutMs + 1000)
  return wait.finally(() => clearTimeout(timer))
}

/**
 * Keeps the event loop alive until `work` settles, as any pending I/O of Node.js does: a script whose only
 * pending work is `await manager.spawn(...)` sees it resolve or reject, also where the awaited event (a
 * child's exit, which an unref'd child does not wait for) would not hold the loop by itself.
 */
export function held<T>(work: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 0x7fffffff)
  return work.finally(() => clearInterval(timer))
}

/**
 * Races a native wait that may never end (a call into a hung FUSE mount) against a deadline: rejects
 * with `onTimeout()` after `timeoutMs`; the thread is abandoned.
 */
export function withDeadline<T>(wait: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs)
  })
  return Promise.race([wait, timedOut]).finally(() => clearTimeout(timer))
}
