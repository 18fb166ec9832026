/**
 * A daemon's input and output: its log file (opened safely), the environment as the log shows it
 * (secrets redacted), the tail of its log for errors, and starting it behind a gate so that its identity
 * is on disk before it runs a single instruction of its own.
 * Internal to the manager (not exported by the package).
 */
import type * as ChildProcesses from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, closeSync, constants as fsConstants, fchmodSync, fstatSync, openSync, readSync } from 'node:fs'
import { delimiter, isAbsolute, join, resolve } from 'node:path'
import type { Writable } from 'node:stream'

import { SpawnError } from '../errors'

const SECRET = /KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL/i

/** Environment values whose names look like credentials, replaced by `[redacted]`. */
export function redactEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(env)) out[k] = SECRET.test(k) ? '[redacted]' : v
  return out
}

/**
 * Opens `<logDir>/<targetId>.log` for appending: never through a symbolic link (`O_NOFOLLOW`), never a
 * FIFO or device, only a file of this user with one link; created with mode 0600 (an older, looser file
 * of ours is tightened to 0600).
 * @throws {SpawnError} reason `log`.
 */
export function openLog(logFile: string, targetId: string): number {
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fsConstants
  let fd: number
  try {
    fd = openSync(logFile, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why =
      e.code === 'ELOOP'
        ? `refusing the log file ${logFile}: it is a symbolic link (never followed)`
        : `could not open the log file ${logFile}: ${osWords(e)}`
    throw new SpawnError(`target ${targetId}: ${why}`, {
      targetId,
      reason: 'log',
      logFile,
      errno: e.errno,
      cause: err,
    })
  }
  const st = fstatSync(fd)
  const euid = process.geteuid?.() ?? 0
  const why = !st.isFile()
    ? 'not a regular file'
    : st.uid !== euid
      ? `owned by uid ${st.uid}, not by this user (uid ${euid})`
      : st.nlink !== 1
        ? `it has ${st.nlink} hard links`
        : null
  if (why !== null) {
    closeSync(fd)
    throw new SpawnError(`target ${targetId}: refusing the log file ${logFile}: ${why}`, { targetId, reason: 'log', logFile })
  }
  if ((st.mode & 0o077) !== 0) fchmodSync(fd, 0o600)
  return fd
}

/**
 * What the operating system said, in its words: Node's `ENOSPC: no space left on device, open '…'`
 * becomes `No space left on device`.
 */
function osWords(err: NodeJS.ErrnoException): string {
  const words = /^[A-Z0-9]+: ([^,]+)/.exec(err.message)?.[1]
  return words === undefined ? err.message : words[0]!.toUpperCase() + words.slice(1)
}

/** The last 4 KiB of a log file, from a line start. */
export function tail(path: string): string {
  let fd: number | undefined
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK)
    const size = fstatSync(fd).size
    const len = Math.min(size, 4096)
    const buf = Buffer.alloc(len)
    readSync(fd, buf, 0, len, size - len)
    let text = buf.toString('utf8')
    if (len < size) text = text.slice(text.indexOf('\n') + 1)
    return text.trimEnd()
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/**
 * The executable `command` names: itself when it holds a `/`, else the first executable of that name on
 * `PATH`. `null` when there is none.
 */
export function resolveCommand(command: string, path: string | undefined): string | null {
  const candidates = command.includes('/')
    ? [resolve(command)]
    : (path ?? '').split(delimiter).filter((dir) => isAbsolute(dir)).map((dir) => join(dir, command))
  for (const file of candidates) {
    try {
      accessSync(file, fsConstants.X_OK)
      return file
    } catch {}
  }
  return null
}

/**
 * The gate every daemon starts behind: a shell that waits for one line on descriptor 3 and then becomes
 * the daemon (`exec`: same PID, same start time). The manager writes the line once the daemon's identity
 * is recorded; if the manager dies first, the line never comes, the read ends, and the gate exits without
 * ever running the daemon.
 */
const GATE = 'IFS= read -r go <&3 || exit 125; exec "$@" 3<&-'

/** A daemon started behind the gate: its process, and `open()` to let it run. */
export interface Gated {
  readonly child: ChildProcess
  readonly pid: number
  /** Lets the daemon run (it `exec`s at once). */
  open(): void
}

/**
 * Starts `file args` detached in its own process group, with its output on `logFd` and `env`, held at
 * the gate until `open()`.
 * @throws the `spawn` error of `/bin/sh` (the gate itself could not be started).
 */
export async function startGated(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  logFd: number,
): Promise<Gated> {
  // node:child_process (with streams, net and dgram: about 4 ms in a fresh process) loads with the first
  // spawn, not with the manager: one that only adopts, inspects or kills its daemons never needs it.
  const { spawn } = require('node:child_process') as typeof ChildProcesses
  const child = spawn('/bin/sh', ['-c', GATE, 'procslot-gate', file, ...args], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env,
  })
  child.unref()
  await once(child, 'spawn')
  const gate = child.stdio[3] as Writable
  // The gate's end of the socket must not keep this process's event loop alive.
  ;(gate as unknown as { unref?: () => void }).unref?.()
  gate.on('error', () => {})
  return {
    child,
    pid: child.pid!,
    open: () => gate.end('go\n'),
  }
}
