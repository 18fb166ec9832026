/**
 * The public option and result types of slots on etcd.
 */
import type { EtcdError } from '../errors'

/** How to reach etcd and which slots to use: the options of {@link EtcdSlotTable.open}. */
export interface EtcdSlotTableOptions {
  /**
   * The etcd endpoints (`host:port` or `http://host:port`; `https://` with `credentials`). Calls fail over
   * between them.
   */
  readonly endpoints: string | readonly string[]
  /**
   * The key prefix: slot `n` is the key `<prefix>/<n>`. Every holder of one fleet uses the same prefix and
   * the same `slots`.
   */
  readonly prefix: string
  /** How many slots the fleet has: IDs are `0..slots-1`. */
  readonly slots: number
  /**
   * The lease's time to live, in whole seconds: a holder that dies or is cut off loses its slot within
   * this time (plus etcd's expiry check, at most half a second). etcd raises TTLs below its minimum
   * (1.5 × its election timeout, 2 s by default).
   *
   * @default 10
   */
  readonly ttlSeconds?: number
  /**
   * How long before the lease could expire on the server the holder gives the slot up, in milliseconds:
   * the holder stops claiming its ID `ttlSeconds * 1000 - marginMs` after the send time of the last
   * keep-alive etcd acknowledged. It must cover the time a use of the ID takes after a check of
   * {@link EtcdSlotTable.held}, and any difference in clock rates (see the README, "Across hosts").
   *
   * @default max(500, ttlSeconds * 200): a fifth of the TTL
   */
  readonly marginMs?: number
  /**
   * How long one call to etcd (connect, grant, transaction, revoke) may keep trying, in milliseconds: a
   * call that fails for a transient reason (an endpoint down, no leader during an election) is tried again
   * on the next endpoint until this time has passed, then it rejects with `EETCDUNAVAILABLE`.
   *
   * @default 5000
   */
  readonly callTimeoutMs?: number
  /** TLS: the CA certificate, and the client's key and certificate for mutual TLS. */
  readonly credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer }
  /** etcd user and password, when authentication is on. */
  readonly auth?: { username: string; password: string }
  /** gRPC channel options, passed to `@grpc/grpc-js` as they are. */
  readonly grpcOptions?: Readonly<Record<string, string | number>>
}

/** Options of {@link EtcdSlotTable.acquire}. */
export interface EtcdAcquireOptions {
  /** The slot to try first (e.g. a Kubernetes StatefulSet ordinal); the lowest free one otherwise. */
  readonly preferred?: number
}

/** Options of {@link EtcdSlotTable.waitForSlot}. */
export interface EtcdWaitOptions extends EtcdAcquireOptions {
  /** How long to wait for a slot to free, in milliseconds; then it rejects with `SlotsExhaustedError`. @default Infinity */
  readonly timeoutMs?: number
  /** Aborts the wait: it rejects with the signal's reason. */
  readonly signal?: AbortSignal
}

/** One slot of an {@link EtcdSlotTable.snapshot}. */
export interface EtcdSlotInfo {
  /** The slot, 0-based. */
  readonly slot: number
  /** Whether someone holds it (its key exists: its lease is alive on the server). */
  readonly alive: boolean
  /** The holder's host name, or `null` when free. */
  readonly host: string | null
  /** The holder's PID on its host; `0` when free. */
  readonly pid: number
  /** When the holder took the slot (its own clock), or `null` when free. */
  readonly since: Date | null
  /** Whether this table holds it. */
  readonly self: boolean
  /** The holder's lease ID (decimal), or `null` when free. */
  readonly lease: string | null
  /**
   * The key's create revision (decimal), or `null` when free: it grows with every new holder of any slot,
   * so it can serve as a fencing token.
   */
  readonly revision: string | null
}

/** Events of an {@link EtcdSlotTable}. */
export interface EtcdSlotTableEvents {
  /** The held slot was lost ({@link EtcdError} `ELEASELOST`): stop using its ID at once. */
  lost: [error: EtcdError]
}
