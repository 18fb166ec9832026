/**
 * Tracking and adoption: memory as a cache of the PID directory. Every decision looks at the target's
 * PID file again — one `fstatat` when nothing changed since it was last judged — and follows it: a live
 * daemon another manager started is adopted, a dead one is marked exited, a stale file is dropped (under
 * the target's lock, never waiting for it). What changes on disk is done by `files`, what is told by
 * `report`.
 * Internal to the manager (not exported by the package).
 */
import { existsSync } from 'node:fs'

import type { NativePidFileStore, NativeVerdict } from '../native'
import { TargetFiles } from './files'
import { Proc, mountRef, type Tracked } from './proc'
import type { TargetQueue } from './queue'
import { Reporter, type Emitter } from './report'
import type { Logger, ProcessInfo } from './types'

/** The daemons of one PID directory in memory, by target ID: a cache that each decision brings in line with the disk. */
export class Tracker {
  readonly #map = new Map<string, Tracked>()
  #closed = false
  /** Called for each daemon that starts being tracked (spawned or adopted), to watch it. */
  onTracked: (t: Tracked) => void = () => {}
  /** Called for each tracked daemon dropped from memory, to stop watching it. */
  onDropped: (t: Tracked) => void = () => {}

  /** Where the targets' files are changed. */
  readonly files: TargetFiles
  /** Where what happens to them is told. */
  readonly out: Reporter

  constructor(store: NativePidFileStore, queue: TargetQueue, log: Logger, events: Emitter) {
    this.out = new Reporter(log, events)
    this.files = new TargetFiles(store, queue, this.out)
  }

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

  /** Tracks a live process found at load (judged running natively); its record is read when needed. */
  trackLoaded(targetId: string, pid: number, startTicks: number, startTimeMs: number): void {
    this.#map.set(targetId, loadedEntry(targetId, new Proc(pid, startTicks, startTimeMs), undefined, undefined))
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
    const v = this.files.judge(targetId)
    if (v !== null && v.judgement === 'running') {
      if (t !== undefined && !t.exited && t.proc.isNamedBy(v)) {
        t.proc.pin(this.files.native, v.targetId, v.fingerprint)
        if (t.proc.isAlive()) return t
        this.markExited(t, null, null)
        return undefined
      }
      if (t !== undefined && !t.exited && t.proc.isAlive()) {
        this.out.log.warn({ targetId, pid: t.pid, now: v.pid }, 'the PID file names another daemon now; following it')
      }
      return this.adopt(v)
    }
    if (t !== undefined && !t.exited && t.proc.isAlive()) {
      // Our daemon runs, but its PID file is gone or names a dead process: write it back.
      if (v?.judgement !== 'untrusted') this.files.repair(t, locked)
      return t
    }
    if (t !== undefined && !t.exited) this.markExited(t, null, null)
    if (v !== null && v.judgement !== 'untrusted') this.files.dropFile(v, locked, (e) => this.out.events.emit('stale', e))
    return undefined
  }

  /** Tracks the live daemon a PID file judged running names (replacing whatever memory had). */
  adopt(v: NativeVerdict): Tracked {
    const old = this.#map.get(v.targetId)
    if (old !== undefined) this.drop(old)
    const record = v.record ?? null
    const t = loadedEntry(v.targetId, new Proc(v.pid!, v.startTicks!, v.startTimeMs!), record?.mountPath ?? null, mountRef(record))
    t.proc.pin(this.files.native, v.targetId, v.fingerprint)
    if (!this.#closed) {
      this.#map.set(v.targetId, t)
      this.onTracked(t)
    }
    this.out.log.debug({ targetId: v.targetId, pid: v.pid }, 'adopted a running daemon through its PID file')
    return t
  }

  /** Marks a tracked daemon dead and reports its exit, once, unless this manager killed it. */
  markExited(t: Tracked, code: number | null, signal: NodeJS.Signals | null): void {
    t.exited = true
    if (t.killing || t.exitReported) return
    t.exitReported = true
    this.out.log.warn({ targetId: t.targetId, pid: t.pid, code, signal }, 'daemon exited on its own')
    this.out.events.emit('exit', { targetId: t.targetId, pid: t.pid, code, signal })
  }

  /**
   * Forgets a dead daemon: its files cleaned up ({@link TargetFiles.cleanDisk}), then its entry dropped.
   * `locked`: the caller holds the target's lock; else it is taken only if free now — `false` when it was
   * busy (nothing done).
   */
  forget(t: Tracked, locked: boolean): boolean {
    if (this.files.cleanDisk(t, locked) === 'busy') return false
    this.drop(t)
    this.out.log.debug({ targetId: t.targetId, pid: t.pid }, 'forgot a dead daemon')
    return true
  }

  info(t: Tracked): ProcessInfo {
    const alive = !t.exited && t.proc.isAlive()
    const pidFile = this.files.pathFor(t.targetId)
    return {
      targetId: t.targetId,
      pid: t.pid,
      mountPath: this.files.mountOf(t),
      startTime: new Date(t.proc.startTimeMs),
      envKeys: t.envKeys,
      status: alive ? 'running' : 'exited',
      loadedFromDisk: t.loadedFromDisk,
      alive,
      pidFile,
      pidFileExists: existsSync(pidFile),
    }
  }
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
