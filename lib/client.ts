/**
 * The typed multi-process client: the port of the Go helpers' `NewClient`, `NewMultiProcessClient` and
 * `NewMultiProcessClientWithFile`. A client knows which process of a fleet it is, which shards it owns,
 * and — when it took its ID from a slot file — gives the ID back on `close()`.
 */
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'

import {
  checkConcurrency,
  checkCount,
  checkSlots,
  checkSlotsFile,
  checkWaiting,
  type WaitingConfig,
  defaultConfig,
  type Config,
  type ConcurrencyConfig,
  type PartialConfig,
} from './config'
import { DEFAULT_SLOTS_FILE } from './native'
import { SlotTable } from './slots'
import type * as EtcdClient from './etcd/client'
import type { EtcdClientConfig } from './etcd/client'
import { checkObject, checkString } from './validate'

/** What a client acquired: the table it holds its slot through. */
interface Lease {
  readonly table: SlotTable
  readonly slot: number
}

/**
 * Takes this process's slot of `slotsFile` for a client (waiting for one with `waiting`), through a sharing
 * table: a process holds one slot per file, so every client of a file shares it, and the core gives it
 * back when the last of them closes — only if a client took it (not when {@link getProcessId} or a
 * {@link SlotTable} of the caller held it already).
 */
function acquireLease(slotsFile: string, slots: number | undefined): Lease
function acquireLease(
  slotsFile: string,
  slots: number | undefined,
  waiting: { timeoutMs: number | undefined; signal: AbortSignal | undefined },
): Promise<Lease>
function acquireLease(
  slotsFile: string,
  slots: number | undefined,
  waiting?: { timeoutMs: number | undefined; signal: AbortSignal | undefined },
): Lease | Promise<Lease> {
  const table = SlotTable.openShared(slotsFile, slots === undefined ? {} : { slots })
  if (waiting) {
    return table.waitForSlot(waiting).then(
      (slot) => ({ table, slot }),
      (err: unknown) => {
        table.close()
        throw err
      },
    )
  }
  try {
    return { table, slot: table.acquire() }
  } catch (err) {
    table.close()
    throw err
  }
}

/** Gives a client's slot back (if it is the last client that shares it, and a client took it). */
function releaseLease({ table }: Lease): void {
  table.close()
}

/**
 * A slot held some other way than through a slot file (an etcd lease, lib/etcd/): the client calls
 * `release()` when it closes.
 */
interface ExternalLease {
  readonly slot: number
  release(): void
}

/** A {@link Config} that cannot be changed: a client's `config`. */
export interface FrozenConfig {
  /** Which process of a fleet this is. */
  readonly concurrency: Readonly<ConcurrencyConfig>
}

function freeze(concurrency: ConcurrencyConfig): FrozenConfig {
  return Object.freeze({ concurrency: Object.freeze({ ...concurrency }) })
}

/**
 * A client of one process of a fleet: its ID, the fleet's size, its data directory and the shards it
 * owns. Made by {@link newClient}, {@link newMultiProcessClient} and {@link newMultiProcessClientWithFile};
 * close it with {@link MultiProcessClient.close} or `using client = newMultiProcessClient(dir)`.
 */
export class MultiProcessClient {
  /** The client's configuration, frozen (the object and its `concurrency`). */
  readonly config: FrozenConfig
  /** The data directory, as an absolute path; it exists (it was created if needed). */
  readonly dataDir: string
  #lease: Lease | ExternalLease | null
  #closed = false

  private constructor(dataDir: string, concurrency: ConcurrencyConfig, lease: Lease | ExternalLease | null) {
    this.dataDir = dataDir
    this.config = freeze(concurrency)
    this.#lease = lease
  }

  /** @internal Use {@link newClient} or {@link newMultiProcessClient}. */
  static create(dataDir: string, concurrency: ConcurrencyConfig, lease: Lease | ExternalLease | null): MultiProcessClient {
    return new MultiProcessClient(dataDir, concurrency, lease)
  }

  /** This process's ID, 0-based (`config.concurrency.processId`). */
  get processId(): number {
    return this.config.concurrency.processId
  }

  /** How many processes the fleet has (`config.concurrency.processCount`); `0` or `1`: single-process. */
  get processCount(): number {
    return this.config.concurrency.processCount
  }

  /** Whether the fleet has more than one process (`processCount > 1`). */
  get isMultiProcess(): boolean {
    return this.processCount > 1
  }

  /** Whether {@link MultiProcessClient.close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Whether this process owns a shard: `shard % processCount === processId`; every shard in
   * single-process mode. Across the IDs `0..processCount-1`, every shard has exactly one owner.
   *
   * @throws {TypeError | RangeError} unless `shard` is an integer `>= 0`
   */
  owns(shard: number): boolean {
    checkCount('shard', shard)
    return !this.isMultiProcess || shard % this.processCount === this.processId
  }

  /**
   * The shards of `0..total-1` this process owns, in increasing order (all of them in single-process
   * mode).
   *
   * @throws {TypeError | RangeError} unless `total` is an integer `>= 0`
   */
  ownedShards(total: number): number[] {
    checkCount('total', total)
    if (!this.isMultiProcess) return Array.from({ length: total }, (_, i) => i)
    const shards: number[] = []
    for (let shard = this.processId; shard < total; shard += this.processCount) shards.push(shard)
    return shards
  }

  /**
   * Closes the client. A client that took its ID from a slot file releases it (once the last client of
   * that file in this process is closed); one opened on a given config releases nothing. Idempotent.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const lease = this.#lease
    this.#lease = null
    if (lease) 'release' in lease ? lease.release() : releaseLease(lease)
  }

  /** Calls {@link MultiProcessClient.close}, for `using client = newMultiProcessClient(dir)`. */
  [Symbol.dispose](): void {
    this.close()
  }
}

/** Whether a config asks for an ID from etcd (then {@link newMultiProcessClient} is async). */
function isEtcdConfig(config: unknown): config is EtcdClientConfig {
  if (typeof config !== 'object' || config === null) return false
  const concurrency = (config as { concurrency?: unknown }).concurrency
  return typeof concurrency === 'object' && concurrency !== null && (concurrency as { etcd?: unknown }).etcd !== undefined
}

function checkDataDir(dataDir: unknown): string {
  return resolve(checkString('dataDir', dataDir))
}

/**
 * Creates `dataDir` (recursively) and opens a client with `config` exactly as given: it acquires and
 * releases nothing. The port of the Go helpers' `NewClient(dir, config)`.
 *
 * @param dataDir - the client's data directory
 * @param config - from {@link defaultConfig}, {@link multiProcessConfig} or
 *   {@link acquireMultiProcessConfig} (then release the ID with {@link releaseProcessId} yourself)
 * @default config {@link defaultConfig}()
 * @throws {TypeError | RangeError} for an invalid config or `dataDir`
 * @throws the `fs` error (`EACCES`, `ENOTDIR`, `EEXIST`, ...) when `dataDir` cannot be created
 */
export function newClient(dataDir: string, config: Config = defaultConfig()): MultiProcessClient {
  const dir = checkDataDir(dataDir)
  checkObject('config', config)
  const concurrency = checkConcurrency(config.concurrency)
  mkdirSync(dir, { recursive: true })
  return MultiProcessClient.create(dir, concurrency, null)
}

/**
 * Opens a client that is one process of a fleet. If `config` is already multi-process
 * (`concurrency.processCount > 1`) it is used as given; otherwise the client acquires an ID from
 * `concurrency.slotsFile` (default {@link DEFAULT_SLOTS_FILE}) — this process's slot in that file, the
 * same one {@link getProcessId} returns — with `processCount` the table's size. Then it creates `dataDir`.
 *
 * A client that acquired its ID owns it: {@link MultiProcessClient.close} releases it, and so does the end
 * of the process, however it ends. If creating `dataDir` fails, the ID is released before the error is
 * thrown. The port of the Go helpers' `NewMultiProcessClient(dir)`.
 *
 * Give the fleet size as `config.concurrency.slots`, so that a new slot file has exactly that many slots
 * and `processCount` is the fleet. With `config.waitMs` or `config.signal`, a full table is waited on
 * (off the JavaScript thread) until a slot frees, and the client comes as a Promise:
 * `const client = await newMultiProcessClient(dir, { concurrency: { slotsFile, slots: 4 }, waitMs: 30_000 })`.
 *
 * @param dataDir - the client's data directory, created if needed
 * @param config - a whole or partial config (`Partial<Config>` will do)
 * @throws {SlotsExhaustedError} (`ESLOTSFULL`) when every slot is held by a live process
 * @throws {SlotFileError} when the slot file is refused or cannot be used
 * @throws {TypeError | RangeError} for an invalid config or `dataDir`
 * @throws the `fs` error when `dataDir` cannot be created
 */
export function newMultiProcessClient(dataDir: string, config: WaitingConfig): Promise<MultiProcessClient>
/**
 * Opens a client whose ID is a slot under an etcd prefix, unique across every host sharing the prefix
 * (see {@link EtcdSlotTable}): it resolves once the slot is held; `close()` releases it.
 *
 * @throws (rejects) {SlotsExhaustedError} (`ESLOTSFULL`) when every slot is held (after `waitMs`)
 * @throws (rejects) {EtcdError} `EETCDUNAVAILABLE` and the other codes of {@link EtcdSlotTable.open}
 */
export function newMultiProcessClient(dataDir: string, config: EtcdClientConfig): Promise<MultiProcessClient>
export function newMultiProcessClient(dataDir: string, config?: PartialConfig): MultiProcessClient
export function newMultiProcessClient(
  dataDir: string,
  config: PartialConfig | EtcdClientConfig = {},
): MultiProcessClient | Promise<MultiProcessClient> {
  // Across hosts: the ID comes from etcd (lib/etcd/client.ts), asynchronously; every error rejects. The
  // etcd code (seven modules, about 3.5 ms in a fresh process) loads only for such a config: a client on
  // a slot file never pays for it.
  if (isEtcdConfig(config)) {
    return (async () => {
      const dir = checkDataDir(dataDir)
      const { acquireEtcdId } = require('./etcd/client') as typeof EtcdClient
      const { concurrency, lease } = await acquireEtcdId(dir, config)
      return MultiProcessClient.create(dir, concurrency, lease)
    })()
  }
  const dir = checkDataDir(dataDir)
  checkObject('config', config)
  const given = checkObject<NonNullable<PartialConfig['concurrency']>>('config.concurrency', config.concurrency ?? {})
  const slotsFile = checkSlotsFile(given.slotsFile ?? DEFAULT_SLOTS_FILE, 'config.concurrency.slotsFile')
  const slots = checkSlots('config.concurrency.slots', given.slots)
  const waiting = checkWaiting('config.', config)

  if (given.processCount !== undefined && checkCount('config.concurrency.processCount', given.processCount) > 1) {
    const concurrency = checkConcurrency({ processId: given.processId ?? 0, processCount: given.processCount, slotsFile })
    mkdirSync(dir, { recursive: true })
    const client = MultiProcessClient.create(dir, concurrency, null)
    return waiting ? Promise.resolve(client) : client
  }

  const open = (lease: Lease): MultiProcessClient => {
    try {
      const concurrency = { processId: lease.slot, processCount: lease.table.size, slotsFile }
      mkdirSync(dir, { recursive: true })
      return MultiProcessClient.create(dir, concurrency, lease)
    } catch (err) {
      releaseLease(lease)
      throw err
    }
  }
  return waiting ? acquireLease(slotsFile, slots, waiting).then(open) : open(acquireLease(slotsFile, slots))
}

/**
 * {@link newMultiProcessClient} with its ID from `slotsFile`: one file per deployment, when several fleets
 * share a host. The port of the Go helpers' `NewMultiProcessClientWithFile(dir, file)`.
 *
 * @throws as {@link newMultiProcessClient}
 */
export function newMultiProcessClientWithFile(dataDir: string, slotsFile: string): MultiProcessClient {
  return newMultiProcessClient(dataDir, { concurrency: { slotsFile: checkSlotsFile(slotsFile) } })
}
