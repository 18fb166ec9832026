/**
 * The parts of the API a program that only wants its slot never touches, loaded on first use: the FUSE
 * process manager (and with it `node:child_process`), PID files, the multi-process client and its config
 * helpers, slots on etcd. `require('procslot')` then costs the slot code and the native binding only.
 *
 * Each name is a getter on this module's exports. `index.ts` re-exports them, and the compiled
 * `index.js` reads them through getters of the form Node's cjs-module-lexer recognizes, so
 * `import { FuseProcessManager } from 'procslot'` works from ESM (there every name is read, and so loaded,
 * at import: ESM imports of a CommonJS module are not lazy).
 */
import type * as Client from './client'
import type * as Config from './config'
import type * as Etcd from './etcd'
import type * as Manager from './manager'
import type * as PidFile from './pidfile'

/** Defines each of `names` on this module's exports as a getter that loads `load()` on first use. */
function lazy(names: readonly string[], load: () => Record<string, unknown>): void {
  for (const name of names) {
    Object.defineProperty(exports, name, { enumerable: true, configurable: true, get: () => load()[name] })
  }
}

// `require` is Node's module cache: each module loads once, on the first read of any of its names.
lazy(['FuseProcessManager'], () => require('./manager'))
lazy(['PidFileStore'], () => require('./pidfile'))
lazy(['MultiProcessClient', 'newClient', 'newMultiProcessClient', 'newMultiProcessClientWithFile'], () =>
  require('./client'),
)
lazy(['defaultConfig', 'multiProcessConfig', 'acquireMultiProcessConfig'], () => require('./config'))
lazy(['EtcdSlotTable'], () => require('./etcd'))

/**
 * Spawns long-running daemons (FUSE mount daemons first of all), tracks each in memory and in a PID file,
 * kills them gracefully, and finds them again after a restart. See {@link Manager.FuseProcessManager}.
 */
export declare const FuseProcessManager: typeof Manager.FuseProcessManager
export type FuseProcessManager = Manager.FuseProcessManager
/** Reads and writes the PID files of a directory. See {@link PidFile.PidFileStore}. */
export declare const PidFileStore: typeof PidFile.PidFileStore
export type PidFileStore = PidFile.PidFileStore
/**
 * A client of one process of a fleet: its ID, the fleet's size, its data directory and the shards it
 * owns. See {@link Client.MultiProcessClient}.
 */
export declare const MultiProcessClient: typeof Client.MultiProcessClient
export type MultiProcessClient = Client.MultiProcessClient
/** Creates `dataDir` and opens a client with `config` exactly as given. See {@link Client.newClient}. */
export declare const newClient: typeof Client.newClient
/**
 * Opens a client that is one process of a fleet, its ID from a slot file unless `config` gives one. See
 * {@link Client.newMultiProcessClient}.
 */
export declare const newMultiProcessClient: typeof Client.newMultiProcessClient
/** {@link newMultiProcessClient} with its ID from `slotsFile`. See {@link Client.newMultiProcessClientWithFile}. */
export declare const newMultiProcessClientWithFile: typeof Client.newMultiProcessClientWithFile
/** The single-process config (a fresh object). See {@link Config.defaultConfig}. */
export declare const defaultConfig: typeof Config.defaultConfig
/** A multi-process config with the given ID and count (a fresh object). See {@link Config.multiProcessConfig}. */
export declare const multiProcessConfig: typeof Config.multiProcessConfig
/** A multi-process config whose ID is this process's slot in a file. See {@link Config.acquireMultiProcessConfig}. */
export declare const acquireMultiProcessConfig: typeof Config.acquireMultiProcessConfig
/**
 * The slot interface on etcd, for fleets spread over several hosts (needs the `etcd3` package). See
 * {@link Etcd.EtcdSlotTable}.
 */
export declare const EtcdSlotTable: typeof Etcd.EtcdSlotTable
export type EtcdSlotTable = Etcd.EtcdSlotTable
