/**
 * Stopping daemons: the whole process group, SIGTERM then SIGKILL, resolved only when every member is
 * gone; then what the daemon left mounted (by identity) and its PID file and record. Also the undoing of
 * a spawn that never finished (its manager died half-way).
 * Internal to the manager (not exported by the package).
 */
import type { ChildProcess } from 'node:child_process'

import { ProcessError, TargetLockedError } from '../errors'
import { native, type NativeProcess, type NativeTargetState } from '../native'
import { awaitNative } from './queue'
import { Proc } from './proc'
import type { Tracker } from './tracking'

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
 * Stops a process and its group; resolves with the strongest signal sent once all are gone. The signals
 * are sent from here (microseconds); the leader's exit is an event from the core's watcher thread; only a
 * group that outlives its leader (members left, or the leader not reaped yet) is finished on a thread of
 * its own. No look at the process table of the whole host, and no thread, in the common case.
 * @throws an `ESURVIVED` error when some outlived SIGKILL.
 */
export async function stopGroup(
  targetId: string,
  proc: Proc,
  force: boolean,
  timeoutMs: number,
  child: ChildProcess | null = null,
): Promise<'SIGTERM' | 'SIGKILL' | null> {
  const h = proc.handle
  if (h === null) return null
  const deadline = Date.now() + (force ? 0 : timeoutMs)
  const begun = h.beginStop(force)
  let signal = begun.signal ?? null
  // The leader's exit: for a daemon this process spawned, Node.js's 'exit' (it has reaped it then: until
  // then it still counts as a member of its group); for the others, the watcher thread's report.
  const exited = (ms: number) => (child !== null ? childExitWithin(child, ms) : exitWithin(h, ms))
  if (signal !== null && !(await exited(force ? AFTER_SIGKILL_MS : timeoutMs))) {
    if (force) throw survived(targetId, proc.pid)
    h.signalGroup(SIGKILL)
    signal = 'SIGKILL'
    if (!(await exited(AFTER_SIGKILL_MS))) throw survived(targetId, proc.pid)
  }
  if (h.stopped(begun.leads)) return signal
  // Members outlive the leader (or it is not reaped yet): the rest of the stop, with what is left of the
  // grace, on a thread (the members are found in the process table and waited for through their pidfds).
  const grace = signal === 'SIGKILL' ? 0 : Math.max(0, deadline - Date.now())
  const out = await awaitNative(h.finishStop({ signal, leads: begun.leads }, grace, AFTER_SIGKILL_MS), grace + AFTER_SIGKILL_MS)
  if (!out.gone) throw survived(targetId, proc.pid)
  return out.signal === 'SIGKILL' ? 'SIGKILL' : signal
}

/** Whether Node.js reports `child`'s exit (it has reaped it) within `ms`; the wait holds the event loop. */
export function childExitWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    const timer = setTimeout(() => {
      child.off('exit', done)
      resolve(false)
    }, ms)
    child.once('exit', done)
  })
}

/** SIGKILL's number (the same on every platform procslot runs on). */
const SIGKILL = 9

/** Whether the process exits within `ms` (its exit reported by the watcher thread). */
async function exitWithin(h: NativeProcess, ms: number): Promise<boolean> {
  const exited = h.exited()
  const timer = setTimeout(() => h.cancelExited(), ms)
  try {
    return await exited
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Undoes what a spawn that never finished left (a spawn record with no PID file naming its process): its
 * process group is stopped, its mount (if it made one) unmounted, its record deleted. With the target's
 * lock held. Whether there was anything to undo.
 */
async function undoUnfinished(tr: Tracker, targetId: string, st: NativeTargetState, timeoutMs: number): Promise<boolean> {
  const record = st.record
  if (record == null) return false
  const file = st.verdict
  if (file != null && file.judgement === 'running') return false
  if (file != null && file.pid === record.pid && file.judgement !== 'reused') return false
  if (st.recordProcess != null) {
    const handle = native.openProcess(record.pid, record.startTicks)
    if (handle !== null) {
      tr.out.log.warn({ targetId, pid: record.pid }, 'undoing a spawn that never finished (its manager died half-way)')
      await stopGroup(targetId, new Proc(record.pid, record.startTicks, handle.startTimeMs, handle), false, timeoutMs)
    }
  }
  tr.files.unmountDead(targetId, record, true)
  tr.files.native.deleteRecord(targetId)
  return true
}

/**
 * Undoes a spawn that never finished (found at load), after the calls queued before it and under the
 * target's lock — if it is still unfinished then (the spawn may have been another manager's, alive and
 * done by now: then nothing is touched). Whether there was anything to undo.
 */
export function undoTarget(tr: Tracker, targetId: string, timeoutMs: number): Promise<boolean> {
  return underLock(tr, targetId, timeoutMs, () => undoUnfinished(tr, targetId, tr.files.native.state(targetId), timeoutMs))
}

/**
 * `kill` of one target — `FuseProcessManager.kill()` and `procslot stop` alike: after the calls queued
 * before it, under the target's lock, {@link killLocked}. Waiting for the lock ends with a
 * `TargetLockedError` after the kill's own time (`timeoutMs` and the time SIGKILL may take) and `busyMs`
 * (how long a spawn holding the lock may run).
 */
export function killTarget(tr: Tracker, targetId: string, force: boolean, timeoutMs: number, busyMs: number): Promise<boolean> {
  return underLock(tr, targetId, timeoutMs + busyMs, () => killLocked(tr, targetId, force, timeoutMs))
}

/**
 * `body` after the calls queued before it, under the target's lock; waiting for the lock ends with a
 * `TargetLockedError` after `waitMs` and the time SIGKILL may take.
 */
function underLock(tr: Tracker, targetId: string, waitMs: number, body: () => Promise<boolean>): Promise<boolean> {
  return tr.files.queue.run(targetId, waitMs + AFTER_SIGKILL_MS, (why) => new TargetLockedError(targetId, why), body)
}

/**
 * The body of `kill`, with the target's lock held. Resolves `true` once the daemon (if any) and its
 * group are gone and cleaned up; `false` for an untrusted PID file (left alone).
 */
export async function killLocked(tr: Tracker, targetId: string, force: boolean, timeoutMs: number): Promise<boolean> {
  const t = tr.refresh(targetId, true)
  // A tracked daemon whose PID file is still the very version judged to name it (one fstatat) needs no
  // second look at the disk: that file is trusted and names it.
  if (t === undefined || t.proc.check() !== 'alive') {
    const st = tr.files.native.state(targetId)
    if (st.verdict?.judgement === 'untrusted') {
      tr.out.log.warn({ targetId, path: st.verdict.path, reason: st.verdict.reason }, 'untrusted PID file: not killing')
      return false
    }
    if (t === undefined) return killNothing(tr, targetId, st, timeoutMs)
  }
  t.killing = true
  let signal: 'SIGTERM' | 'SIGKILL' | null
  try {
    tr.out.log.info({ targetId, pid: t.pid, force }, 'killing daemon')
    signal = await stopGroup(targetId, t.proc, force, timeoutMs, t.child)
  } catch (err) {
    t.killing = false
    throw err
  }
  t.exited = true
  tr.forget(t, true)
  tr.out.events.emit('kill', { targetId, pid: t.pid, signal })
  return true
}

/**
 * Cleans up, with the target's lock held, what a dead daemon or an unfinished spawn left of a target with
 * no running daemon (`kill`, and `spawn` before it starts one). Whether a spawn was undone.
 */
export async function clearDead(tr: Tracker, targetId: string, st: NativeTargetState, timeoutMs: number): Promise<boolean> {
  const undone = await undoUnfinished(tr, targetId, st, timeoutMs)
  const dead = tr.get(targetId)
  if (dead !== undefined) tr.forget(dead, true)
  return undone
}

/** `kill` of a target with no running daemon: what an unfinished spawn or a dead one left is cleaned up. */
async function killNothing(tr: Tracker, targetId: string, st: NativeTargetState, timeoutMs: number): Promise<boolean> {
  const undone = await clearDead(tr, targetId, st, timeoutMs)
  tr.out.log.debug({ targetId, undone }, 'kill: not running')
  tr.out.events.emit('kill', { targetId, pid: null, signal: null })
  return true
}
