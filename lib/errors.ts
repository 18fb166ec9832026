/**
 * The error classes of procslot. Each has a literal `name` and a stable `code`, names the path or target
 * in its message, and keeps the underlying failure as `cause`.
 */

/** Codes a {@link SlotFileError} can carry. Operating-system failures keep their errno name. */
export type SlotFileErrorCode =
  | 'ESYMLINK'
  | 'ENOTREG'
  | 'EFOREIGN'
  | 'EBADSIZE'
  | 'ETOOLARGE'
  | 'ESHRUNK'
  | 'ECLOSED'
  | 'ENOENT'
  | 'EACCES'
  | 'EPERM'
  | 'EROFS'
  | 'ENOSPC'
  | (string & {})

/**
 * A slot file was refused or could not be used. Nothing in the file was changed.
 *
 * | code | meaning |
 * | --- | --- |
 * | `ESYMLINK` | the path is a symbolic link (never followed) |
 * | `ENOTREG` | not a regular file (a directory, a FIFO, a device) |
 * | `EFOREIGN` | owned by another user (see `allowForeignOwner`) |
 * | `EBADSIZE` | size not a multiple of 8: not a slot file |
 * | `ETOOLARGE` | over 1 MiB: not a slot file |
 * | `ESHRUNK` | the file shrank while open (slot files only grow) |
 * | `ECLOSED` | the table was closed |
 * | `ENOENT`, `EACCES`, `EROFS`, ... | the operating system's error (missing directory, no permission, read-only filesystem) |
 */
export class SlotFileError extends Error {
  override readonly name = 'SlotFileError' as const
  /** Stable, machine-readable reason. */
  readonly code: SlotFileErrorCode
  /** The slot file's path. */
  readonly path: string

  constructor(message: string, options: { code: SlotFileErrorCode; path: string; cause?: unknown }) {
    super(message, { cause: options.cause })
    this.code = options.code
    this.path = options.path
  }
}

/** Every slot of the file is held by a live process (code `ESLOTSFULL`). */
export class SlotsExhaustedError extends Error {
  override readonly name = 'SlotsExhaustedError' as const
  /** Always `ESLOTSFULL`. */
  readonly code = 'ESLOTSFULL' as const
  /** The slot file's path. */
  readonly path: string
  /** How many slots the file has, all held. */
  readonly slots: number

  constructor(path: string, slots: number) {
    super(
      `slot file ${path}: all ${slots} slots are held by live processes; ` +
        'grow the table with SlotTable.open(path, { slots }) or stop a holder',
    )
    this.path = path
    this.slots = slots
  }
}

/**
 * Turns an error thrown by the native core into the matching class. The core's stable code arrives as
 * `error.code`; its message already names the path.
 * @internal
 */
export function slotFileError(err: unknown, path: string): Error {
  if (err instanceof SlotFileError || err instanceof SlotsExhaustedError) return err
  const code = (err as { code?: unknown } | null)?.code
  if (err instanceof Error && typeof code === 'string') {
    return new SlotFileError(err.message, { code, path, cause: err })
  }
  return err instanceof Error ? err : new Error(String(err))
}

/**
 * A target ID that cannot name a PID file (code `EINVALIDTARGET`). Target IDs are 1 to 200 characters of
 * `[A-Za-z0-9._-]`, not starting with `.`; they are checked before any path is built, so `../x`, `a/b`,
 * the empty string or a NUL never reach the filesystem.
 */
export class InvalidTargetIdError extends TypeError {
  override readonly name = 'InvalidTargetIdError' as const
  /** Always `EINVALIDTARGET`. */
  readonly code = 'EINVALIDTARGET' as const
  /** The rejected target ID, as given. */
  readonly targetId: unknown

  constructor(targetId: unknown, reason: string, options?: { cause?: unknown }) {
    super(`invalid target ID ${JSON.stringify(targetId) ?? String(targetId)}: ${reason}`, options)
    this.targetId = targetId
  }
}

/** Codes a {@link PidFileError} can carry. Operating-system failures keep their errno name. */
export type PidFileErrorCode = 'EUNSAFE' | 'ENOTDIR' | 'EEXIST' | 'EACCES' | 'EPERM' | 'EROFS' | 'ENOSPC' | (string & {})

/**
 * A PID directory or PID file could not be used.
 *
 * | code | meaning |
 * | --- | --- |
 * | `EUNSAFE` | the PID directory is world-writable without the sticky bit: anyone could replace its files |
 * | `ENOTDIR`, `EEXIST` | the PID directory's path is not a directory |
 * | `EACCES`, `EROFS`, ... | the operating system's error |
 */
export class PidFileError extends Error {
  override readonly name = 'PidFileError' as const
  /** Stable, machine-readable reason. */
  readonly code: PidFileErrorCode
  /** The directory or file. */
  readonly path: string

  constructor(message: string, options: { code: PidFileErrorCode; path: string; cause?: unknown }) {
    super(message, { cause: options.cause })
    this.code = options.code
    this.path = options.path
  }
}

/** Why a {@link SpawnError} was thrown. */
export type SpawnFailure = 'exited' | 'timeout' | 'spawn' | 'mounted' | 'locked' | 'mount-path-differs' | 'untrusted' | 'log'

/**
 * A daemon could not be started (code `ESPAWN`). Nothing stays behind: its process group was killed, it
 * is not tracked and it has no PID file. `logTail` holds the end of its log, which usually says why.
 *
 * | `reason` | meaning |
 * | --- | --- |
 * | `exited` | the process exited before it was ready (`exitCode` / `signal` say how) |
 * | `timeout` | not ready (no mount) within `startTimeoutMs`; the process group was killed |
 * | `spawn` | the command could not be started at all (`cause` is the operating system's error) |
 * | `mounted` | `mountPath` is already a mount point that is not the one a dead daemon of this target made |
 * | `locked` | another call, maybe in another process, kept the target busy past `startTimeoutMs` |
 * | `mount-path-differs` | the target already runs, mounted at another path (kill it first to move it) |
 * | `untrusted` | the target's PID file cannot be trusted (another owner, writable by others): left alone |
 * | `log` | the log file was refused: a symbolic link, not a regular file, or not this user's |
 */
export class SpawnError extends Error {
  override readonly name = 'SpawnError' as const
  /** Always `ESPAWN`. */
  readonly code = 'ESPAWN' as const
  /** The target whose daemon failed. */
  readonly targetId: string
  /** What went wrong. */
  readonly reason: SpawnFailure
  /** The process's exit code, when it exited by itself. */
  readonly exitCode: number | null
  /** The signal that ended the process, if one did. */
  readonly signal: NodeJS.Signals | null
  /** The last lines of the daemon's log (at most 4 KiB). */
  readonly logTail: string
  /** The daemon's log file. */
  readonly logFile: string | null

  constructor(
    message: string,
    options: {
      targetId: string
      reason: SpawnFailure
      exitCode?: number | null
      signal?: NodeJS.Signals | null
      logTail?: string
      logFile?: string | null
      cause?: unknown
    },
  ) {
    super(options.logTail ? `${message}\n--- end of the log ---\n${options.logTail}` : message, {
      cause: options.cause,
    })
    this.targetId = options.targetId
    this.reason = options.reason
    this.exitCode = options.exitCode ?? null
    this.signal = options.signal ?? null
    this.logTail = options.logTail ?? ''
    this.logFile = options.logFile ?? null
  }
}

/**
 * Turns an error from the native PID-file and process code into the matching class. Promise rejections
 * from native threads carry their code as a `[CODE] ` prefix of the message (a rejection cannot set
 * `code`); it is moved back.
 * @internal
 */
export function nativeError(err: unknown, context: { path?: string; targetId?: unknown } = {}): Error {
  if (!(err instanceof Error)) return new Error(String(err))
  let code = (err as { code?: unknown }).code
  let message = err.message
  const prefixed = /^\[([A-Z0-9_]+)\] ([\s\S]*)$/.exec(message)
  if (prefixed) {
    code = prefixed[1]
    message = prefixed[2]!
  }
  if (code === 'EINVALIDTARGET') {
    const reason = message.replace(/^invalid target ID .*?: (?=it )/, '')
    return new InvalidTargetIdError(context.targetId, reason, { cause: err })
  }
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return err
  if (message.startsWith('process ')) {
    // Signalling or waiting for a process failed (EPERM and the like): a plain error with the errno code.
    return Object.assign(new Error(message, { cause: err }), { code })
  }
  // "<path>: <reason>", the path of the directory or file.
  const path = context.path ?? /^(.*?): /.exec(message)?.[1] ?? ''
  return new PidFileError(message, { code, path, cause: err })
}

/**
 * A target stayed busy — a `spawn` or `kill` of it running, maybe in another process sharing the PID
 * directory — for longer than this call would wait (code `ELOCKED`).
 */
export class TargetLockedError extends Error {
  override readonly name = 'TargetLockedError' as const
  /** Always `ELOCKED`. */
  readonly code = 'ELOCKED' as const
  /** The busy target. */
  readonly targetId: string

  constructor(targetId: string, why: string) {
    super(`target ${targetId}: ${why}`)
    this.targetId = targetId
  }
}
