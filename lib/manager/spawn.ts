/**
 * Spawn to ready: the target's state on disk first (a running daemon is returned, what a dead one or an
 * unfinished spawn left is cleaned), the mount point prepared off the JavaScript thread, the daemon
 * started behind a gate until its identity is recorded, then readiness waited for on the event itself,
 * the record completed with the mount it made, the PID file written.
 * Internal to the manager (not exported by the package).
 */
import { join } from 'node:path'

import { SpawnError, nativeError } from '../errors'
import { native, type NativeMount } from '../native'
import { redactEnv, openLog, resolveCommand, startGated, tail, type Gated } from './daemon-io'
import { AFTER_SIGKILL_MS, childExitWithin, stopGroup, undoUnfinished } from './kill'
import { awaitNative, withDeadline } from './queue'
import { mountRef, type MountRef } from './files'
import { Proc, type Tracked, type Tracker } from './tracking'
import type { SpawnSettings } from './options'
import type { ProcessInfo } from './types'
import { closeSync } from 'node:fs'

/** The body of `spawn`, with the target's lock held. `onSpawned` counts each process started. */
export async function spawnLocked(
  tr: Tracker,
  s: SpawnSettings,
  targetId: string,
  mountPath: string | null,
  env: Readonly<Record<string, string>>,
  onSpawned: () => void,
): Promise<ProcessInfo> {
  const running = tr.refresh(targetId, true)
  if (running !== undefined) {
    const recorded = tr.files.mountOf(running)
    if (recorded !== null && recorded !== mountPath) {
      throw new SpawnError(
        `target ${targetId}: already running (PID ${running.pid}) at ${recorded}, not at ${mountPath}; kill it first to move it`,
        { targetId, reason: 'mount-path-differs' },
      )
    }
    tr.out.log.debug({ targetId, pid: running.pid }, 'already running')
    return tr.info(running)
  }
  const st = tr.files.native.state(targetId)
  if (st.verdict?.judgement === 'untrusted') {
    throw new SpawnError(`target ${targetId}: its PID file ${st.verdict.path} cannot be trusted (${st.verdict.reason}); not touching it`, {
      targetId,
      reason: 'untrusted',
    })
  }
  // Whatever a dead daemon or an unfinished spawn left of this target goes first.
  await undoUnfinished(tr, targetId, st, s.killTimeoutMs)
  const dead = tr.get(targetId)
  if (dead !== undefined) tr.forget(dead, true)

  const deadline = Date.now() + s.startTimeoutMs
  const left = () => Math.max(0, deadline - Date.now())
  // A daemon that mounts nothing (`mountPath` null, ready when alive) has no mount point to prepare.
  const existing =
    mountPath === null
      ? null
      : await withDeadline(
          native.prepareMountPoint(mountPath).catch((err: unknown) => {
            throw nativeError(err, { path: mountPath })
          }),
          s.startTimeoutMs,
          () => new SpawnError(`target ${targetId}: ${mountPath} did not answer within ${s.startTimeoutMs} ms`, { targetId, reason: 'timeout' }),
        )
  if (existing !== null) {
    throw new SpawnError(`target ${targetId}: ${mountPath} is already a mount point (${existing.fstype})`, { targetId, reason: 'mounted' })
  }

  const logFile = join(s.logDir, `${targetId}.log`)
  const args = [...s.args({ targetId, mountPath: mountPath ?? '' })]
  const fullEnv = { ...process.env, ...env }
  const file = resolveCommand(s.command, fullEnv.PATH)
  if (file === null) {
    throw new SpawnError(`target ${targetId}: ${s.command} could not be started: no such executable (PATH ${fullEnv.PATH ?? ''})`, {
      targetId,
      reason: 'spawn',
      logFile,
      cause: Object.assign(new Error(`spawn ${s.command} ENOENT`), { code: 'ENOENT' }),
    })
  }
  tr.out.log.info({ targetId, mountPath, command: s.command, args, env: redactEnv(env), logFile }, 'spawning daemon')
  const fd = openLog(logFile, targetId)
  let gated: Gated
  try {
    gated = await startGated(file, args, fullEnv, fd)
  } catch (err) {
    throw new SpawnError(`target ${targetId}: ${s.command} could not be started: ${(err as Error).message}`, {
      targetId,
      reason: 'spawn',
      logFile,
      logTail: tail(logFile),
      cause: err,
    })
  } finally {
    closeSync(fd)
  }
  onSpawned()
  const { child, pid } = gated
  /**
   * Kills the child's whole process group, however far the spawn got and without needing a descriptor:
   * through its handle when there is one, else by its group ID (the gate runs in a session of its own)
   * for as long as Node has not reaped it, so that the ID is still its own.
   */
  const killChild = async (proc: Proc | null): Promise<void> => {
    if (proc !== null) {
      try {
        await stopGroup(targetId, proc, true, 0, child)
        return
      } catch {}
    }
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {}
    }
  }
  const fail = async (proc: Proc | null, reason: 'exited' | 'timeout' | 'spawn', what: string, cause?: unknown): Promise<never> => {
    await killChild(proc)
    try {
      // The path was no mount point before the spawn: a mount there now is the daemon's.
      const m = mountPath === null ? null : safeMountAt(mountPath)
      if (m !== null) native.unmountIf(mountPath!, m.id, m.dev)
    } catch {}
    try {
      tr.files.native.deleteRecord(targetId)
    } catch {}
    // Its exit status as Node.js reaps it (killed above, it is gone or going): waited for with a deadline
    // that also holds the event loop (the child is unref'd).
    if (reason === 'exited') await childExitWithin(child, AFTER_SIGKILL_MS)
    const [code, signal] = reason === 'exited' ? [child.exitCode, child.signalCode] : [null, null]
    // The operating system's words in the message itself ("No space left on device"), not only in `cause`.
    const why = cause instanceof Error ? `: ${cause.message}` : ''
    throw new SpawnError(`target ${targetId}: ${s.command} (PID ${pid}) ${what}${why}`, {
      targetId,
      reason,
      exitCode: code,
      signal,
      logFile,
      logTail: tail(logFile),
      errno: (cause as { errno?: number } | undefined)?.errno,
      cause,
    })
  }
  let proc: Proc | null = null
  let t: Tracked
  try {
    const handle = native.openProcess(pid)
    if (handle === null) return await fail(null, 'exited', 'exited at once')
    proc = new Proc(pid, handle.startTicks, handle.startTimeMs, handle)
    // Its identity goes on disk before it may run: a manager killed from here on leaves a record that
    // the next manager finds.
    try {
      tr.files.native.writeRecord(targetId, { pid, startTicks: proc.startTicks, mountPath: mountPath ?? undefined })
    } catch (err) {
      return await fail(proc, 'spawn', 'could not be recorded', nativeError(err, { targetId }))
    }
    gated.open()

    let mount: MountRef | null = null
    if (s.ready === 'mount' && mountPath !== null) {
      const out = await awaitNative(handle.waitMount(mountPath, left()), left())
      if (out.outcome === 'exited') return await fail(proc, 'exited', `exited before ${mountPath} was mounted`)
      if (out.outcome === 'timeout') return await fail(proc, 'timeout', `did not mount ${mountPath} within ${s.startTimeoutMs} ms`)
      mount = toRef(out.mount)
    } else {
      if (await awaitNative(handle.waitExit(s.settleMs), s.settleMs)) return await fail(proc, 'exited', 'exited before it settled')
      mount = mountPath === null ? null : toRef(safeMountAt(mountPath))
    }
    t = {
      targetId,
      pid,
      proc,
      mountPath,
      mount,
      envKeys: Object.keys(env),
      loadedFromDisk: false,
      child,
      killing: false,
      exitReported: false,
      exited: false,
    }
    try {
      // The record again, now with the mount the daemon made, then the PID file: the spawn is complete.
      tr.files.writeFiles(t)
    } catch (err) {
      return await fail(proc, 'spawn', 'could not be recorded', err)
    }
  } catch (err) {
    if (err instanceof SpawnError) throw err
    // Anything else on the way (no descriptor for a handle or a wait thread): nothing may stay running.
    return fail(proc, 'spawn', 'could not be started', nativeError(err, { targetId }))
  }
  tr.set(t)
  const info = tr.info(t)
  tr.out.log.info({ targetId, pid, mountPath }, 'daemon ready')
  tr.out.events.emit('spawn', info)
  return info
}

function toRef(m: NativeMount | null | undefined): MountRef | null {
  return m == null ? null : mountRef({ mountId: m.id, mountDev: m.dev })
}

function safeMountAt(path: string): NativeMount | null {
  try {
    return native.mountAt(path)
  } catch {
    return null
  }
}

export { AFTER_SIGKILL_MS }
