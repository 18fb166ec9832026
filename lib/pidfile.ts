import { InvalidTargetIdError, nativeError } from './errors'
import { native, type NativePidFileEntry, type NativePidFileStore } from './native'
import { checkInteger, checkString } from './validate'

/** One PID file as found on disk. */
export interface PidFileInfo {
  /** The target ID: the file name without `.pid`. */
  readonly targetId: string
  /** The PID it names, or `null` when the file is invalid or untrusted. */
  readonly pid: number | null
  /** The file's path. */
  readonly path: string
  /** When it was last written. */
  readonly mtime: Date
  /**
   * `valid`: a PID in a trusted file. `invalid`: the content is not a PID between 2 and the system's
   * limit (never acted on). `untrusted`: owned by another user, writable by others, a symbolic link or
   * not a regular file (never adopted, signalled or deleted).
   */
  readonly status: 'valid' | 'invalid' | 'untrusted'
  /** Why it is invalid or untrusted. */
  readonly reason: string | null
}

/** @internal */
export function toPidFileInfo(e: NativePidFileEntry): PidFileInfo {
  return {
    targetId: e.targetId,
    pid: e.pid ?? null,
    path: e.path,
    mtime: new Date(e.mtimeMs),
    status: e.status as PidFileInfo['status'],
    reason: e.reason ?? null,
  }
}

/**
 * Throws {@link InvalidTargetIdError} unless `targetId` is 1 to 200 characters of `[A-Za-z0-9._-]`, not
 * starting with `.` — the Rust core's rule, asked of the core (it lives there once).
 * @internal
 */
export function checkTargetId(targetId: unknown): asserts targetId is string {
  if (typeof targetId !== 'string') {
    throw new InvalidTargetIdError(targetId, `it is a ${targetId === null ? 'null' : typeof targetId}, not a string`)
  }
  try {
    native.validateTargetId(targetId)
  } catch (err) {
    throw nativeError(err, { targetId })
  }
}

/**
 * A directory of standard Unix PID files, one per target: `<dir>/<targetId>.pid` holds the decimal PID
 * and a newline, readable by `cat`, `ps -p $(cat f)` and `pkill -F`, writable by hand.
 *
 * Writes are atomic (a temporary file in the same directory, then renamed; mode 0644). Reads
 * never throw for bad content: a file that does not hold a plain PID between 2 and the system's limit
 * reads as `null`. Target IDs are checked before any path is built ({@link InvalidTargetIdError}).
 *
 * @example
 * ```js
 * const { PidFileStore } = require('procslot')
 * const store = new PidFileStore('/run/myapp')
 * store.write('target-123', process.pid)
 * store.read('target-123') // => process.pid
 * ```
 */
export class PidFileStore {
  readonly #native: NativePidFileStore

  /**
   * Opens the PID directory `dir`, creating it (recursively, mode 0755) if needed.
   * @throws {PidFileError} `EUNSAFE` when `dir` is world-writable without the sticky bit; `ENOTDIR` when
   * it is not a directory; the operating system's error code otherwise.
   */
  constructor(dir: string) {
    checkString('dir', dir)
    try {
      this.#native = native.NativePidFileStore.open(dir)
    } catch (err) {
      throw nativeError(err, { path: dir })
    }
  }

  /** The directory, as given. */
  get dir(): string {
    return this.#native.dir
  }

  /**
   * The path of the target's PID file, `<dir>/<targetId>.pid`.
   * @throws {InvalidTargetIdError}
   */
  pathFor(targetId: string): string {
    checkTargetId(targetId)
    return this.#call(() => this.#native.pathFor(targetId), targetId)
  }

  /**
   * Writes `pid` to the target's PID file, atomically.
   * @throws {InvalidTargetIdError}
   * @throws {RangeError} (`ERR_OUT_OF_RANGE`) a PID that is never a daemon's (not an integer, <= 1, above
   * the system's limit).
   * @throws {PidFileError} the operating system's error.
   */
  write(targetId: string, pid: number): void {
    checkTargetId(targetId)
    checkInteger('pid', pid, 2, 0xffffffff)
    this.#call(() => this.#native.write(targetId, pid), targetId)
  }

  /**
   * The PID in the target's file, or `null` when there is no file or it is invalid or untrusted.
   * @throws {InvalidTargetIdError}
   */
  read(targetId: string): number | null {
    checkTargetId(targetId)
    return this.#call(() => this.#native.read(targetId), targetId) ?? null
  }

  /**
   * The target's PID file with its status and the reason it is invalid or untrusted, or `null` when there
   * is none.
   * @throws {InvalidTargetIdError}
   */
  inspect(targetId: string): PidFileInfo | null {
    checkTargetId(targetId)
    const e = this.#call(() => this.#native.inspect(targetId), targetId)
    return e ? toPidFileInfo(e) : null
  }

  /**
   * Deletes the target's PID file, and the mount path a manager recorded beside it
   * (`.<targetId>.mount`); whether there was a PID file.
   * @throws {InvalidTargetIdError}
   */
  delete(targetId: string): boolean {
    checkTargetId(targetId)
    return this.#call(() => this.#native.delete(targetId), targetId)
  }

  /** Every PID file in the directory, sorted by target ID (other files are ignored). */
  list(): PidFileInfo[] {
    return this.#call(() => this.#native.list(), undefined).map(toPidFileInfo)
  }

  /** @internal The native store, shared with the manager. */
  get native(): NativePidFileStore {
    return this.#native
  }

  #call<T>(fn: () => T, targetId: unknown): T {
    try {
      return fn()
    } catch (err) {
      throw nativeError(err, { targetId })
    }
  }
}
