/**
 * A daemon in memory: its process (`Proc`: the PID pinned by its start time, the PID file version last
 * judged to name it) and what the manager knows of it (`Tracked`), with the mount it made (`MountRef`).
 * The data the tracker, the files and the phases share; it imports none of them.
 * Internal to the manager (not exported by the package).
 */
import type { ChildProcess } from 'node:child_process'

import { native, type NativePidFileStore, type NativeProcess, type NativeRecord, type NativeStopped } from '../native'

/** A mount as the mount table names it. */
export interface MountRef {
  readonly id: number
  readonly dev: string
}

/** The recorded mount of a record, if it has one. */
export function mountRef(record: Pick<NativeRecord, 'mountId' | 'mountDev'> | null | undefined): MountRef | null {
  return record?.mountId != null && record.mountDev != null ? { id: record.mountId, dev: record.mountDev } : null
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

  /** Whether a PID file's verdict (the core's judgement) names this very process: its PID and start time. A spawn record is matched by the core (`recordOf`). */
  isNamedBy(x: { readonly pid?: number | null; readonly startTicks?: number | null } | null | undefined): boolean {
    return x != null && x.pid === this.pid && x.startTicks === this.startTicks
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
