/**
 * Config builders: the port of the Go helpers' `DefaultCometConfig`, `MultiProcessConfig` and
 * `MultiProcessCometConfig`. Each returns a fresh, mutable object; a client freezes its own copy.
 */
import { DEFAULT_SLOTS_FILE, MAX_SLOTS, getProcessId } from './native'
import { SlotTable } from './slots'
import { SlotsExhaustedError } from './errors'
import { checkInteger, checkMs, checkObject, checkSignal, checkString, outOfRange } from './validate'

/** Which process of a fleet this is. Part of {@link Config}. */
export interface ConcurrencyConfig {
  /** This process's ID, 0-based: its slot when it came from a slot file. */
  processId: number
  /** How many processes the fleet has; `0` or `1` means single-process (this process owns everything). */
  processCount: number
  /** The slot file the ID came from (or would come from). */
  slotsFile: string
}

/** The configuration of a {@link MultiProcessClient}. Builders return fresh objects you may edit. */
export interface Config {
  /** Which process of a fleet this is. */
  concurrency: ConcurrencyConfig
}

/**
 * A config where any part may be left out, as {@link newMultiProcessClient} accepts it. `Partial<Config>`
 * is one.
 */
export interface PartialConfig {
  /** Which process of a fleet this is; missing fields take their defaults. */
  concurrency?: Partial<ConcurrencyConfig> & {
    /**
     * The fleet size, for a slot file this client creates: a new file gets exactly this many slots, so
     * `processCount` is the fleet, not the machine's core count. A smaller file grows to it.
     *
     * @default `os.availableParallelism()` for a new file
     */
    slots?: number
  }
  /**
   * Wait up to this many milliseconds for a free slot when every slot is held (instead of failing at
   * once); then {@link newMultiProcessClient} returns a Promise. Past it, the promise rejects with a
   * {@link SlotsExhaustedError}.
   */
  waitMs?: number
  /**
   * Abort the wait for a free slot (the promise rejects with the signal's reason); then
   * {@link newMultiProcessClient} returns a Promise.
   */
  signal?: AbortSignal
}

/** A config that makes {@link newMultiProcessClient} wait for a free slot, and return a Promise. */
export type WaitingConfig = PartialConfig & ({ waitMs: number } | { signal: AbortSignal })

/** Options of {@link acquireMultiProcessConfig}. */
export interface AcquireConfigOptions {
  /** The fleet size, for a new file (as {@link SlotTableOptions.slots}). @default `os.availableParallelism()` */
  readonly slots?: number
  /** Wait up to this many milliseconds for a free slot; then the result is a Promise. */
  readonly waitMs?: number
  /** Abort the wait (rejects with the signal's reason); then the result is a Promise. */
  readonly signal?: AbortSignal
}

/** @internal Checks the waiting part of a config or options: `undefined` when nothing waits. */
export function checkWaiting(
  where: string,
  given: { waitMs?: unknown; signal?: unknown },
): { timeoutMs: number | undefined; signal: AbortSignal | undefined } | undefined {
  if (given.waitMs === undefined && given.signal === undefined) return undefined
  return {
    timeoutMs: given.waitMs === undefined ? undefined : checkMs(`${where}waitMs`, given.waitMs),
    signal: given.signal === undefined ? undefined : checkSignal(`${where}signal`, given.signal),
  }
}

/** @internal */
export function checkSlots(name: string, slots: unknown): number | undefined {
  return slots === undefined ? undefined : checkInteger(name, slots, 1, MAX_SLOTS)
}

/** @internal */
export function checkSlotsFile(slotsFile: unknown, name = 'slotsFile'): string {
  return checkString(name, slotsFile)
}

/** A count or index: an integer `>= 0`. @internal */
export function checkCount(name: string, value: unknown): number {
  return checkInteger(name, value, 0, Number.MAX_SAFE_INTEGER)
}

/**
 * Checks a concurrency config: integers, and `0 <= processId < processCount` when `processCount > 0`
 * (`processId` 0 when it is 0). Returns a validated copy.
 * @internal
 */
export function checkConcurrency(concurrency: unknown, where = 'config.concurrency'): ConcurrencyConfig {
  const c = checkObject<Record<string, unknown>>(where, concurrency)
  const processId = checkCount(`${where}.processId`, c.processId)
  const processCount = checkCount(`${where}.processCount`, c.processCount)
  const slotsFile = checkSlotsFile(c.slotsFile, `${where}.slotsFile`)
  if (processCount === 0 ? processId !== 0 : processId >= processCount) {
    const range = processCount === 0 ? '0 when processCount is 0 (single-process)' : `below processCount (${processCount})`
    throw outOfRange(`${where}.processId`, range, processId)
  }
  return { processId, processCount, slotsFile }
}

/**
 * The single-process config: `processId` 0, `processCount` 0, the default slot file. A client opened with
 * it owns every shard. The port of the Go helpers' `DefaultCometConfig()`.
 *
 * @returns a fresh object the caller may edit
 */
export function defaultConfig(): Config {
  return { concurrency: { processId: 0, processCount: 0, slotsFile: DEFAULT_SLOTS_FILE } }
}

/**
 * The config of process `processId` of `processCount`, when the caller knows its ID (from
 * {@link getProcessId}, an environment variable, a command-line flag). Acquires nothing. The port of the
 * Go helpers' `MultiProcessConfig(processID, processCount)`.
 *
 * @param processId - this process's ID, 0-based
 * @param processCount - how many processes the fleet has
 * @param slotsFile - the slot file the ID came from
 * @default slotsFile {@link DEFAULT_SLOTS_FILE}
 * @returns a fresh object the caller may edit
 * @throws {TypeError} (`ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`) when `processId` or
 *   `processCount` is not a number, or `slotsFile` is not a non-empty string
 * @throws {RangeError} (`ERR_OUT_OF_RANGE`) unless both are integers and `0 <= processId < processCount`
 */
export function multiProcessConfig(
  processId: number,
  processCount: number,
  slotsFile: string = DEFAULT_SLOTS_FILE,
): Config {
  checkCount('processId', processId)
  checkCount('processCount', processCount)
  checkSlotsFile(slotsFile)
  if (processId >= processCount) throw outOfRange('processId', `below processCount (${processCount})`, processId)
  return { concurrency: { processId, processCount, slotsFile } }
}

/**
 * Acquires this process's ID in a slot file, as {@link getProcessId} does, and returns the config for
 * it: `processCount` is the table's size — give the fleet size as `options.slots`, so that a new file has
 * exactly that many slots. The ID is held until {@link releaseProcessId}`(slotsFile)` or the end of the
 * process — a client opened with {@link newClient} on this config does not release it. The port of the Go
 * helpers' `MultiProcessCometConfig(file)`.
 *
 * With `options.waitMs` or `options.signal`, it waits for a free slot when every slot is held, and
 * returns a Promise.
 *
 * @param slotsFile - the slot file
 * @default slotsFile {@link DEFAULT_SLOTS_FILE}
 * @returns a fresh object the caller may edit
 * @throws {SlotsExhaustedError} (`ESLOTSFULL`) when every slot is held by a live process (past `waitMs`)
 * @throws {SlotFileError} when the file is refused or cannot be used (its `code` says why)
 * @throws {TypeError | RangeError} for an invalid `slotsFile` or options
 */
export function acquireMultiProcessConfig(
  slotsFile: string | undefined,
  options: AcquireConfigOptions & ({ waitMs: number } | { signal: AbortSignal }),
): Promise<Config>
export function acquireMultiProcessConfig(slotsFile?: string, options?: AcquireConfigOptions): Config
export function acquireMultiProcessConfig(
  slotsFile: string = DEFAULT_SLOTS_FILE,
  options: AcquireConfigOptions = {},
): Config | Promise<Config> {
  checkSlotsFile(slotsFile)
  checkObject('options', options)
  const slots = checkSlots('options.slots', options.slots)
  const waiting = checkWaiting('options.', options)
  if (waiting) {
    return (async () => {
      const table = SlotTable.open(slotsFile, slots === undefined ? {} : { slots })
      try {
        // Held by the process from now on, as getProcessId holds it: not given back by this table.
        const processId = await table.waitForSlot({ timeoutMs: waiting.timeoutMs, signal: waiting.signal })
        getProcessId(slotsFile) // the same slot, remembered for getProcessId's callers
        return { concurrency: { processId, processCount: table.size, slotsFile } }
      } finally {
        table.detach()
      }
    })()
  }
  const processId = getProcessId(slotsFile, slots === undefined ? undefined : { slots })
  // Joins this process's open of the file (getProcessId keeps it open), so closing it frees nothing. It
  // also says why getProcessId gave -1: a refused file throws here.
  const table = SlotTable.open(slotsFile, slots === undefined ? {} : { slots })
  try {
    const processCount = table.size
    if (processId < 0) throw new SlotsExhaustedError(table.path, processCount)
    return { concurrency: { processId, processCount, slotsFile } }
  } finally {
    table.close()
  }
}
