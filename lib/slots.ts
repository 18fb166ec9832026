/**
 * Worker slots: small, unique, reusable IDs (0..N-1) for the processes of a fleet, from a memory-mapped
 * slot file with one lock lease per slot.
 */
import { availableParallelism, tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'

import { SlotFileError, SlotsExhaustedError, slotFileError } from './errors'
import * as native from './native'
import { checkBoolean, checkInteger, checkString } from './validate'

/** The slot file used when none is named: `procslot-worker-slots` in `os.tmpdir()`. */
export const DEFAULT_SLOTS_FILE: string = join(tmpdir(), 'procslot-worker-slots')

/** The most slots a file may hold (a 1 MiB file). */
export const MAX_SLOTS = 131072

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
   * Grow the file to at least this many slots. A file is never shrunk: when it already has more, it keeps
   * them, and {@link SlotTable.size} says how many.
   *
   * @default the file's current size; `os.availableParallelism()` for a new file
   */
  readonly slots?: number
  /**
   * Permission bits of the file, when this call creates it. Applied exactly (the umask does not narrow
   * them), so processes of several users can share a file created with `0o666`.
   *
   * @default 0o600
   */
  readonly mode?: number
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
   * If it is held, or beyond the table, the lowest free slot is taken instead.
   */
  readonly preferred?: number
}

let cpus = 0

/**
 * Slots for a new file: `os.availableParallelism()`, within the file-size limit. Asked once per process:
 * it is a system call, and every open needs the figure although only a new file uses it.
 */
function defaultSlots(): number {
  if (cpus === 0) cpus = Math.min(availableParallelism(), MAX_SLOTS)
  return cpus
}

function checkPath(path: unknown): string {
  return checkString('the slot file path', path)
}

/**
 * This process's IDs by slot-file path, so that a repeated {@link getProcessId} costs a map look-up.
 * Cleared by every release in this process.
 */
const memo = new Map<string, number>()

/**
 * The slot (0-based process ID) of this process in a slot file, claiming the lowest slot with no live
 * holder if it holds none. Repeated calls return the same number. The slot is held until
 * {@link releaseProcessId} or the end of the process, however it ends.
 *
 * A new file gets `os.availableParallelism()` slots. Never throws: returns `-1` when every slot is held
 * by a live process, and on any error (an unusable path, a refused file — use {@link SlotTable.open} to
 * learn why).
 *
 * @param slotsFile - the slot file
 * @default slotsFile {@link DEFAULT_SLOTS_FILE}
 */
export function getProcessId(slotsFile: string = DEFAULT_SLOTS_FILE): number {
  const cached = memo.get(slotsFile)
  if (cached !== undefined) return cached
  let id: number
  try {
    id = native.getProcessId(checkPath(slotsFile), defaultSlots())
  } catch {
    return -1
  }
  if (id >= 0 && isAbsolute(slotsFile)) memo.set(slotsFile, id)
  return id
}

/**
 * Frees this process's slot in a slot file (only if the slot's word still names this process) and forgets
 * it. Idempotent; never throws.
 *
 * @param slotsFile - the slot file
 * @returns `true` if a slot was freed
 */
export function releaseProcessId(slotsFile: string = DEFAULT_SLOTS_FILE): boolean {
  memo.clear()
  try {
    return native.releaseProcessId(checkPath(slotsFile))
  } catch {
    return false
  }
}

/**
 * The typed client of a slot file.
 *
 * Opening a file that this process already has open joins that open (so the process's locks agree, and
 * it never holds two slots of one file). The process's slot is freed by {@link SlotTable.release}, or
 * when the last table of the file in this process is closed, or when the process ends.
 *
 * @example
 * ```ts
 * const table = SlotTable.open('/run/myapp/slots', { slots: 16 })
 * const id = table.acquire({ preferred: Number(process.env.NODE_APP_INSTANCE ?? 0) })
 * ```
 */
export class SlotTable {
  readonly #native: native.NativeSlotTable
  readonly #path: string
  #closed = false

  private constructor(table: native.NativeSlotTable) {
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
    checkPath(path)
    const slots = options.slots === undefined ? undefined : checkInteger('slots', options.slots, 1, MAX_SLOTS)
    const mode = checkInteger('mode', options.mode ?? 0o600, 0, 0o7777)
    const allowForeignOwner = checkBoolean('allowForeignOwner', options.allowForeignOwner ?? false)
    try {
      return new SlotTable(
        native.NativeSlotTable.open(path, slots, defaultSlots(), mode, allowForeignOwner),
      )
    } catch (err) {
      throw slotFileError(err, path)
    }
  }

  /** The file's absolute path. */
  get path(): string {
    return this.#path
  }

  /** How many slots the file has now (another process may have grown it). */
  get size(): number {
    return this.#call((t) => t.size)
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
    const preferred =
      options.preferred === undefined ? undefined : checkInteger('preferred', options.preferred, 0, Number.MAX_SAFE_INTEGER)
    const slot = this.#call((t) => t.acquire(preferred === undefined ? undefined : Math.min(preferred, 0xffffffff)))
    if (slot < 0) throw new SlotsExhaustedError(this.#path, this.size)
    return slot
  }

  /**
   * Frees this process's slot (with `slot`, only if that is the one it holds).
   *
   * @returns `true` if a slot was freed; `false` if this process held none (idempotent)
   */
  release(slot?: number): boolean {
    if (slot !== undefined) checkInteger('slot', slot, 0, Number.MAX_SAFE_INTEGER)
    memo.clear()
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
    const slots: SlotInfo[] = new Array(flat.length / 3)
    for (let slot = 0, i = 0; i < flat.length; slot++, i += 3) {
      const flags = flat[i + 2]!
      slots[slot] = { slot, pid: flat[i]!, alive: (flags & 1) !== 0, self: (flags & 2) !== 0, startTag: flat[i + 1]! }
    }
    return slots
  }

  /**
   * Closes this table. When it is the last open of the file in this process (and {@link getProcessId}
   * does not hold it), this process's slot in it is freed. Idempotent.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#native.close()
  }

  /** Calls {@link SlotTable.close}, for `using table = SlotTable.open(...)`. */
  [Symbol.dispose](): void {
    this.close()
  }

  #call<T>(fn: (table: native.NativeSlotTable) => T): T {
    if (this.#closed) {
      throw new SlotFileError(`slot file ${this.#path}: this table is closed`, { code: 'ECLOSED', path: this.#path })
    }
    try {
      return fn(this.#native)
    } catch (err) {
      throw slotFileError(err, this.#path)
    }
  }
}
