/**
 * `procslot stop <pidDir> <targetId> [--timeout ms] [--force]`: stops a daemon by the manager's own kill
 * path (`stopTarget`) — under the target's lock, its whole process group, SIGTERM then SIGKILL, never a
 * reused PID — unmounts the mount it made if it is left, removes its PID file. Exit 0 once it is gone (or
 * was not running), 1 when it could not be stopped, 2 for a refused request.
 * @internal
 */
import { openPidDir, stopTarget, type StopOutcome } from '../manager/stop'
import type { PidFileStore } from '../pidfile'
import { CliFailure, fail, optionalIntegerArg, parse } from './common'
import { findPidDir, pidDirAndTarget, targetIdArg } from './target'

/** `procslot stop` (its usage is its line in the dispatcher's table). */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse('stop', argv, { timeout: { type: 'string' }, force: { type: 'boolean' } })
  const [dir, targetId] = pidDirAndTarget('stop', positionals)
  // Unset: the manager's own default (KILL_TIMEOUT_MS), as kill() has.
  const timeoutMs = optionalIntegerArg('stop', '--timeout', values.timeout, 0, 0x7fffffff)
  targetIdArg(targetId)
  // Something other than a directory goes on to be refused by the store, with its reason.
  const pidDir = findPidDir(dir)
  if (pidDir.found === 'missing') {
    process.stdout.write(`${targetId}: not running (${pidDir.reason})\n`)
    return 0
  }
  if (pidDir.found === 'unreadable') fail(pidDir.reason)
  // Opened apart from the stop, so that a refused directory is a refused request (exit 2), a failed stop 1.
  let store: PidFileStore
  try {
    store = openPidDir(dir)
  } catch (err) {
    return fail((err as Error).message)
  }
  let stopped: StopOutcome
  try {
    stopped = await stopTarget(store, targetId, { force: values.force === true, timeoutMs })
  } catch (err) {
    fail((err as Error).message, 1)
  }
  if (!stopped.trusted) throw new CliFailure(`${targetId}: its PID file cannot be trusted; not stopping it`, 1)
  process.stdout.write(
    stopped.pid ? `${targetId}: stopped (PID ${stopped.pid}, ${stopped.signal ?? 'already gone'})\n` : `${targetId}: not running\n`,
  )
  return 0
}
