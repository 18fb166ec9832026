/**
 * Stopping daemons: the whole process group, SIGTERM then SIGKILL, resolved only when every member is
 * gone; then what the daemon left mounted (by identity) and its PID file and record. Also the undoing of
 * a spawn that never finished (its manager died half-way).
 * Internal to the manager (not exported by the package).
 */
import { ProcessError } from '../errors'
import { native, type NativeTargetState } from '../native'
import { awaitNative } from './queue'
import { Proc, type Tracker } from './tracking'

/** How long a SIGKILLed process may take to be gone before `kill` gives up on it. */
export const AFTER_SIGKILL_MS = 5000

/** A process that outlived SIGKILL (code `ESURVIVED`). */
function survived(targetId: string, pid: number): Error {
  return new ProcessError(`target ${targetId}: PID ${pid} or its process group survived SIGKILL for ${AFTER_SIGKILL_MS} ms`, {
    code: 'ESURVIVED',
    pid,
  })
}

/**
 * Stops a process and its group; resolves with the strongest signal sent once all are gone.
 * @throws an `ESURVIVED` error when some outlived SIGKILL.
 */
export async function stopGroup(
  targetId: string,
  proc: Proc,
  force: boolean,
  timeoutMs: number,
): Promise<'SIGTERM' | 'SIGKILL' | null> {
  const wait = (force ? 0 : timeoutMs) + AFTER_SIGKILL_MS
  const out = await awaitNative(proc.stopGroup(force, timeoutMs, AFTER_SIGKILL_MS), wait)
  if (!out.gone) throw survived(targetId, proc.pid)
  return out.signal ?? null
}

/**
 * Undoes what a spawn that never finished left (a spawn record with no PID file naming its process): its
 * process group is stopped, its mount (if it made one) unmounted, its record deleted. With the target's
 * lock held. Whether there was anything to undo.
 */
export async function undoUnfinished(tr: Tracker, targetId: string, st: NativeTargetState, timeoutMs: number): Promise<boolean> {
  const record = st.record
  if (record == null) return false
  const file = st.verdict
  if (file != null && file.judgement === 'running') return false
  if (file != null && file.pid === record.pid && file.judgement !== 'reused') return false
  if (st.recordProcess != null) {
    const handle = native.openProcess(record.pid, record.startTicks)
    if (handle !== null) {
      tr.log.warn({ targetId, pid: record.pid }, 'undoing a spawn that never finished (its manager died half-way)')
      await stopGroup(targetId, new Proc(record.pid, record.startTicks, handle.startTimeMs, handle), false, timeoutMs)
    }
  }
  tr.unmountDead(targetId, record, true)
  tr.native.deleteRecord(targetId)
  return true
}

/**
 * Undoes a spawn that never finished, if it is still unfinished now that the target's lock is held (the
 * spawn may have been another manager's, alive and done by now: then nothing is touched).
 */
export async function undoLocked(tr: Tracker, targetId: string, timeoutMs: number): Promise<boolean> {
  return undoUnfinished(tr, targetId, tr.native.state(targetId), timeoutMs)
}

/**
 * The body of `kill`, with the target's lock held. Resolves `true` once the daemon (if any) and its
 * group are gone and cleaned up; `false` for an untrusted PID file (left alone).
 */
export async function killLocked(tr: Tracker, targetId: string, force: boolean, timeoutMs: number): Promise<boolean> {
  const t = tr.refresh(targetId, true)
  const st = tr.native.state(targetId)
  if (st.verdict?.judgement === 'untrusted') {
    tr.log.warn({ targetId, path: st.verdict.path, reason: st.verdict.reason }, 'untrusted PID file: not killing')
    return false
  }
  if (t === undefined) {
    const undone = await undoUnfinished(tr, targetId, st, timeoutMs)
    const dead = tr.get(targetId)
    if (dead !== undefined) tr.forget(dead, true)
    tr.log.debug({ targetId, undone }, 'kill: not running')
    tr.events.emit('kill', { targetId, pid: null, signal: null })
    return true
  }
  t.killing = true
  let signal: 'SIGTERM' | 'SIGKILL' | null
  try {
    tr.log.info({ targetId, pid: t.pid, force }, 'killing daemon')
    signal = await stopGroup(targetId, t.proc, force, timeoutMs)
  } catch (err) {
    t.killing = false
    throw err
  }
  t.exited = true
  tr.forget(t, true)
  tr.events.emit('kill', { targetId, pid: t.pid, signal })
  return true
}
