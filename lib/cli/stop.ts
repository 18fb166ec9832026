/**
 * `procslot stop <pidDir> <targetId> [--timeout ms] [--force]`: stops a daemon by the manager's own rules
 * — under the target's lock, its whole process group, SIGTERM then SIGKILL, never a reused PID — unmounts
 * the mount it made if it is left, removes its PID file. Exit 0 once it is gone (or was not running), 1
 * when it could not be stopped, 2 for a refused request.
 * @internal
 */
import { EventEmitter } from 'node:events'
import { statSync } from 'node:fs'
import { resolve } from 'node:path'

import { TargetLockedError } from '../errors'
import { AFTER_SIGKILL_MS, killLocked } from '../manager/kill'
import { TargetQueue } from '../manager/queue'
import { Tracker } from '../manager/tracking'
import type { Logger, ManagerEvents } from '../manager/types'
import { native } from '../native'
import { PidFileStore, checkTargetId } from '../pidfile'
import { fail, integerArg, oneLine, parse } from './common'

const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** `procslot stop` (its usage is its line in the dispatcher's table). */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse('stop', argv, { timeout: { type: 'string' }, force: { type: 'boolean' } })
  if (positionals.length !== 2) fail(`stop: a PID directory and a target ID expected, got ${positionals.length} arguments`)
  const [dir, targetId] = [resolve(positionals[0]!), positionals[1]!]
  const timeoutMs = values.timeout === undefined ? 10_000 : integerArg('stop', '--timeout', String(values.timeout), 0, 0x7fffffff)
  try {
    checkTargetId(targetId)
  } catch (err) {
    fail((err as Error).message)
  }
  try {
    statSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stdout.write(`${targetId}: not running (no PID directory at ${dir})\n`)
      return 0
    }
    fail(oneLine((err as Error).message))
  }
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
  try {
    const ok = await queue.run(
      targetId,
      timeoutMs + AFTER_SIGKILL_MS,
      (why) => new TargetLockedError(targetId, why),
      () => killLocked(tracker, targetId, values.force === true, timeoutMs),
    )
    if (!ok) {
      process.stderr.write(`procslot: ${targetId}: its PID file cannot be trusted; not stopping it\n`)
      return 1
    }
  } catch (err) {
    process.stderr.write(`procslot: ${oneLine((err as Error).message)}\n`)
    return 1
  } finally {
    tracker.close()
  }
  const k = killed as ManagerEvents['kill'][0] | null
  process.stdout.write(
    k?.pid ? `${targetId}: stopped (PID ${k.pid}, ${k.signal ?? 'already gone'})\n` : `${targetId}: not running\n`,
  )
  return 0
}
