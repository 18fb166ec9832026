/**
 * The load phase: opening the PID directory (and the log directory), refused when other users can write
 * to it, and taking in every PID file found there — live daemons tracked, stale and invalid files
 * deleted, untrusted ones reported and left alone, spawns that never finished undone in the background.
 * Internal to the manager (not exported by the package).
 */
import { mkdirSync, unlinkSync } from 'node:fs'

import { nativeError } from '../errors'
import { native, type NativeLoad } from '../native'
import { PidFileStore } from '../pidfile'
import { undoTarget } from './kill'
import type { StaleEvent } from './files'
import type { Tracker } from './tracking'
import type { UntrustedPidFile } from './types'

/** Refuses a directory other users can write to (`PidFileError` code `EUNSAFE`). */
export function checkPrivate(dir: string): void {
  try {
    native.checkPrivateDir(dir)
  } catch (err) {
    throw nativeError(err, { path: dir })
  }
}

/**
 * The PID directory's store, created if missing (mode 0755).
 * @throws {PidFileError} `EUNSAFE` for a directory other users can write to, or the operating system's
 * error.
 */
export function openPidDir(dir: string): PidFileStore {
  const store = new PidFileStore(dir)
  checkPrivate(dir)
  return store
}

/**
 * Creates the log directory if missing (mode 0755).
 * @throws {PidFileError} `EUNSAFE` for a directory other users can write to, or the operating system's
 * error.
 */
export function openLogDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 })
  } catch (err) {
    throw nativeError(err, { path: dir })
  }
  checkPrivate(dir)
}

/** Every PID file of the directory, judged by the core (one pass, in parallel). */
export function readPidDir(store: PidFileStore): NativeLoad {
  try {
    return store.native.load()
  } catch (err) {
    throw nativeError(err, { path: store.dir })
  }
}

/** What loading a PID directory found. */
export interface Loaded {
  /** How many live daemons are tracked. */
  readonly loaded: number
  /** How many stale or invalid PID files were deleted. */
  readonly cleaned: number
  /** The PID files left alone. */
  readonly untrusted: readonly UntrustedPidFile[]
  /** The `stale` events of the deleted files, for the manager to emit once it is constructed. */
  readonly stale: readonly StaleEvent[]
}

/**
 * Loads every PID file of the directory into `tr`: files the core judged running are tracked as they
 * come (their records are read when first needed); stale and invalid ones deleted; untrusted ones
 * reported and left alone; abandoned temporary files deleted. Spawns that never finished are undone in
 * the background, under their lock, before any other call on their target.
 */
export function loadPidDir(store: PidFileStore, tr: Tracker, killTimeoutMs: number): Loaded {
  const { runningIds, runningPids, runningStartTicks, runningStartTimeMs, others, records, tempFiles } = readPidDir(store)
  tr.out.log.info({ pidDir: store.dir, files: runningIds.length + others.length }, 'loading PID files')
  for (let i = 0; i < runningIds.length; i++) {
    tr.trackLoaded(runningIds[i]!, runningPids[i]!, runningStartTicks[i]!, runningStartTimeMs[i]!)
  }
  let cleaned = 0
  const untrusted: UntrustedPidFile[] = []
  const stale: StaleEvent[] = []
  for (const v of others) {
    if (v.judgement === 'untrusted') {
      tr.out.log.warn({ targetId: v.targetId, path: v.path, reason: v.reason }, 'untrusted PID file left alone')
      untrusted.push({ targetId: v.targetId, path: v.path, reason: v.reason ?? 'untrusted' })
    } else if (tr.files.dropFile(v, false, (e) => stale.push(e))) {
      cleaned++
    }
  }
  for (const file of tempFiles) {
    try {
      unlinkSync(file)
    } catch {}
  }
  for (const r of records) {
    void undoTarget(tr, r.targetId, killTimeoutMs).then(
      (undone) => undone && tr.out.log.info({ targetId: r.targetId, pid: r.record.pid }, 'undid a spawn that never finished'),
      (err: unknown) => tr.out.report(err, 'could not undo a spawn that never finished', { targetId: r.targetId }),
    )
  }
  tr.out.log.info({ loaded: runningIds.length, cleaned, untrusted: untrusted.length }, 'PID file loading complete')
  return { loaded: runningIds.length, cleaned, untrusted, stale }
}
