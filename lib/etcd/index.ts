/**
 * Slots past one host: the slot interface on etcd. A slot is the key `<prefix>/<n>`, created in one
 * transaction only if absent and attached to a lease that its holder keeps alive. The holder watches its
 * own clock and gives the slot up (the `'lost'` event, the `lost` promise, `held` -1) before etcd could
 * expire the lease and let anyone else take it.
 *
 * The etcd v3 client is the `etcd3` package (gRPC through `@grpc/grpc-js`), an optional peer dependency
 * loaded on first use: programs that only use slot files never load it.
 */
export { EtcdSlotTable } from './table'
export type {
  EtcdAcquireOptions,
  EtcdSlotInfo,
  EtcdSlotTableEvents,
  EtcdSlotTableOptions,
  EtcdWaitOptions,
} from './types'
export type { EtcdClientConfig, EtcdConcurrencyOptions } from './client'
