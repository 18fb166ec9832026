/**
 * Worker slots: small, unique, reusable IDs (0..N-1) for the processes of a fleet, from a memory-mapped
 * slot file with one lock lease per slot — the typed client, `SlotTable`. The plain helpers
 * (`getProcessId`, `releaseProcessId`) are in `native.ts`, with the binding.
 */
import type * as Errors from './errors.js'
import {
  DEFAULT_SLOTS_FILE,
  MAX_SLOTS,
  forgetProcessIds,
  inPrivateDir,
  native,
  warnFuse,
  warnReplaced,
  type NativeSlotTable,
  type NativeWaited,
  type NativeWaiter,
} from './native.js'
import { checkBoolean, checkInteger, checkMs, checkSignal, checkString, invalidValue } from './validate.js'

/** The error classes, loaded when the first error is made. */
const errors = (): typeof Errors => require('./errors.js') as typeof Errors

/** One slot of a {@link SlotTable.snapshot}. */
export interface SlotInfo {
  /** The slot's index, 0-based. */
  readonly slot: number
  /** The holder's PID as its word records it (in the holder's own PID namespace); `0` when free. */
  readonly pid: number
  /** Whether the holder is alive: it still holds the slot's lock (or, without locks, its PID is live). */
  readonly alive: boolean
  /** Whether this process holds the slot. */
  readonly self: boolean
  /** The low 32 bits of the holder's start time (`/proc/<pid>/stat` field 22 on Linux); `0` when unknown. */
  readonly startTag: number
}

/** Options of {@link SlotTable.open}. */
export interface SlotTableOptions {
  /**
   * The fleet size: a new (or empty) file gets exactly this many slots (`1` is a singleton), and an
   * existing smaller file grows to it. A file is never shrunk: when it already has more, it keeps them,
   * and {@link SlotTable.size} says how many.
   *
   * @default the file's current size; `os.availableParallelism()` for a new file
   */
  readonly slots?: number
  /**
   * Permission bits of the file, when this call creates it: `0` to `0o777` (set-user-ID, set-group-ID
   * and sticky bits are a `RangeError`). Applied exactly (the umask does not narrow them), so processes
   * of several users can share a file created with `0o666`.
   *
   * @default 0o600
   */
  readonly mode?: number
  /**
   * The longest wait, in milliseconds, for another process that holds the file's growth lock (it grows
   * the file). Past it, `open` throws a {@link SlotFileError} with code `ETIMEDOUT`.
   *
   * @default 5000
   */
  readonly timeoutMs?: number
  /**
   * Accept a slot file owned by another user. Off by default: a file someone else planted in a shared
   * directory such as `/tmp` is refused with code `EFOREIGN`.
   *
   * @default false
   */
  readonly allowForeignOwner?: boolean
}

/** Options of {@link SlotTable.acquire}. */
export interface AcquireOptions {
  /**
   * The slot to try first, for a stable mapping (the cluster worker's index, PM2's `NODE_APP_INSTANCE`).
   * If it is held, or beyond the table, the lowest free slot is taken instead — unless `exact`.
   */
  readonly preferred?: number
  /**
   * Only `preferred` will do: `acquire` throws {@link SlotsExhaustedError} when it is held (or beyond the
   * table), `waitForSlot` waits for that very slot. This is how PM2's instance N keeps slot N through
   * `pm2 reload`: the new instance N waits until the old one gives slot N back. Needs `preferred`.
   *
   * @default false
   */
  readonly exact?: boolean
}

/** Options of {@link SlotTable.waitForSlot}. */
export interface WaitForSlotOptions extends AcquireOptions {
  /**
   * The longest wait, in milliseconds; past it, the promise rejects with a {@link SlotsExhaustedError}.
   * `0` tries once. Without it the wait lasts until a slot frees, the signal aborts, or the table is
   * closed — and, like a timer, keeps the process alive while it lasts.
   *
   * @default no limit
   */
  readonly timeoutMs?: number
  /** Aborts the wait: the promise rejects with the signal's `reason`. */
  readonly signal?: AbortSignal
}

function checkPath(path: unknown): string {
  return checkString('the slot file path', path)
}

/** The slot a claim wants, as the binding takes it. */
interface Want {
  readonly preferred: number | undefined
  readonly exact: boolean
}

/**
 * `preferred` checked and as the binding takes it: a u32 (any larger number is beyond every table too,
 * so it still means "no such slot": the lowest free one, or none with `exact`); `exact` a boolean that
 * needs `preferred`.
 */
function checkWant(options: AcquireOptions): Want {
  const preferred =
    options.preferred === undefined ? undefined : Math.min(checkInteger('preferred', options.preferred, 0, Number.MAX_SAFE_INTEGER), 0xffffffff)
  const exact = options.exact === undefined ? false : checkBoolean('exact', options.exact)
  if (exact && preferred === undefined) throw invalidValue('exact', exact, 'needs preferred: the one slot to take')
  return { preferred, exact }
}

/**
 * The typed client of a slot file.
 *
 * Opening a file that this process already has open joins that open (so the process's locks agree, and
 * it never holds two slots of one file). The process's slot is held until {@link SlotTable.release},
 * the {@link SlotTable.close} of the table that took it, or the end of the process — never given back
 * because a table was garbage-collected.
 *
 * @example
 * ```ts
 * const table = SlotTable.open('/run/myapp/slots', { slots: 16 })
 * const id = table.acquire({ preferred: Number(process.env.NODE_APP_INSTANCE ?? 0) })
 * ```
 */
export class SlotTable {
  readonly #native: NativeSlotTable
  readonly #path: string
  #closed = false
  /** The waits in progress, cancelled by {@link SlotTable.close}. */
  readonly #waiters = new Set<NativeWaiter>()

  private constructor(table: NativeSlotTable) {
    this.#native = table
    this.#path = table.path
  }

  /**
   * Opens a slot file, creating it if it does not exist.
   *
   * @param path - the slot file; relative paths are resolved against the working directory
   * @throws {SlotFileError} for a file it refuses or cannot use (see the codes there); nothing in the file
   *   is changed
   * @throws {TypeError | RangeError} for invalid options
   */
  static open(path: string = DEFAULT_SLOTS_FILE, options: SlotTableOptions = {}): SlotTable {
    return SlotTable.#open(path, options, false)
  }

  /**
   * {@link SlotTable.open} for a client: the tables so opened share this process's slot of the file, which
   * the core gives back when the last of them that shares it closes — and only if one of them took it.
   * @internal
   */
  static openShared(path: string, options: SlotTableOptions = {}): SlotTable {
    return SlotTable.#open(path, options, true)
  }

  static #open(path: string, options: SlotTableOptions, shared: boolean): SlotTable {
    checkPath(path)
    const slots = options.slots === undefined ? undefined : checkInteger('slots', options.slots, 1, MAX_SLOTS)
    const mode = checkInteger('mode', options.mode ?? 0o600, 0, 0o777)
    const timeoutMs = options.timeoutMs === undefined ? undefined : checkMs('timeoutMs', options.timeoutMs)
    const allowForeignOwner = checkBoolean('allowForeignOwner', options.allowForeignOwner ?? false)
    let table: SlotTable
    try {
      table = new SlotTable(
        native.NativeSlotTable.open(
          path,
          {
            slots,
            mode,
            allowForeignOwner,
            timeoutMs,
            privateDir: inPrivateDir(path),
          },
          shared,
        ),
      )
    } catch (err) {
      throw errors().slotFileError(err, path)
    }
    if (table.#native.onFuse) warnFuse(table.#path)
    return table
  }

  /** The file's absolute path. */
  get path(): string {
    return this.#path
  }

  /** How many slots the file has now (another process may have grown it). */
  get size(): number {
    return this.#call((t) => t.size)
  }

  /**
   * Whether the file's path now names another file, or nothing: it was removed (a temporary-file
   * cleaner, `rm`) or replaced (`mv` over it). Processes that open the path from now on use another
   * table, so the IDs of this one may be handed out twice. The first time this is seen, a `'warning'`
   * is emitted on `process` (once per file). Costs one `lstat`.
   */
  get replaced(): boolean {
    const replaced = this.#call((t) => t.replaced)
    if (replaced) warnReplaced(this.#path)
    return replaced
  }

  /** The slot this process holds in this file, or `-1`. */
  get held(): number {
    return this.#call((t) => t.held())
  }

  /** Whether {@link SlotTable.close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Claims a slot for this process: the one it holds already, else `preferred` if that is free, else the
   * lowest slot with no live holder (a dead holder's slot is free at once).
   *
   * @returns the slot, 0-based
   * @throws {SlotsExhaustedError} when every slot is held by a live process
   * @throws {SlotFileError} when the file cannot be used
   */
  acquire(options: AcquireOptions = {}): number {
    const slot = this.#take(checkWant(options))
    if (slot < 0) throw new (errors().SlotsExhaustedError)(this.#path, this.size)
    return slot
  }

  /**
   * Like {@link SlotTable.acquire}, but when every slot is held, waits until one frees — released, or its
   * holder dead — and takes it. The wait is on the events themselves (a release, the holder's last close of
   * the file, a growth), off the JavaScript thread: a fraction of a millisecond after the event, no CPU
   * while nothing changes, and one waiting thread for every wait of the process. The slot is this
   * table's, as if `acquire` had taken it.
   *
   * @returns the slot, 0-based
   * @throws {SlotsExhaustedError} (rejects) when `timeoutMs` passes with every slot held
   * @throws the signal's `reason` (rejects) when `signal` aborts (before or during the wait)
   * @throws {SlotFileError} (rejects) `ECLOSED` when the table is closed during the wait; when the file
   *   cannot be used
   * @throws {TypeError | RangeError} for invalid options
   */
  async waitForSlot(options: WaitForSlotOptions = {}): Promise<number> {
    const want = checkWant(options)
    const timeoutMs = options.timeoutMs === undefined ? undefined : checkMs('timeoutMs', options.timeoutMs)
    const signal = options.signal === undefined ? undefined : checkSignal('signal', options.signal)
    signal?.throwIfAborted()
    const first = this.#take(want)
    if (first >= 0) return first
    if (timeoutMs === 0) throw new (errors().SlotsExhaustedError)(this.#path, this.size)

    const waiter = this.#call((t) => t.waiter())
    const abort = (): void => waiter.cancel()
    signal?.addEventListener('abort', abort, { once: true })
    this.#waiters.add(waiter)
    let waited: NativeWaited
    try {
      waited = await waiter.wait(want.preferred, want.exact, timeoutMs)
    } catch (err) {
      throw errors().slotFileError(err, this.#path)
    } finally {
      signal?.removeEventListener('abort', abort)
      this.#waiters.delete(waiter)
    }
    const gone = this.#closed || signal?.aborted === true
    if (waited.slot >= 0 && !gone) {
      if (waited.took) this.#native.adopt(waited.slot)
      forgetProcessIds()
      if (this.#native.replacedSeen) warnReplaced(this.#path)
      return waited.slot
    }
    // Taken just as the caller went away: not theirs any more.
    if (waited.slot >= 0 && waited.took) waiter.giveBack(waited.slot)
    if (signal?.aborted) throw signal.reason
    if (this.#closed) throw this.#closedError()
    throw new (errors().SlotsExhaustedError)(this.#path, this.size)
  }

  /**
   * Frees this process's slot (with `slot`, only if that is the one it holds).
   *
   * @returns `true` if a slot was freed; `false` if this process held none (idempotent)
   */
  release(slot?: number): boolean {
    if (slot !== undefined) checkInteger('slot', slot, 0, Number.MAX_SAFE_INTEGER)
    forgetProcessIds()
    return this.#call((t) => t.release(slot === undefined ? undefined : Math.min(slot, 0xffffffff)))
  }

  /**
   * Frees every slot whose holder is dead (its lock is no longer held). Acquiring does not need this — a
   * dead holder's slot is claimable as it is — but it keeps {@link SlotTable.snapshot} tidy.
   *
   * @returns how many slots were freed
   */
  reclaim(): number {
    return this.#call((t) => t.reclaim())
  }

  /** Every slot, with its holder's PID, whether it is alive, and whether it is this process. */
  snapshot(): SlotInfo[] {
    const flat = this.#call((t) => t.snapshot())
    if (this.#native.replacedSeen) warnReplaced(this.#path)
    const slots: SlotInfo[] = new Array(flat.length / 3)
    for (let slot = 0, i = 0; i < flat.length; slot++, i += 3) {
      const flags = flat[i + 2]!
      slots[slot] = { slot, pid: flat[i]!, alive: (flags & 1) !== 0, self: (flags & 2) !== 0, startTag: flat[i + 1]! }
    }
    return slots
  }

  /**
   * Closes this table. The slot this table took with {@link SlotTable.acquire} is given back (if the
   * process still holds it); a slot the process held before (through {@link getProcessId} or another
   * table) is left alone. Idempotent.
   *
   * A table that is never closed — even one no longer referenced, collected by the garbage collector —
   * keeps its slot until {@link SlotTable.release} or the end of the process.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const waiter of this.#waiters) waiter.cancel()
    this.#native.close()
    forgetProcessIds()
  }

  /**
   * Closes this table without giving back the slot it took, for owners that release it themselves
   * (the clients, which share one slot per file).
   * @internal
   */
  detach(): void {
    if (this.#closed) return
    this.#closed = true
    this.#native.detach()
  }

  /** Calls {@link SlotTable.close}, for `using table = SlotTable.open(...)`. */
  [Symbol.dispose](): void {
    this.close()
  }

  #closedError(): Errors.SlotFileError {
    return new (errors().SlotFileError)(`slot file ${this.#path}: this table is closed`, { code: 'ECLOSED', path: this.#path })
  }

  /** One try at a slot (`-1`: every slot held), with the once-per-file warning if the path was replaced. */
  #take(want: Want): number {
    const slot = this.#call((t) => t.acquire(want.preferred, want.exact))
    if (slot >= 0 && this.#native.replacedSeen) warnReplaced(this.#path)
    return slot
  }

  #call<T>(fn: (table: NativeSlotTable) => T): T {
    if (this.#closed) throw this.#closedError()
    try {
      return fn(this.#native)
    } catch (err) {
      throw errors().slotFileError(err, this.#path)
    }
  }
}
