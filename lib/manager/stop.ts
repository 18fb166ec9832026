/**
 * Stopping one target of a PID directory without a manager of one's own (`procslot stop`), by the
 * manager's own kill path.
 * Internal to the manager (not exported by the package).
 */
import { EventEmitter } from 'node:events'

import type { PidFileStore } from '../pidfile'
import { killTarget } from './kill'
import { openPidDir } from './load'
import { KILL_TIMEOUT_MS, SILENT } from './options'
import { TargetQueue } from './queue'
import { Tracker } from './tracking'
import type { ManagerEvents } from './types'

export { openPidDir } from './load'

/** What {@link stopTarget} did. */
export interface StopOutcome {
  /** `false`: the target's PID file cannot be trusted; nothing was signalled. */
  trusted: boolean
  /** The PID of the daemon stopped; `null` when none was running. */
  pid: number | null
  /** The strongest signal it took; `null` when it was already gone. */
  signal: 'SIGTERM' | 'SIGKILL' | null
}

/**
 * Stops the target's daemon as `FuseProcessManager.kill()` does — under the target's lock, its whole
 * process group, SIGTERM then SIGKILL after `timeoutMs` (by default, a manager's default `killTimeoutMs`),
 * at once with `force` — and cleans up what it left. `dir` is the PID directory, or its store already
 * opened with {@link openPidDir}: so that a caller can tell a directory refused before anything was
 * touched (`procslot stop` exits 2) from a stop that failed (exit 1).
 * @throws {PidFileError} from {@link openPidDir} for a `dir` given by path.
 * @throws {TargetLockedError} the target stayed busy past `timeoutMs` and the time SIGKILL may take.
 * @throws {ProcessError} `ESURVIVED`: some of the group outlived SIGKILL.
 */
export async function stopTarget(
  dir: string | PidFileStore,
  targetId: string,
  opts: { force: boolean; timeoutMs?: number },
): Promise<StopOutcome> {
  const store = typeof dir === 'string' ? openPidDir(dir) : dir
  const events = new EventEmitter<ManagerEvents>()
  let killed: ManagerEvents['kill'][0] | null = null
  events.on('kill', (e) => (killed = e))
  const tracker = new Tracker(store.native, new TargetQueue(store.native, SILENT), SILENT, events)
  try {
    // No spawn setting is known here: the lock is waited for as long as the kill itself may take.
    const trusted = await killTarget(tracker, targetId, opts.force, opts.timeoutMs ?? KILL_TIMEOUT_MS, 0)
    const k = killed as ManagerEvents['kill'][0] | null
    return { trusted, pid: k?.pid ?? null, signal: k?.signal ?? null }
  } finally {
    tracker.close()
  }
}
