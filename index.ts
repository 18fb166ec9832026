/**
 * procslot: small, unique, reusable worker IDs for every process of a Node.js fleet, from a
 * memory-mapped slot file with a lock lease per slot.
 *
 * @packageDocumentation
 */
import './lib/native'

export { DEFAULT_SLOTS_FILE, MAX_SLOTS, SlotTable, getProcessId, releaseProcessId } from './lib/slots'
export type { AcquireOptions, GetProcessIdOptions, SlotInfo, SlotTableOptions, WaitForSlotOptions } from './lib/slots'
// Loaded on first use (see lib/lazy.ts): a program that only wants its slot never loads them.
export {
  EtcdSlotTable,
  FuseProcessManager,
  MultiProcessClient,
  PidFileStore,
  acquireMultiProcessConfig,
  defaultConfig,
  multiProcessConfig,
  newClient,
  newMultiProcessClient,
  newMultiProcessClientWithFile,
} from './lib/lazy'
export type { AcquireConfigOptions, ConcurrencyConfig, Config, PartialConfig, WaitingConfig } from './lib/config'
export type { FrozenConfig } from './lib/client'
export type {
  EtcdAcquireOptions,
  EtcdClientConfig,
  EtcdConcurrencyOptions,
  EtcdSlotInfo,
  EtcdSlotTableEvents,
  EtcdSlotTableOptions,
  EtcdWaitOptions,
} from './lib/etcd'
export type { PidFileInfo } from './lib/pidfile'
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
} from './lib/manager'
export { EtcdError } from './lib/errors'
export type { EtcdErrorCode } from './lib/errors'
export {
  InvalidTargetIdError,
  PidFileError,
  ProcessError,
  ProcslotError,
  SlotFileError,
  SlotsExhaustedError,
  SpawnError,
  TargetLockedError,
} from './lib/errors'
export type { PidFileErrorCode, SlotFileErrorCode, SpawnFailure } from './lib/errors'
