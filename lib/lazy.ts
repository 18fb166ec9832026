/**
 * The parts of the API a program that only wants its slot never touches, loaded on first use: the FUSE
 * process manager (and with it `node:child_process`), PID files, the multi-process client and its config
 * helpers. `require('procslot')` then costs the slot code and the native binding only.
 *
 * Each name is a getter on this module's exports. `index.ts` re-exports them, and the compiled
 * `index.js` reads them through getters of the form Node's cjs-module-lexer recognizes, so
 * `import { FuseProcessManager } from 'procslot'` works from ESM (there every name is read, and so loaded,
 * at import: ESM imports of a CommonJS module are not lazy).
 */
import type * as Client from './client'
import type * as Config from './config'
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

/** {@link Manager.FuseProcessManager}: supervised daemons (FUSE mounts first of all) with PID files. */
export declare const FuseProcessManager: typeof Manager.FuseProcessManager
export type FuseProcessManager = Manager.FuseProcessManager
/** {@link PidFile.PidFileStore}: the PID files of a directory. */
export declare const PidFileStore: typeof PidFile.PidFileStore
export type PidFileStore = PidFile.PidFileStore
/** {@link Client.MultiProcessClient}: which process of a fleet this is, and which shards it owns. */
export declare const MultiProcessClient: typeof Client.MultiProcessClient
export type MultiProcessClient = Client.MultiProcessClient
/** {@link Client.newClient} */
export declare const newClient: typeof Client.newClient
/** {@link Client.newMultiProcessClient} */
export declare const newMultiProcessClient: typeof Client.newMultiProcessClient
/** {@link Client.newMultiProcessClientWithFile} */
export declare const newMultiProcessClientWithFile: typeof Client.newMultiProcessClientWithFile
/** {@link Config.defaultConfig} */
export declare const defaultConfig: typeof Config.defaultConfig
/** {@link Config.multiProcessConfig} */
export declare const multiProcessConfig: typeof Config.multiProcessConfig
/** {@link Config.acquireMultiProcessConfig} */
export declare const acquireMultiProcessConfig: typeof Config.acquireMultiProcessConfig
