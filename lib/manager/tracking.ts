/**
 * Tracking and adoption: memory as a cache of the PID directory. Every decision looks at the target's
 * PID file again — one `fstatat` when nothing changed since it was last judged — and follows it: a live
 * daemon another manager started is adopted, a dead one is marked exited, a stale file is dropped (under
 * the target's lock, never waiting for it).
 * Internal to the manager (not exported by the package).
 */
import type { ChildProcess } from 'node:child_process'
import type { EventEmitter } from 'node:events'
import { existsSync } from 'node:fs'

import { nativeError } from '../errors'
import {
  native,
  type NativePidFileStore,
  type NativeProcess,
  type NativeRecord,
  type NativeStopped,
  type NativeTargetLock,
  type NativeVerdict,
} from '../native'
import type { TargetQueue } from './queue'
import type { Logger, ManagerEvents, ProcessInfo } from './types'

/** A mount as the mount table names it. */
export interface MountRef {
  readonly id: number
  readonly dev: string
}

/**
 * A tracked process: its PID pinned by its exact start time, and the version of the PID file last judged
 * to name it. The native handle (a pidfd) is opened on first use, so that loading thousands of PID files
 * opens no descriptor until one is needed.
 */
export class Proc {
  #handle: NativeProcess | null | undefined
  #pin: { store: NativePidFileStore; targetId: string; fingerprint: string } | null = null

  constructor(
    readonly pid: number,
    readonly startTicks: number,
    readonly startTimeMs: number,
    handle?: NativeProcess,
  ) {
    this.#handle = handle
  }

  /** The handle, or `null` once the process is gone (or its PID belongs to another process). */
  get handle(): NativeProcess | null {
    if (this.#handle === undefined) {
      this.#handle = native.openProcess(this.pid, this.startTicks)
      if (this.#handle !== null && this.#pin !== null) {
        this.#handle.pinPidFile(this.#pin.store, this.#pin.targetId, this.#pin.fingerprint)
      }
    }
    return this.#handle
  }

  /** Remembers the version of the target's PID file that was judged to name this process. */
  pin(store: NativePidFileStore, targetId: string, fingerprint: string): void {
    this.#pin = { store, targetId, fingerprint }
    if (this.#handle) this.#handle.pinPidFile(store, targetId, fingerprint)
  }

  /** `alive`: the PID file is as judged and the process alive; `exited`: as judged, the process gone; `changed`: judge again. */
  check(): 'alive' | 'exited' | 'changed' {
    const h = this.handle
    return h === null ? 'changed' : h.check()
  }

  isAlive(): boolean {
    const h = this.handle
    return h !== null && h.isAlive()
  }

  waitExit(timeoutMs: number): Promise<boolean> {
    const h = this.handle
    return h === null ? Promise.resolve(true) : h.waitExit(timeoutMs)
  }

  stopGroup(force: boolean, graceMs: number, afterKillMs: number): Promise<NativeStopped> {
    const h = this.handle
    return h === null ? Promise.resolve({ signal: null, gone: true }) : h.stopGroup(force, graceMs, afterKillMs)
  }

  /** Releases the pidfd; the process is not touched. */
  close(): void {
    this.#handle?.close()
    this.#handle = null
  }
}

/** A target in memory. */
export interface Tracked {
  readonly targetId: string
  readonly pid: number
  readonly proc: Proc
  /**
   * Where it mounts; `null` when unknown; `undefined` for a daemon loaded from a PID file until its spawn
   * record is first needed (loading 10,000 files reads none of them).
   */
  mountPath: string | null | undefined
  /** The mount it made (recorded at readiness); `null` when unknown; `undefined` as `mountPath`. */
  mount: MountRef | null | undefined
  readonly envKeys: readonly string[]
  readonly loadedFromDisk: boolean
  readonly child: ChildProcess | null
  killing: boolean
  exitReported: boolean
  /** Known to be dead (kept as `status: 'exited'` until `cleanupDeadProcesses`). */
  exited: boolean
}

/** Who the tracker reports to: the manager, an event emitter. */
export type Emitter = Pick<EventEmitter<ManagerEvents>, 'emit' | 'listenerCount'>

/** A stale-file event, emitted now or (during construction) later. */
export type StaleEvent = ManagerEvents['stale'][0]

export class Tracker {
  readonly #map = new Map<string, Tracked>()
  #closed = false
  /** Called for each daemon that starts being tracked (spawned or adopted), to watch it. */
  onTracked: (t: Tracked) => void = () => {}
  /** Called for each tracked daemon dropped from memory, to stop watching it. */
  onDropped: (t: Tracked) => void = () => {}

  constructor(
    readonly native: NativePidFileStore,
    readonly queue: TargetQueue,
    readonly log: Logger,
    readonly events: Emitter,
  ) {}

  get(targetId: string): Tracked | undefined {
    return this.#map.get(targetId)
  }

  all(): Tracked[] {
    return [...this.#map.values()]
  }

  set(t: Tracked): void {
    if (this.#closed) {
      // A spawn that finished after `close()`: its daemon runs on with its PID file; memory is gone.
      t.proc.close()
      return
    }
    const old = this.#map.get(t.targetId)
    if (old !== undefined && old !== t) this.drop(old)
    this.#map.set(t.targetId, t)
    this.onTracked(t)
  }

  /** Drops a target from memory (if `t` is still its entry) and releases its handle. */
  drop(t: Tracked): void {
    if (this.#map.get(t.targetId) === t) this.#map.delete(t.targetId)
    this.onDropped(t)
    t.proc.close()
  }

  /** Releases every handle; memory is emptied, and stays so. */
  close(): void {
    this.#closed = true
    for (const t of this.#map.values()) {
      this.onDropped(t)
      t.proc.close()
    }
    this.#map.clear()
  }

  /**
   * Reports a failure of background work — never thrown, so it can never end the process: the logger's
   * `error` always, the `'error'` event when someone listens (an `'error'` event nobody listens to would
   * throw).
   */
  report(err: unknown, message: string, fields: object = {}): void {
    const error = err instanceof Error ? err : new Error(String(err))
    try {
      this.log.error({ ...fields, err: error.message, code: (error as { code?: unknown }).code }, message)
    } catch {}
    if (this.events.listenerCount('error') > 0) this.events.emit('error', error)
  }

  /** Tracks a live process found at load (judged running natively); its record is read when needed. */
  trackLoaded(targetId: string, pid: number, startTicks: number, startTimeMs: number): void {
    this.#map.set(targetId, loadedEntry(targetId, new Proc(pid, startTicks, startTimeMs), undefined, undefined))
  }

  /** The target's PID file, judged by the core; `null` when there is none. */
  judge(targetId: string): NativeVerdict | null {
    try {
      return this.native.judge(targetId)
    } catch (err) {
      throw nativeError(err, { targetId })
    }
  }

  /**
   * Brings memory in line with the target's PID file and returns the target's running daemon, if it has
   * one. `locked`: the caller holds the target's lock (else changes to disk are made only if the lock is
   * free now, and otherwise left for later).
   */
  refresh(targetId: string, locked = false): Tracked | undefined {
    const t = this.#map.get(targetId)
    if (t !== undefined && !t.exited) {
      const c = t.proc.check()
      if (c === 'alive') return t
      if (c === 'exited') {
        this.markExited(t, null, null)
        return undefined
      }
    }
    const v = this.judge(targetId)
    if (v !== null && v.judgement === 'running') {
      if (t !== undefined && t.pid === v.pid && t.proc.startTicks === v.startTicks && !t.exited) {
        t.proc.pin(this.native, v.targetId, v.fingerprint)
        if (t.proc.isAlive()) return t
        this.markExited(t, null, null)
        return undefined
      }
      if (t !== undefined && !t.exited && t.proc.isAlive()) {
        this.log.warn({ targetId, pid: t.pid, now: v.pid }, 'the PID file names another daemon now; following it')
      }
      return this.adopt(v)
    }
    if (t !== undefined && !t.exited && t.proc.isAlive()) {
      // Our daemon runs, but its PID file is gone or names a dead process: write it back.
      if (v?.judgement !== 'untrusted') this.#repair(t, locked)
      return t
    }
    if (t !== undefined && !t.exited) this.markExited(t, null, null)
    if (v !== null && v.judgement !== 'untrusted') this.dropFile(v, locked, (e) => this.events.emit('stale', e))
    return undefined
  }

  /** Tracks the live daemon a PID file judged running names (replacing whatever memory had). */
  adopt(v: NativeVerdict): Tracked {
    const old = this.#map.get(v.targetId)
    if (old !== undefined) this.drop(old)
    const record = v.record ?? null
    const t = loadedEntry(v.targetId, new Proc(v.pid!, v.startTicks!, v.startTimeMs!), record?.mountPath ?? null, mountRef(record))
    t.proc.pin(this.native, v.targetId, v.fingerprint)
    if (!this.#closed) {
      this.#map.set(v.targetId, t)
      this.onTracked(t)
    }
    this.log.debug({ targetId: v.targetId, pid: v.pid }, 'adopted a running daemon through its PID file')
    return t
  }

  /**
   * Drops a PID file judged stale, reused or invalid — if it is still that very file once the target's
   * lock is held — with what its dead daemon left mounted; `report` gets the `stale` event. Whether it
   * was dropped (`false`: the lock was busy, or the file changed).
   */
  dropFile(v: NativeVerdict, locked: boolean, report: (e: StaleEvent) => void): boolean {
    const lock = locked ? null : this.queue.tryLock(v.targetId)
    if (!locked && lock === null) return false
    try {
      const st = this.native.state(v.targetId)
      const now = st.verdict
      if (!now || now.fingerprint !== v.fingerprint || now.judgement === 'running' || now.judgement === 'untrusted') return false
      // A record whose process still runs is a spawn that never finished: left to a locked cleanup.
      if (st.record && st.recordProcess) return false
      if (st.record) this.unmountDead(v.targetId, st.record, false)
      this.native.delete(v.targetId)
    } catch (err) {
      throw nativeError(err, { targetId: v.targetId })
    } finally {
      lock?.release()
    }
    const reason = v.reason ?? v.judgement
    this.log.info({ targetId: v.targetId, pid: v.pid ?? null, reason }, 'dropped a stale PID file')
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
        this.log.info({ targetId, mountPath: path }, 'unmounted what a dead daemon left mounted')
      }
    } catch (err) {
      this.report(nativeError(err, { path }), 'could not unmount', { targetId, mountPath: path })
    }
  }

  /** Marks a tracked daemon dead and reports its exit, once, unless this manager killed it. */
  markExited(t: Tracked, code: number | null, signal: NodeJS.Signals | null): void {
    t.exited = true
    if (t.killing || t.exitReported) return
    t.exitReported = true
    this.log.warn({ targetId: t.targetId, pid: t.pid, code, signal }, 'daemon exited on its own')
    this.events.emit('exit', { targetId: t.targetId, pid: t.pid, code, signal })
  }

  /**
   * Forgets a dead daemon: unmounts what it left mounted, deletes its PID file and record if they still
   * name it. `locked`: the caller holds the target's lock; else it is taken only if free now — `false`
   * when it was busy (nothing done).
   */
  forget(t: Tracked, locked: boolean): boolean {
    if (this.cleanDisk(t, locked) === 'busy') return false
    this.drop(t)
    this.log.debug({ targetId: t.targetId, pid: t.pid }, 'forgot a dead daemon')
    return true
  }

  /**
   * Cleans up after a daemon that died, leaving its entry in memory (as exited): unmounts the mount it
   * made, deletes its PID file and record if they still name it (one core call). `ours`: they did (it
   * died with its PID file in place); `gone`: they did not (another manager stopped or replaced it);
   * `busy`: the target's lock is held elsewhere (nothing done: the holder deals with it).
   */
  cleanDisk(t: Tracked, locked: boolean): 'ours' | 'gone' | 'busy' {
    const lock = locked ? null : this.queue.tryLock(t.targetId)
    if (!locked && lock === null) return 'busy'
    try {
      this.mountOf(t)
      if (t.mountPath) this.unmountDead(t.targetId, { mountPath: t.mountPath, mountId: t.mount?.id, mountDev: t.mount?.dev }, false)
      return this.native.forget(t.targetId, t.pid, t.proc.startTicks) ? 'ours' : 'gone'
    } catch (err) {
      throw nativeError(err, { targetId: t.targetId })
    } finally {
      lock?.release()
    }
  }

  /** Where a tracked daemon mounts: known since its spawn, or read once from its spawn record. */
  mountOf(t: Tracked): string | null {
    if (t.mountPath === undefined) {
      let record: NativeRecord | null = null
      try {
        record = this.native.recordOf(t.targetId, t.pid, t.proc.startTicks)
      } catch (err) {
        this.log.warn({ targetId: t.targetId, err: (err as Error).message }, 'could not read the spawn record')
      }
      t.mountPath = record?.mountPath ?? null
      t.mount = mountRef(record)
    }
    return t.mountPath
  }

  info(t: Tracked): ProcessInfo {
    const alive = !t.exited && t.proc.isAlive()
    const pidFile = this.pathFor(t.targetId)
    return {
      targetId: t.targetId,
      pid: t.pid,
      mountPath: this.mountOf(t),
      startTime: new Date(t.proc.startTimeMs),
      envKeys: t.envKeys,
      status: alive ? 'running' : 'exited',
      loadedFromDisk: t.loadedFromDisk,
      alive,
      pidFile,
      pidFileExists: existsSync(pidFile),
    }
  }

  pathFor(targetId: string): string {
    return this.native.pathFor(targetId)
  }

  /** Writes a live daemon's record and PID file back (if the target's lock is free now, or held by us). */
  #repair(t: Tracked, locked: boolean): void {
    const lock = locked ? null : this.queue.tryLock(t.targetId)
    if (!locked && lock === null) return
    try {
      if (!t.proc.isAlive()) return
      this.writeFiles(t)
      this.log.warn({ targetId: t.targetId, pid: t.pid }, 'the PID file of a running daemon was missing or wrong; wrote it back')
    } finally {
      lock?.release()
    }
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

/** The recorded mount of a record, if it has one. */
export function mountRef(record: Pick<NativeRecord, 'mountId' | 'mountDev'> | null | undefined): MountRef | null {
  return record?.mountId != null && record.mountDev != null ? { id: record.mountId, dev: record.mountDev } : null
}

/**
 * The entry of a daemon found through its PID file rather than spawned here: no child, no environment
 * known. `undefined` mount fields are read from its spawn record when first needed.
 */
function loadedEntry(targetId: string, proc: Proc, mountPath: Tracked['mountPath'], mount: Tracked['mount']): Tracked {
  return {
    targetId,
    pid: proc.pid,
    proc,
    mountPath,
    mount,
    envKeys: [],
    loadedFromDisk: true,
    child: null,
    killing: false,
    exitReported: false,
    exited: false,
  }
}
