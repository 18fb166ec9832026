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
