/**
 * `procslot stop <pidDir> <targetId> [--timeout ms] [--force]`: stops a daemon by the manager's own rules
 * — under the target's lock, its whole process group, SIGTERM then SIGKILL, never a reused PID — unmounts
 * the mount it made if it is left, removes its PID file. Exit 0 once it is gone (or was not running), 1
 * when it could not be stopped, 2 for a refused request.
 * @internal
 */
import { EventEmitter } from 'node:events'

import { TargetLockedError } from '../errors'
import { AFTER_SIGKILL_MS, killLocked } from '../manager/kill'
import { TargetQueue } from '../manager/queue'
import { Tracker } from '../manager/tracking'
import type { ManagerEvents } from '../manager/types'
import { native } from '../native'
import { PidFileStore } from '../pidfile'
import { CliFailure, fail, oneLine, optionalIntegerArg, parse } from './common'
import { findPidDir, pidDirAndTarget, SILENT, targetIdArg } from './target'

/** `procslot stop` (its usage is its line in the dispatcher's table). */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse('stop', argv, { timeout: { type: 'string' }, force: { type: 'boolean' } })
  const [dir, targetId] = pidDirAndTarget('stop', positionals)
  const timeoutMs = optionalIntegerArg('stop', '--timeout', values.timeout, 0, 0x7fffffff) ?? 10_000
  targetIdArg(targetId)
  // Something other than a directory goes on to be refused by the store, with its reason.
  const pidDir = findPidDir(dir)
  if (pidDir.found === 'missing') {
    process.stdout.write(`${targetId}: not running (${pidDir.reason})\n`)
    return 0
  }
  if (pidDir.found === 'unreadable') fail(pidDir.reason)
  let store: PidFileStore
  try {
    store = new PidFileStore(dir)
    native.checkPrivateDir(dir)
  } catch (err) {
    return fail(oneLine((err as Error).message))
  }
  const events = new EventEmitter<ManagerEvents>()
  let killed: ManagerEvents['kill'][0] | null = null
  events.on('kill', (e) => (killed = e))
  events.on('error', () => {})
  const queue = new TargetQueue(store.native, SILENT)
  const tracker = new Tracker(store.native, queue, SILENT, events)
  let ok: boolean
  try {
    ok = await queue.run(
      targetId,
      timeoutMs + AFTER_SIGKILL_MS,
      (why) => new TargetLockedError(targetId, why),
      () => killLocked(tracker, targetId, values.force === true, timeoutMs),
    )
  } catch (err) {
    throw new CliFailure(oneLine((err as Error).message), 1)
  } finally {
    tracker.close()
  }
  if (!ok) throw new CliFailure(`${targetId}: its PID file cannot be trusted; not stopping it`, 1)
  const k = killed as ManagerEvents['kill'][0] | null
  process.stdout.write(
    k?.pid ? `${targetId}: stopped (PID ${k.pid}, ${k.signal ?? 'already gone'})\n` : `${targetId}: not running\n`,
  )
  return 0
}
