/**
 * The error classes of procslot. Each extends {@link ProcslotError}, has a literal `name` and a stable
 * `code`, names the path or target in its message, and keeps the underlying failure as `cause`. Errors
 * from the native core arrive as data — `kind`, `code`, `path`, `errno`, `pid`, `reason` set by the
 * binding — and {@link nativeError} picks the class from `kind`; no message is ever parsed.
 */

/**
 * The base class of every error procslot throws or rejects with (argument errors aside: those are
 * Node's `TypeError`/`RangeError` with `ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE` or
 * `ERR_OUT_OF_RANGE`). `code` is stable and machine-readable.
 *
 * @example
 * ```js
 * try { table.acquire() } catch (err) { if (err instanceof ProcslotError) console.error(err.code) }
 * ```
 */
export class ProcslotError extends Error {
  override readonly name: string = 'ProcslotError'
  /** Stable, machine-readable reason. */
  readonly code: string
  /**
   * The operating system's error number, negated as on Node's own system errors, when a system call
   * failed; `undefined` otherwise.
   */
  readonly errno: number | undefined

  constructor(message: string, options: { code: string; errno?: number; cause?: unknown }) {
    super(message, { cause: options.cause })
    this.code = options.code
    this.errno = options.errno
  }
}

/** What the binding sets on a native error (see `src/error.rs`). */
interface NativeErrorData {
  readonly kind?: 'slot-file' | 'pid-file' | 'process' | 'invalid-argument' | 'invalid-target-id'
  readonly code?: string
  readonly path?: string
  readonly errno?: number
  readonly pid?: number
  readonly reason?: string
}

/**
 * An error about one file or directory, named by `path`: what {@link SlotFileError} and {@link PidFileError}
 * share. Not exported by the package: callers catch the concrete classes, or {@link ProcslotError}.
 */
abstract class FileError<Code extends string> extends ProcslotError {
  /** Stable, machine-readable reason. */
  declare readonly code: Code
  /** The file or directory: the slot file; the PID directory or a PID file. */
  readonly path: string

  constructor(message: string, options: { code: Code; path: string; errno?: number; cause?: unknown }) {
    super(message, options)
    this.path = options.path
  }
}

/** Codes a {@link SlotFileError} can carry. Operating-system failures keep their errno name. */
export type SlotFileErrorCode =
  | 'ESYMLINK'
  | 'ENOTREG'
  | 'EFOREIGN'
  | 'EBADSIZE'
  | 'ETOOLARGE'
  | 'ESHRUNK'
  | 'EHARDLINK'
  | 'ETIMEDOUT'
  | 'EUNSAFE'
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
 * | `EHARDLINK` | the file has more than one hard link |
 * | `ETIMEDOUT` | another process held the file's growth lock past `timeoutMs` |
 * | `EUNSAFE` | the default file's per-user directory is not this user's, or others can write to it |
 * | `ECLOSED` | the table was closed |
 * | `ENOENT`, `EACCES`, `EROFS`, ... | the operating system's error (missing directory, no permission, read-only filesystem) |
 */
export class SlotFileError extends FileError<SlotFileErrorCode> {
  override readonly name = 'SlotFileError' as const
}

/** Every slot of the file is held by a live process (code `ESLOTSFULL`). */
export class SlotsExhaustedError extends ProcslotError {
  override readonly name = 'SlotsExhaustedError' as const
  /** Always `ESLOTSFULL`. */
  declare readonly code: 'ESLOTSFULL'
  /** The slot file's path. */
  readonly path: string
  /** How many slots the file has, all held. */
  readonly slots: number

  constructor(path: string, slots: number) {
    super(
      `slot file ${path}: all ${slots} slots are held by live processes; ` +
        'grow the table with SlotTable.open(path, { slots }) or stop a holder',
      { code: 'ESLOTSFULL' },
    )
    this.path = path
    this.slots = slots
  }
}

/**
 * Turns an error thrown by the native core into the matching class, `path` naming the slot file when the
 * error does not (see {@link nativeError}).
 * @internal
 */
export function slotFileError(err: unknown, path: string): Error {
  return nativeError(err, { path })
}

/**
 * A target ID that cannot name a PID file (code `EINVALIDTARGET`). Target IDs are 1 to 200 characters of
 * `[A-Za-z0-9._-]`, not starting with `.`; they are checked before any path is built, so `../x`, `a/b`,
 * the empty string or a NUL never reach the filesystem.
 */
export class InvalidTargetIdError extends ProcslotError {
  override readonly name = 'InvalidTargetIdError' as const
  /** Always `EINVALIDTARGET`. */
  declare readonly code: 'EINVALIDTARGET'
  /** The rejected target ID, as given. */
  readonly targetId: unknown

  constructor(targetId: unknown, reason: string, options?: { cause?: unknown }) {
    super(`invalid target ID ${JSON.stringify(targetId) ?? String(targetId)}: ${reason}`, {
      code: 'EINVALIDTARGET',
      cause: options?.cause,
    })
    this.targetId = targetId
  }
}

/** Codes a {@link PidFileError} can carry. Operating-system failures keep their errno name. */
export type PidFileErrorCode = 'EUNSAFE' | 'ENOTDIR' | 'EACCES' | 'EPERM' | 'EROFS' | 'ENOSPC' | (string & {})

/**
 * A PID directory or PID file could not be used.
 *
 * | code | meaning |
 * | --- | --- |
 * | `EUNSAFE` | the PID directory is world-writable without the sticky bit: anyone could replace its files |
 * | `ENOTDIR` | the PID directory's path is not a directory (a file, a device) |
 * | `EACCES`, `EROFS`, ... | the operating system's error |
 */
export class PidFileError extends FileError<PidFileErrorCode> {
  override readonly name = 'PidFileError' as const
}

/**
 * Signalling or waiting for a process failed: `code` is the operating system's (`EPERM`: not ours to
 * signal), or `ESURVIVED` when a process outlived SIGKILL past the deadline.
 */
export class ProcessError extends ProcslotError {
  override readonly name = 'ProcessError' as const
  /** The process. */
  readonly pid: number

  constructor(message: string, options: { code: string; pid: number; errno?: number; cause?: unknown }) {
    super(message, options)
    this.pid = options.pid
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
 * | `log` | the log file was refused (a symbolic link, not a regular file, not this user's) or could not be opened (the message names the operating system's error, `errno` carries it) |
 */
export class SpawnError extends ProcslotError {
  override readonly name = 'SpawnError' as const
  /** Always `ESPAWN`. */
  declare readonly code: 'ESPAWN'
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
      errno?: number
      cause?: unknown
    },
  ) {
    super(options.logTail ? `${message}\n--- end of the log ---\n${options.logTail}` : message, {
      code: 'ESPAWN',
      errno: options.errno,
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
 * Turns an error from the native core into the matching class, by the `kind` the binding set on it:
 * `slot-file` → {@link SlotFileError}, `pid-file` → {@link PidFileError}, `process` → {@link ProcessError},
 * `invalid-target-id` → {@link InvalidTargetIdError}, `invalid-argument` → a `RangeError` with code
 * `ERR_OUT_OF_RANGE`. `context` fills in what the error does not say itself (the path a table was opened
 * with, the target ID as the caller gave it). Anything else is returned as it is.
 * @internal
 */
export function nativeError(err: unknown, context: { path?: string; targetId?: unknown } = {}): Error {
  if (!(err instanceof Error)) return new Error(String(err))
  if (err instanceof ProcslotError) return err
  const data = err as Error & NativeErrorData
  const code = data.code ?? 'EIO'
  const errno = data.errno
  switch (data.kind) {
    case 'slot-file':
      return new SlotFileError(err.message, { code, path: data.path ?? context.path ?? '', errno, cause: err })
    case 'pid-file':
      return new PidFileError(err.message, { code, path: data.path ?? context.path ?? '', errno, cause: err })
    case 'process':
      return new ProcessError(err.message, { code, pid: data.pid ?? 0, errno, cause: err })
    case 'invalid-target-id':
      return new InvalidTargetIdError(context.targetId, data.reason ?? err.message, { cause: err })
    case 'invalid-argument':
      return Object.assign(new RangeError(err.message, { cause: err }), { code: 'ERR_OUT_OF_RANGE' })
    default:
      return err
  }
}

/**
 * A target stayed busy — a `spawn` or `kill` of it running, maybe in another process sharing the PID
 * directory — for longer than this call would wait (code `ELOCKED`).
 */
export class TargetLockedError extends ProcslotError {
  override readonly name = 'TargetLockedError' as const
  /** Always `ELOCKED`. */
  declare readonly code: 'ELOCKED'
  /** The busy target. */
  readonly targetId: string

  constructor(targetId: string, why: string) {
    super(`target ${targetId}: ${why}`, { code: 'ELOCKED' })
    this.targetId = targetId
  }
}

/** Codes an {@link EtcdError} can carry. */
export type EtcdErrorCode = 'EETCDUNAVAILABLE' | 'ELEASELOST' | 'ECLOSED' | 'EETCDCLIENT' | 'EETCD'

/**
 * Slots on etcd ({@link EtcdSlotTable}) could not be used.
 *
 * | code | meaning |
 * | --- | --- |
 * | `EETCDUNAVAILABLE` | no endpoint answered within the call's deadline (down, unreachable, no quorum) |
 * | `ELEASELOST` | the holder's lease ran out by its own clock, or etcd no longer knows it: stop using the ID |
 * | `ECLOSED` | the table was closed |
 * | `EETCDCLIENT` | the `etcd3` package (an optional peer dependency) is not installed |
 * | `EETCD` | etcd refused the request (`cause` says why: permissions, authentication, ...) |
 */
export class EtcdError extends ProcslotError {
  override readonly name = 'EtcdError' as const
  /** Stable, machine-readable reason. */
  declare readonly code: EtcdErrorCode
  /** The key prefix of the table. */
  readonly prefix: string
  /** The etcd endpoints the table talks to. */
  readonly endpoints: readonly string[]
  /** The slot concerned (for `ELEASELOST`: the slot that was lost), or `-1`. */
  readonly slot: number

  constructor(
    message: string,
    options: { code: EtcdErrorCode; prefix: string; endpoints: readonly string[]; slot?: number; cause?: unknown },
  ) {
    super(message, options)
    this.prefix = options.prefix
    this.endpoints = options.endpoints
    this.slot = options.slot ?? -1
  }
}
