/**
 * Spawn to ready, as named steps: the target's state on disk first ({@link alreadyRunning} returns a
 * running daemon, {@link clearDead} cleans what a dead one or an unfinished spawn left), the mount point
 * prepared off the JavaScript thread ({@link prepareMountPoint}), the daemon started behind a gate
 * ({@link start}) until its identity is recorded, then readiness waited for on the event itself and the
 * record completed with the mount it made, the PID file written ({@link untilReady}). A step that fails
 * after the start kills the daemon's whole group and leaves nothing behind ({@link Launch.fail}).
 * Internal to the manager (not exported by the package).
 */
import { closeSync } from 'node:fs'
import { join } from 'node:path'

import { SpawnError, nativeError } from '../errors'
import { native, type NativeMount, type NativeProcess } from '../native'
import { redactEnv, openLog, resolveCommand, startGated, tail, type Gated } from './daemon-io'
import { AFTER_SIGKILL_MS, childExitWithin, clearDead, stopGroup } from './kill'
import type { SpawnSettings } from './options'
import { awaitNative, withDeadline } from './queue'
import { Proc, mountRef, type MountRef, type Tracked } from './proc'
import type { Tracker } from './tracking'
import type { ProcessInfo } from './types'

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
  if (running !== undefined) return alreadyRunning(tr, running, mountPath)
  const st = tr.files.native.state(targetId)
  if (st.verdict?.judgement === 'untrusted') {
    throw new SpawnError(`target ${targetId}: its PID file ${st.verdict.path} cannot be trusted (${st.verdict.reason}); not touching it`, {
      targetId,
      reason: 'untrusted',
    })
  }
  // Whatever a dead daemon or an unfinished spawn left of this target goes first.
  await clearDead(tr, targetId, st, s.killTimeoutMs)

  const deadline = Date.now() + s.startTimeoutMs
  await prepareMountPoint(s, targetId, mountPath)
  const launch = await start(tr, s, targetId, mountPath, env)
  onSpawned()
  const t = await untilReady(launch, env, deadline)
  tr.set(t)
  const info = tr.info(t)
  tr.out.log.info({ targetId, pid: t.pid, mountPath }, 'daemon ready')
  tr.out.events.emit('spawn', info)
  return info
}

/** The target's running daemon, for a spawn at the path it runs at. */
function alreadyRunning(tr: Tracker, running: Tracked, mountPath: string | null): ProcessInfo {
  const { targetId } = running
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

/**
 * Makes the mount point, off the JavaScript thread (a hung FUSE mount there makes it time out); refuses a
 * path that is already a mount point. A daemon that mounts nothing (`mountPath` null, ready when alive)
 * has none to prepare.
 */
async function prepareMountPoint(s: SpawnSettings, targetId: string, mountPath: string | null): Promise<void> {
  if (mountPath === null) return
  const existing = await withDeadline(
    native.prepareMountPoint(mountPath).catch((err: unknown) => {
      throw nativeError(err, { path: mountPath })
    }),
    s.startTimeoutMs,
    () => new SpawnError(`target ${targetId}: ${mountPath} did not answer within ${s.startTimeoutMs} ms`, { targetId, reason: 'timeout' }),
  )
  if (existing !== null) {
    throw new SpawnError(`target ${targetId}: ${mountPath} is already a mount point (${existing.fstype})`, { targetId, reason: 'mounted' })
  }
}

/** Starts the daemon behind its gate, its output appended to its log file. */
async function start(
  tr: Tracker,
  s: SpawnSettings,
  targetId: string,
  mountPath: string | null,
  env: Readonly<Record<string, string>>,
): Promise<Launch> {
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
  try {
    return new Launch(tr, s, targetId, mountPath, logFile, await startGated(file, args, fullEnv, fd))
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
}

/**
 * From the start to ready: the daemon's identity recorded before it may run, the gate opened, readiness
 * waited for (its mount, or `settleMs` alive), then the record completed with the mount it made and the
 * PID file written. Its entry, not yet tracked.
 * @throws {SpawnError} after killing it, when it exited, was not ready by `deadline` or could not be
 * recorded.
 */
async function untilReady(l: Launch, env: Readonly<Record<string, string>>, deadline: number): Promise<Tracked> {
  const { tr, targetId, mountPath, pid } = l
  let proc: Proc | null = null
  try {
    const handle = native.openProcess(pid)
    if (handle === null) return await l.fail(null, 'exited', 'exited at once')
    proc = new Proc(pid, handle.startTicks, handle.startTimeMs, handle)
    // Its identity goes on disk before it may run: a manager killed from here on leaves a record that
    // the next manager finds.
    try {
      tr.files.native.writeRecord(targetId, { pid, startTicks: proc.startTicks, mountPath: mountPath ?? undefined })
    } catch (err) {
      return await l.fail(proc, 'spawn', 'could not be recorded', nativeError(err, { targetId }))
    }
    l.gated.open()
    const mount = await ready(l, proc, handle, deadline)
    const t: Tracked = {
      targetId,
      pid,
      proc,
      mountPath,
      mount,
      envKeys: Object.keys(env),
      loadedFromDisk: false,
      child: l.gated.child,
      killing: false,
      exitReported: false,
      exited: false,
    }
    try {
      // The record again, now with the mount the daemon made, then the PID file: the spawn is complete.
      tr.files.writeFiles(t)
    } catch (err) {
      return await l.fail(proc, 'spawn', 'could not be recorded', err)
    }
    return t
  } catch (err) {
    if (err instanceof SpawnError) throw err
    // Anything else on the way (no descriptor for a handle or a wait thread): nothing may stay running.
    return l.fail(proc, 'spawn', 'could not be started', nativeError(err, { targetId }))
  }
}

/** Waits until the daemon is ready: its mount (`ready: 'mount'`), or `settleMs` alive. The mount it made. */
async function ready(l: Launch, proc: Proc, handle: NativeProcess, deadline: number): Promise<MountRef | null> {
  const { s, mountPath } = l
  const left = () => Math.max(0, deadline - Date.now())
  if (s.ready === 'mount' && mountPath !== null) {
    const out = await awaitNative(handle.waitMount(mountPath, left()), left())
    if (out.outcome === 'exited') return l.fail(proc, 'exited', `exited before ${mountPath} was mounted`)
    if (out.outcome === 'timeout') return l.fail(proc, 'timeout', `did not mount ${mountPath} within ${s.startTimeoutMs} ms`)
    return toRef(out.mount)
  }
  if (await awaitNative(handle.waitExit(s.settleMs), s.settleMs)) return l.fail(proc, 'exited', 'exited before it settled')
  return mountPath === null ? null : toRef(safeMountAt(mountPath))
}

/** A daemon started behind its gate, until it is ready — or killed, with all it left, by {@link fail}. */
class Launch {
  constructor(
    readonly tr: Tracker,
    readonly s: SpawnSettings,
    readonly targetId: string,
    readonly mountPath: string | null,
    readonly logFile: string,
    readonly gated: Gated,
  ) {}

  /** The daemon's PID (the gate `exec`s it: the same process). */
  get pid(): number {
    return this.gated.pid
  }

  /**
   * Kills the daemon's whole group (see {@link kill}), unmounts what it mounted, deletes its record, and
   * throws the `SpawnError` saying why, with its exit status when it `exited` and the end of its log.
   */
  async fail(proc: Proc | null, reason: 'exited' | 'timeout' | 'spawn', what: string, cause?: unknown): Promise<never> {
    const { tr, s, targetId, mountPath, logFile, pid } = this
    const child = this.gated.child
    await this.kill(proc)
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

  /**
   * Kills the daemon's whole process group, however far the spawn got and without needing a descriptor:
   * through its handle when there is one, else by its group ID (the gate runs in a session of its own)
   * for as long as Node has not reaped it, so that the ID is still its own.
   */
  async kill(proc: Proc | null): Promise<void> {
    const child = this.gated.child
    if (proc !== null) {
      try {
        await stopGroup(this.targetId, proc, true, 0, child)
        return
      } catch {}
    }
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-this.pid, 'SIGKILL')
      } catch {}
    }
  }
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
