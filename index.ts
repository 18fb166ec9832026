/**
 * procslot: small, unique, reusable worker IDs for every process of a Node.js fleet, from a
 * memory-mapped slot file with a lock lease per slot.
 *
 * @packageDocumentation
 */
import type * as Client from './lib/client.js'
import type * as Config from './lib/config.js'
import type * as Errors from './lib/errors.js'
import type * as Etcd from './lib/etcd/index.js'
import type * as Manager from './lib/manager/index.js'
import type * as PidFile from './lib/pidfile.js'
import type * as Slots from './lib/slots.js'

export { DEFAULT_SLOTS_FILE, MAX_SLOTS, getProcessId, releaseProcessId } from './lib/native.js'
export type { GetProcessIdOptions } from './lib/native.js'
export type { AcquireOptions, SlotInfo, SlotTableOptions, WaitForSlotOptions } from './lib/slots.js'
export type { AcquireConfigOptions, ConcurrencyConfig, Config, PartialConfig, WaitingConfig } from './lib/config.js'
export type { FrozenConfig } from './lib/client.js'
export type {
  EtcdAcquireOptions,
  EtcdClientConfig,
  EtcdConcurrencyOptions,
  EtcdSlotInfo,
  EtcdSlotTableEvents,
  EtcdSlotTableOptions,
  EtcdWaitOptions,
} from './lib/etcd/index.js'
export type { PidFileInfo } from './lib/pidfile.js'
export type {
  FuseProcessManagerOptions,
  KillOptions,
  Logger,
  ManagerEvents,
  ManagerStats,
  ProcessInfo,
  RestartPolicy,
  SpawnContext,
  SpawnOptions,
  UntrustedPidFile,
} from './lib/manager/index.js'
export type { EtcdErrorCode } from './lib/errors.js'
export type { PidFileErrorCode, SlotFileErrorCode, SpawnFailure } from './lib/errors.js'

/*
 * Loaded on first use: the typed slot client (`SlotTable`), the FUSE process manager (its
 * `node:child_process` with its first spawn), PID files, the multi-process client and its config helpers, slots on etcd, and
 * the error classes (made only when something fails). `require('procslot')` then costs this file and
 * `lib/native.js` (the native binding and the process ID helpers) only.
 *
 * Each name below is declared as an export — so that the compiled file assigns it (`exports.X = void 0`)
 * where Node's cjs-module-lexer finds it, and `import { FuseProcessManager } from 'procslot'` works from
 * ESM (there every name is read, and so loaded, at import: ESM imports of a CommonJS module are not lazy)
 * — and then replaced by a getter that loads its module on the first read. They are defined here, not in
 * a module of their own, because every module a program loads costs it a few hundred microseconds.
 */

/** Defines each of `names` on this module's exports as a getter that loads `load()` on first use. */
function lazy(names: readonly string[], load: () => Record<string, unknown>): void {
  for (const name of names) {
    Object.defineProperty(exports, name, { enumerable: true, configurable: true, get: () => load()[name] })
  }
}

// `require` is Node's module cache: each module loads once, on the first read of any of its names.
lazy(['SlotTable'], () => require('./lib/slots.js'))
lazy(['FuseProcessManager'], () => require('./lib/manager/index.js'))
lazy(['PidFileStore'], () => require('./lib/pidfile.js'))
lazy(['MultiProcessClient', 'newClient', 'newMultiProcessClient', 'newMultiProcessClientWithFile'], () =>
  require('./lib/client.js'),
)
lazy(['defaultConfig', 'multiProcessConfig', 'acquireMultiProcessConfig'], () => require('./lib/config.js'))
lazy(['EtcdSlotTable'], () => require('./lib/etcd/index.js'))
lazy(
  [
    'EtcdError',
    'InvalidTargetIdError',
    'PidFileError',
    'ProcessError',
    'ProcslotError',
    'SlotFileError',
    'SlotsExhaustedError',
    'SpawnError',
    'TargetLockedError',
  ],
  () => require('./lib/errors.js'),
)

/**
 * The typed client of a slot file: open it, acquire and release this process's slot, wait for one, look
 * at every slot. See {@link Slots.SlotTable}.
 */
export let SlotTable: typeof Slots.SlotTable
export type SlotTable = Slots.SlotTable
/**
 * Spawns long-running daemons (FUSE mount daemons first of all), tracks each in memory and in a PID file,
 * kills them gracefully, and finds them again after a restart. See {@link Manager.FuseProcessManager}.
 */
export let FuseProcessManager: typeof Manager.FuseProcessManager
export type FuseProcessManager = Manager.FuseProcessManager
/** Reads and writes the PID files of a directory. See {@link PidFile.PidFileStore}. */
export let PidFileStore: typeof PidFile.PidFileStore
export type PidFileStore = PidFile.PidFileStore
/**
 * A client of one process of a fleet: its ID, the fleet's size, its data directory and the shards it
 * owns. See {@link Client.MultiProcessClient}.
 */
export let MultiProcessClient: typeof Client.MultiProcessClient
export type MultiProcessClient = Client.MultiProcessClient
/** Creates `dataDir` and opens a client with `config` exactly as given. See {@link Client.newClient}. */
export let newClient: typeof Client.newClient
/**
 * Opens a client that is one process of a fleet, its ID from a slot file unless `config` gives one. See
 * {@link Client.newMultiProcessClient}.
 */
export let newMultiProcessClient: typeof Client.newMultiProcessClient
/** {@link newMultiProcessClient} with its ID from `slotsFile`. See {@link Client.newMultiProcessClientWithFile}. */
export let newMultiProcessClientWithFile: typeof Client.newMultiProcessClientWithFile
/** The single-process config (a fresh object). See {@link Config.defaultConfig}. */
export let defaultConfig: typeof Config.defaultConfig
/** A multi-process config with the given ID and count (a fresh object). See {@link Config.multiProcessConfig}. */
export let multiProcessConfig: typeof Config.multiProcessConfig
/** A multi-process config whose ID is this process's slot in a file. See {@link Config.acquireMultiProcessConfig}. */
export let acquireMultiProcessConfig: typeof Config.acquireMultiProcessConfig
/**
 * The slot interface on etcd, for fleets spread over several hosts (needs the `etcd3` package). See
 * {@link Etcd.EtcdSlotTable}.
 */
export let EtcdSlotTable: typeof Etcd.EtcdSlotTable
export type EtcdSlotTable = Etcd.EtcdSlotTable

/** The base class of every error procslot throws or rejects with; `code` is stable and machine-readable. See {@link Errors.ProcslotError}. */
export let ProcslotError: typeof Errors.ProcslotError
export type ProcslotError = Errors.ProcslotError
/** A slot file was refused or could not be used; nothing in the file was changed. See {@link Errors.SlotFileError}. */
export let SlotFileError: typeof Errors.SlotFileError
export type SlotFileError = Errors.SlotFileError
/** Every slot of the file is held by a live process (code `ESLOTSFULL`). See {@link Errors.SlotsExhaustedError}. */
export let SlotsExhaustedError: typeof Errors.SlotsExhaustedError
export type SlotsExhaustedError = Errors.SlotsExhaustedError
/** A PID directory or PID file could not be used. See {@link Errors.PidFileError}. */
export let PidFileError: typeof Errors.PidFileError
export type PidFileError = Errors.PidFileError
/** A target ID that cannot name a PID file (code `EINVALIDTARGET`). See {@link Errors.InvalidTargetIdError}. */
export let InvalidTargetIdError: typeof Errors.InvalidTargetIdError
export type InvalidTargetIdError = Errors.InvalidTargetIdError
/** Signalling or waiting for a process failed. See {@link Errors.ProcessError}. */
export let ProcessError: typeof Errors.ProcessError
export type ProcessError = Errors.ProcessError
/** A daemon could not be started (code `ESPAWN`). See {@link Errors.SpawnError}. */
export let SpawnError: typeof Errors.SpawnError
export type SpawnError = Errors.SpawnError
/** A target stayed busy for longer than the call would wait (code `ELOCKED`). See {@link Errors.TargetLockedError}. */
export let TargetLockedError: typeof Errors.TargetLockedError
export type TargetLockedError = Errors.TargetLockedError
/** The etcd slot backend failed. See {@link Errors.EtcdError}. */
export let EtcdError: typeof Errors.EtcdError
export type EtcdError = Errors.EtcdError
