/**
 * A target's files on disk — its PID file and its spawn record — as the manager changes them: written
 * for a daemon, written back, cleaned up after a dead one (with the mount it left), dropped when stale.
 * Every change is made under the target's lock, held by the caller or taken if free now (never waited
 * for here).
 * Internal to the manager (not exported by the package).
 */
import { nativeError } from '../errors'
import { native, type NativePidFileStore, type NativeRecord, type NativeVerdict } from '../native'
import type { TargetQueue } from './queue'
import type { Reporter } from './report'
import { mountRef, type MountRef, type Tracked } from './proc'
import type { ManagerEvents } from './types'

/** A stale-file event, emitted now or (during construction) later. */
export type StaleEvent = ManagerEvents['stale'][0]

/** The targets' files of one PID directory, as one manager changes them (under their locks, from `queue`). */
export class TargetFiles {
  constructor(
    readonly native: NativePidFileStore,
    readonly queue: TargetQueue,
    readonly out: Reporter,
  ) {}

  /** The target's PID file, judged by the core; `null` when there is none. */
  judge(targetId: string): NativeVerdict | null {
    try {
      return this.native.judge(targetId)
    } catch (err) {
      throw nativeError(err, { targetId })
    }
  }

  /** The path of the target's PID file. */
  pathFor(targetId: string): string {
    return this.native.pathFor(targetId)
  }

  /**
   * Drops a PID file judged stale, reused or invalid — if it is still that very file once the target's
   * lock is held — with what its dead daemon left mounted; `report` gets the `stale` event. Whether it
   * was dropped (`false`: the lock was busy, or the file changed).
   */
  dropFile(v: NativeVerdict, locked: boolean, report: (e: StaleEvent) => void): boolean {
    const dropped = this.queue.ifFree(v.targetId, locked, false, () => {
      try {
        const st = this.native.state(v.targetId)
        const now = st.verdict
        if (!now || now.fingerprint !== v.fingerprint || now.judgement === 'running' || now.judgement === 'untrusted') return false
        // A record whose process still runs is a spawn that never finished: left to a locked cleanup.
        if (st.record && st.recordProcess) return false
        if (st.record) this.unmountDead(v.targetId, st.record, false)
        this.native.delete(v.targetId)
        return true
      } catch (err) {
        throw nativeError(err, { targetId: v.targetId })
      }
    })
    if (!dropped) return false
    const reason = v.reason ?? v.judgement
    this.out.log.info({ targetId: v.targetId, pid: v.pid ?? null, reason }, 'dropped a stale PID file')
    report({ targetId: v.targetId, pid: v.pid ?? null, path: v.path, reason })
    return true
  }

  /**
   * Unmounts what a dead daemon left at its recorded mount path: only the very mount it made (by mount
   * ID and device, never by `stat`). For a spawn that never finished (`interrupted`) the mount may not
   * have been recorded yet: a FUSE mount at its path is then taken for its own.
   */
  unmountDead(targetId: string, record: Pick<NativeRecord, 'mountPath' | 'mountId' | 'mountDev'>, interrupted: boolean): void {
    const path = record.mountPath
    if (!path) return
    try {
      let mount: MountRef | null = mountRef(record)
      if (mount === null && interrupted) {
        const m = native.mountAt(path)
        if (m !== null && m.fstype.startsWith('fuse')) mount = m
      }
      if (mount !== null && native.unmountIf(path, mount.id, mount.dev)) {
        this.out.log.info({ targetId, mountPath: path }, 'unmounted what a dead daemon left mounted')
      }
    } catch (err) {
      this.out.report(nativeError(err, { path }), 'could not unmount', { targetId, mountPath: path })
    }
  }

  /**
   * Cleans up after a daemon that died: unmounts the mount it made, deletes its PID file and record if
   * they still name it (one core call). `ours`: they did (it died with its PID file in place); `gone`:
   * they did not (another manager stopped or replaced it); `busy`: the target's lock is held elsewhere
   * (nothing done: the holder deals with it). `locked`: the caller holds the target's lock.
   */
  cleanDisk(t: Tracked, locked: boolean): 'ours' | 'gone' | 'busy' {
    return this.queue.ifFree<'ours' | 'gone' | 'busy'>(t.targetId, locked, 'busy', () => {
      try {
        this.mountOf(t)
        if (t.mountPath) this.unmountDead(t.targetId, { mountPath: t.mountPath, mountId: t.mount?.id, mountDev: t.mount?.dev }, false)
        return this.native.forget(t.targetId, t.pid, t.proc.startTicks) ? 'ours' : 'gone'
      } catch (err) {
        throw nativeError(err, { targetId: t.targetId })
      }
    })
  }

  /** Where a tracked daemon mounts: known since its spawn, or read once from its spawn record. */
  mountOf(t: Tracked): string | null {
    if (t.mountPath === undefined) {
      let record: NativeRecord | null = null
      try {
        // The record only if it is this very daemon's (the core's rule, the one `forget` uses).
        record = this.native.recordOf(t.targetId, t.pid, t.proc.startTicks)
      } catch (err) {
        this.out.log.warn({ targetId: t.targetId, err: (err as Error).message }, 'could not read the spawn record')
      }
      t.mountPath = record?.mountPath ?? null
      t.mount = mountRef(record)
    }
    return t.mountPath
  }

  /** Writes a live daemon's record and PID file back (if the target's lock is free now, or held by us). */
  repair(t: Tracked, locked: boolean): void {
    this.queue.ifFree(t.targetId, locked, undefined, () => {
      if (!t.proc.isAlive()) return
      this.writeFiles(t)
      this.out.log.warn({ targetId: t.targetId, pid: t.pid }, 'the PID file of a running daemon was missing or wrong; wrote it back')
    })
  }

  /** Writes a daemon's spawn record, then its PID file, and pins the PID file's new version. */
  writeFiles(t: Tracked): void {
    this.mountOf(t)
    try {
      this.native.writeRecord(t.targetId, {
        pid: t.pid,
        startTicks: t.proc.startTicks,
        mountPath: t.mountPath ?? undefined,
        mountId: t.mount?.id,
        mountDev: t.mount?.dev,
      })
      this.native.write(t.targetId, t.pid)
    } catch (err) {
      throw nativeError(err, { targetId: t.targetId })
    }
    const v = this.judge(t.targetId)
    if (v !== null && v.pid === t.pid) t.proc.pin(this.native, v.targetId, v.fingerprint)
  }
}
