/**
 * Slots past one host: the slot interface on etcd. A slot is the key `<prefix>/<n>`, created in one
 * transaction only if absent and attached to a lease that its holder keeps alive. The holder watches its
 * own clock and gives the slot up (the `'lost'` event, the `lost` promise, `held` -1) before etcd could
 * expire the lease and let anyone else take it.
 *
 * The etcd v3 client is the `etcd3` package (gRPC through `@grpc/grpc-js`), an optional peer dependency
 * loaded on first use: programs that only use slot files never load it.
 */
import { EventEmitter } from 'node:events'
import { mkdirSync } from 'node:fs'
import { hostname } from 'node:os'
import { performance } from 'node:perf_hooks'

import type * as Etcd3 from 'etcd3'

import { MultiProcessClient } from './client'
import { DEFAULT_SLOTS_FILE } from './slots'
import { EtcdError, SlotsExhaustedError, type EtcdErrorCode } from './errors'
import {
  checkFunction,
  checkInteger,
  checkMs,
  checkObject,
  checkSignal,
  checkString,
  invalidType,
  invalidValue,
} from './validate'

/** The most slots an etcd table may have (a range read lists them all). */
const MAX_ETCD_SLOTS = 65_536

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

// ---------------------------------------------------------------------------------------------------
// Validation (lib/validate.ts: Node's argument error codes)

interface Settings {
  readonly endpoints: readonly string[]
  readonly prefix: string
  readonly slots: number
  readonly ttlSeconds: number
  readonly marginMs: number
  readonly callTimeoutMs: number
}

function checkOptions(options: unknown, where = 'options'): Settings {
  const o = checkObject<Record<string, unknown>>(where, options)
  const list = typeof o.endpoints === 'string' ? [o.endpoints] : o.endpoints
  if (!Array.isArray(list)) throw invalidType(`${where}.endpoints`, 'a string or an array of strings', o.endpoints)
  if (list.length === 0) throw invalidValue(`${where}.endpoints`, list, 'must name at least one endpoint')
  list.forEach((e, i) => checkString(`${where}.endpoints[${i}]`, e))
  const prefix = checkString(`${where}.prefix`, o.prefix).replace(/\/+$/, '')
  if (prefix.length === 0) throw invalidValue(`${where}.prefix`, o.prefix, 'must have more than slashes')
  const slots = checkInteger(`${where}.slots`, o.slots, 1, MAX_ETCD_SLOTS)
  const ttlSeconds = o.ttlSeconds === undefined ? 10 : checkInteger(`${where}.ttlSeconds`, o.ttlSeconds, 1, 86_400)
  const ttlMs = ttlSeconds * 1000
  const marginMs =
    o.marginMs === undefined ? Math.max(500, ttlMs / 5) : checkInteger(`${where}.marginMs`, o.marginMs, 1, Math.floor(ttlMs / 2))
  const callTimeoutMs = o.callTimeoutMs === undefined ? 5000 : checkInteger(`${where}.callTimeoutMs`, o.callTimeoutMs, 1, 600_000)
  for (const key of ['credentials', 'auth', 'grpcOptions'] as const) {
    if (o[key] !== undefined) checkObject(`${where}.${key}`, o[key])
  }
  return {
    endpoints: Object.freeze([...(list as string[])]),
    prefix,
    slots,
    ttlSeconds,
    marginMs: Math.min(marginMs, ttlMs / 2),
    callTimeoutMs,
  }
}

// ---------------------------------------------------------------------------------------------------
// The holder's clock

/**
 * A moment on this process's clocks: the monotonic clock (never steps, keeps running while the process is
 * stopped) and the wall clock (also counts a suspend of the whole machine, during which the monotonic clock
 * stands still). Elapsed time is the larger of the two: a wall clock stepped back is ignored, one stepped
 * forward can only make the holder give up early — the safe side.
 */
interface Stamp {
  readonly mono: number
  readonly wall: number
}

function stamp(): Stamp {
  return { mono: performance.now(), wall: Date.now() }
}

function elapsedSince(s: Stamp): number {
  return Math.max(performance.now() - s.mono, Date.now() - s.wall)
}

// ---------------------------------------------------------------------------------------------------
// The etcd3 client, loaded on first use

type Etcd3Module = typeof Etcd3
type Client = Etcd3.Etcd3

let etcd3: Promise<Etcd3Module> | undefined

function loadEtcd3(settings: Settings): Promise<Etcd3Module> {
  etcd3 ??= import('etcd3').then((m) => ((m as { default?: Etcd3Module }).default?.Etcd3 ? m.default! : m))
  return etcd3.catch((err: unknown) => {
    etcd3 = undefined
    throw new EtcdError(
      'slots on etcd need the etcd3 package, an optional peer dependency of procslot: npm install etcd3',
      { code: 'EETCDCLIENT', prefix: settings.prefix, endpoints: settings.endpoints, cause: err },
    )
  })
}

/** A fault-handling policy of the etcd3 client, reduced to what its connection pool calls. */
type Policy = { execute<T>(fn: (context: { attempt: number; signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> }

function newClient(lib: Etcd3Module, settings: Settings, options: Record<string, unknown>): Client {
  const never = new AbortController().signal
  // No per-host circuit breaker (the default one shuts a restarted endpoint out for 5 s). A call that
  // fails for a transient reason (unreachable, no leader during an election, a deadline) is tried again on
  // the next endpoint, after a pause growing from 50 ms to 1 s, until callTimeoutMs has passed since its
  // first try. Transactions are safe to repeat: a claim finds its own key (see #claim).
  const host: Policy = { execute: async (fn) => fn({ attempt: 0, signal: never }) }
  const global: Policy = {
    async execute(fn) {
      const start = performance.now()
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({ attempt, signal: never })
        } catch (err) {
          const pause = Math.min(1000, 50 * 2 ** attempt)
          const budget = settings.callTimeoutMs - (performance.now() - start)
          if (!lib.isRecoverableError(err as Error) || pause >= budget) throw err
          await new Promise((resolve) => setTimeout(resolve, pause))
        }
      }
    },
  }
  const constantBackoff = { duration: 200, next: () => constantBackoff }
  return new lib.Etcd3({
    hosts: [...settings.endpoints],
    dialTimeout: settings.callTimeoutMs,
    credentials: options.credentials as Etcd3.IOptions['credentials'],
    auth: options.auth as Etcd3.IOptions['auth'],
    grpcOptions: {
      // Reconnect quickly after an etcd restart (gRPC's default backoff grows to two minutes).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      ...(options.grpcOptions as Record<string, string | number> | undefined),
    },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.callTimeoutMs }),
    faultHandling: {
      host: () => host as unknown as ReturnType<NonNullable<NonNullable<Etcd3.IOptions['faultHandling']>['host']>>,
      global: global as unknown as NonNullable<NonNullable<Etcd3.IOptions['faultHandling']>['global']>,
      watchBackoff: constantBackoff as unknown as NonNullable<NonNullable<Etcd3.IOptions['faultHandling']>['watchBackoff']>,
    },
  })
}

// ---------------------------------------------------------------------------------------------------
// One held lease: keep-alives, and the holder's own deadline

type KeepAliveStream = Awaited<ReturnType<Client['leaseClient']['leaseKeepAlive']>>

/**
 * A lease this process holds, kept alive over one keep-alive stream. It is valid until `ttl - margin`
 * after the send time of the last request etcd acknowledged (the grant, then each keep-alive): etcd
 * extended the lease to at least that send time plus the TTL, since it processed the request after it
 * was sent. Every look at the lease ({@link HeldLease.check}) compares that deadline with the clock
 * first, so a process that was stopped or starved learns it is late at its first step, whatever its
 * timers do.
 */
class HeldLease {
  readonly id: string
  /** Keep-alive requests sent and acknowledged (for the benchmark). */
  sent = 0
  acked = 0
  readonly #client: Client
  readonly #marginMs: number
  readonly #intervalMs: number
  readonly #onLost: (reason: string, cause?: unknown) => void
  #basis: Stamp
  #ttlMs: number
  #pending: Stamp[] = []
  #stream: KeepAliveStream | null = null
  #opening = false
  #state: 'held' | 'lost' | 'ended' = 'held'
  readonly #tick: NodeJS.Timeout
  #expiry: NodeJS.Timeout | null = null
  #retry: NodeJS.Timeout | null = null

  constructor(
    client: Client,
    id: string,
    ttlMs: number,
    basis: Stamp,
    marginMs: number,
    onLost: (reason: string, cause?: unknown) => void,
  ) {
    this.#client = client
    this.id = id
    this.#ttlMs = ttlMs
    this.#basis = basis
    this.#marginMs = marginMs
    this.#onLost = onLost
    // Three keep-alives within the valid window: two may be lost before the holder gives up.
    this.#intervalMs = Math.max(100, Math.floor((ttlMs - marginMs) / 3))
    this.#tick = setInterval(() => this.#keepAlive(), this.#intervalMs)
    this.#armExpiry()
    this.#open()
  }

  /** Milliseconds until the holder must stop using the slot (negative: past). */
  remaining(): number {
    return this.#ttlMs - this.#marginMs - elapsedSince(this.#basis)
  }

  /** Whether the lease is still held; declares it lost (once) when its deadline has passed. */
  check(): boolean {
    if (this.#state !== 'held') return false
    const left = this.remaining()
    if (left > 0) return true
    this.#lose(`no keep-alive acknowledged for ${Math.round(this.#ttlMs - this.#marginMs - left)} ms`)
    return false
  }

  /** Stops keeping the lease alive (a release; the caller revokes it). */
  end(): void {
    if (this.#state === 'held') this.#state = 'ended'
    this.#teardown()
  }

  #lose(reason: string, cause?: unknown): void {
    if (this.#state !== 'held') return
    this.#state = 'lost'
    this.#teardown()
    this.#onLost(reason, cause)
  }

  #teardown(): void {
    clearInterval(this.#tick)
    if (this.#expiry) clearTimeout(this.#expiry)
    if (this.#retry) clearTimeout(this.#retry)
    this.#expiry = this.#retry = null
    this.#dropStream()
  }

  #armExpiry(): void {
    if (this.#expiry) clearTimeout(this.#expiry)
    // Unref'd: the keep-alive interval is what holds the process up while a slot is held.
    this.#expiry = setTimeout(() => {
      this.#expiry = null
      if (this.check()) this.#armExpiry()
    }, Math.max(0, this.remaining()) + 1)
    this.#expiry.unref()
  }

  #keepAlive(): void {
    if (!this.check()) return
    if (this.#stream === null) return this.#open()
    const oldest = this.#pending[0]
    if (oldest && elapsedSince(oldest) > this.#intervalMs) {
      // No answer within an interval: the connection is dead or stuck; open another (maybe to another
      // endpoint).
      this.#dropStream()
      return this.#open()
    }
    this.#send()
  }

  #send(): void {
    const stream = this.#stream
    if (!stream) return
    this.#pending.push(stamp())
    this.sent++
    stream.write({ ID: this.id })
  }

  #open(): void {
    if (this.#opening || this.#state !== 'held') return
    this.#opening = true
    this.#client.leaseClient.leaseKeepAlive().then(
      (stream) => {
        this.#opening = false
        if (this.#state !== 'held') return void stream.end()
        this.#stream = stream
        this.#pending = []
        stream.on('data', (res: Etcd3.ILeaseKeepAliveResponse) => this.#ack(stream, res))
        stream.on('error', () => this.#broken(stream))
        stream.on('end', () => this.#broken(stream))
        this.#send()
      },
      () => {
        this.#opening = false
        this.#scheduleRetry()
      },
    )
  }

  #broken(stream: KeepAliveStream): void {
    if (stream !== this.#stream) return
    this.#dropStream()
    this.#scheduleRetry()
  }

  #scheduleRetry(): void {
    if (this.#state !== 'held' || this.#retry) return
    this.#retry = setTimeout(() => {
      this.#retry = null
      if (this.check() && this.#stream === null) this.#open()
    }, Math.min(250, this.#intervalMs))
  }

  #dropStream(): void {
    const stream = this.#stream
    this.#stream = null
    this.#pending = []
    if (stream) {
      ;(stream as unknown as EventEmitter).removeAllListeners('data')
      stream.on('error', () => {})
      stream.end()
      // A gRPC call object: cancel it too, so a stream stuck on a dead connection does not linger.
      ;(stream as unknown as { cancel?: () => void }).cancel?.()
    }
  }

  #ack(stream: KeepAliveStream, res: Etcd3.ILeaseKeepAliveResponse): void {
    // The clock first: an answer read late (after a stop) cannot extend a lease that is already past.
    if (stream !== this.#stream || !this.check()) return
    const sent = this.#pending.shift()
    if (!sent) return
    const ttl = Number(res.TTL)
    if (!(ttl > 0)) return this.#lose('etcd no longer knows the lease (it expired or was revoked)')
    this.acked++
    if (sent.mono > this.#basis.mono) this.#basis = sent
    this.#ttlMs = ttl * 1000
    this.#armExpiry()
  }
}

// ---------------------------------------------------------------------------------------------------
// The table

interface Hold {
  readonly slot: number
  readonly lease: HeldLease
  /** The key's create revision. */
  readonly revision: string
}

/** The JSON value of a slot's key: who holds it. */
interface HolderRecord {
  host: string
  pid: number
  since: string
}

/**
 * Slots shared by the processes of many hosts through etcd: every process that opens a table on the same
 * endpoints and prefix takes a distinct slot `0..slots-1`. A slot is held while its holder keeps its
 * lease alive; the holder gives it up by {@link EtcdSlotTable.release} or {@link EtcdSlotTable.close},
 * loses it within `ttlSeconds` when it dies or is cut off, and learns of the loss — the `'lost'` event,
 * the {@link EtcdSlotTable.lost} promise, {@link EtcdSlotTable.held} `-1` — before etcd can give the
 * slot to anyone else. A table holds at most one slot at a time.
 *
 * An open table keeps the process running (it holds a connection and, while it holds a slot, sends
 * keep-alives) until {@link EtcdSlotTable.close}.
 */
export class EtcdSlotTable extends EventEmitter<EtcdSlotTableEvents> {
  readonly #settings: Settings
  readonly #lib: Etcd3Module
  readonly #client: Client
  readonly #record: () => HolderRecord
  #hold: Hold | null = null
  #lost: { promise: Promise<EtcdError>; resolve: (e: EtcdError) => void }
  #queue: Promise<unknown> = Promise.resolve()
  #closing: Promise<void> | null = null
  readonly #waits = new Set<(err: Error) => void>()

  private constructor(settings: Settings, lib: Etcd3Module, client: Client) {
    super()
    this.#settings = settings
    this.#lib = lib
    this.#client = client
    const host = hostname()
    this.#record = () => ({ host, pid: process.pid, since: new Date().toISOString() })
    this.#lost = deferred()
  }

  /**
   * Connects to etcd (one call answered, within `callTimeoutMs`) and returns a table that holds no slot
   * yet: call {@link EtcdSlotTable.acquire} or {@link EtcdSlotTable.waitForSlot}.
   *
   * @throws {TypeError | RangeError} for invalid options (`ERR_INVALID_ARG_TYPE`, `ERR_OUT_OF_RANGE`)
   * @throws {EtcdError} `EETCDUNAVAILABLE` when no endpoint answers; `EETCDCLIENT` when the `etcd3`
   *   package is not installed; `EETCD` when etcd refuses the call (authentication, permissions)
   */
  static async open(options: EtcdSlotTableOptions): Promise<EtcdSlotTable> {
    const settings = checkOptions(options)
    const lib = await loadEtcd3(settings)
    const client = newClient(lib, settings, options as unknown as Record<string, unknown>)
    const table = new EtcdSlotTable(settings, lib, client)
    try {
      await client.kv.range({ key: Buffer.from(`${settings.prefix}/`), count_only: true })
    } catch (err) {
      client.close()
      throw table.#error(err, 'connecting')
    }
    return table
  }

  /** The key prefix: slot `n` is the key `<prefix>/<n>`. */
  get prefix(): string {
    return this.#settings.prefix
  }

  /** The number of slots (IDs `0..size-1`). */
  get size(): number {
    return this.#settings.slots
  }

  /** The endpoints, as given. */
  get endpoints(): readonly string[] {
    return this.#settings.endpoints
  }

  /** The lease TTL, in seconds. */
  get ttlSeconds(): number {
    return this.#settings.ttlSeconds
  }

  /**
   * The slot this table holds, or `-1` (none, released, or lost). Reading it compares the lease's deadline
   * with the clock: read it right before each use of the ID, and a holder that was stopped or cut off past
   * its deadline gets `-1` (and the loss is reported) instead of a stale ID.
   */
  get held(): number {
    const hold = this.#hold
    return hold && hold.lease.check() ? hold.slot : -1
  }

  /**
   * The held slot's fencing token, or `null` when none is held: the create revision of its key (a decimal
   * string). etcd's revisions only grow, so every later holder of any slot of the prefix has a larger
   * token: give it to the storage the ID guards, and let that refuse writes with a smaller token than it
   * has seen — the one protection that holds even for a use that outlasts the margin.
   */
  get token(): string | null {
    const hold = this.#hold
    return hold && hold.lease.check() ? hold.revision : null
  }

  /**
   * Milliseconds this table may still use its ID without hearing from etcd again (`0` when it holds none):
   * the time left before it gives the slot up.
   */
  get validForMs(): number {
    const hold = this.#hold
    return hold && hold.lease.check() ? Math.max(0, Math.floor(hold.lease.remaining())) : 0
  }

  /**
   * Resolves (never rejects) with an {@link EtcdError} `ELEASELOST` when the slot this table holds — or
   * the next one it takes — is lost. A slot given back by `release` or `close` is not lost.
   */
  get lost(): Promise<EtcdError> {
    return this.#lost.promise
  }

  /** Whether {@link EtcdSlotTable.close} was called. */
  get closed(): boolean {
    return this.#closing !== null
  }

  /** Keep-alive requests sent and acknowledged for the slot held now (`{ sent: 0, acked: 0 }` when none). */
  get keepAlives(): { sent: number; acked: number } {
    const lease = this.#hold?.lease
    return { sent: lease?.sent ?? 0, acked: lease?.acked ?? 0 }
  }

  /**
   * Takes a slot: the one this table holds already, else `preferred` if it is free, else the lowest free
   * one. One lease grant and one transaction when the first guess is free; a lost race costs one more
   * transaction.
   *
   * @returns the slot, 0-based
   * @throws {SlotsExhaustedError} (`ESLOTSFULL`) when every slot is held
   * @throws {EtcdError} `EETCDUNAVAILABLE`, `ECLOSED`, `EETCD`
   */
  acquire(options: EtcdAcquireOptions = {}): Promise<number> {
    const preferred = this.#preferred(options)
    return this.#serial(async () => {
      const held = this.held
      if (held >= 0) return held
      const lease = await this.#grant()
      try {
        const claim = await this.#claim(lease, preferred)
        if (claim.slot < 0) throw this.#exhausted()
        return this.#took(lease, claim)
      } catch (err) {
        await this.#revokeQuietly(lease)
        throw err
      }
    })
  }

  /**
   * Like {@link EtcdSlotTable.acquire}, but when every slot is held it watches the prefix (no polling)
   * and tries again as each slot is freed, until it gets one, `timeoutMs` passes (`SlotsExhaustedError`),
   * `signal` aborts (its reason) or the table is closed (`ECLOSED`).
   */
  waitForSlot(options: EtcdWaitOptions = {}): Promise<number> {
    const preferred = this.#preferred(options)
    const timeoutMs =
      options.timeoutMs === undefined || options.timeoutMs === Infinity ? Infinity : checkMs('options.timeoutMs', options.timeoutMs)
    const signal = options.signal === undefined ? undefined : checkSignal('options.signal', options.signal)
    return this.#serial(async () => {
      const held = this.held
      if (held >= 0) return held
      signal?.throwIfAborted()
      let lease = await this.#grant()
      let wake: (() => void) | null = null
      let deletes = 0
      let watcher: Etcd3.Watcher | null = null
      let finished = false
      let stop: ((err: Error) => void) | null = null
      const stopped = new Promise<never>((_, reject) => (stop = reject))
      stopped.catch(() => {})
      const onAbort = () => stop!(signal!.reason)
      signal?.addEventListener('abort', onAbort, { once: true })
      const timer = timeoutMs === Infinity ? null : setTimeout(() => stop!(this.#exhausted()), timeoutMs)
      this.#waits.add(stop!)
      // Closed while the lease was being granted: close() found no wait to end yet.
      if (this.#closing) stop!(this.#closedError())
      try {
        for (;;) {
          const seen = deletes
          if (!lease.check()) {
            // etcd was out of reach longer than the lease's window while we waited: start a new lease.
            void this.#revokeQuietly(lease)
            lease = await this.#grant()
          }
          const claim = await Promise.race([this.#claim(lease, preferred), stopped])
          if (claim.slot >= 0) return this.#took(lease, claim)
          if (watcher === null) {
            // Every delete after the revision just read: nothing freed in between is missed.
            const creating = this.#client
              .watch()
              .prefix(`${this.#settings.prefix}/`)
              .startRevision(String(Number(claim.revision) + 1))
              .create()
            // A watcher that arrives after the wait ended is cancelled.
            creating.then(
              (w) => void (finished && w.cancel().catch(() => {})),
              () => {},
            )
            watcher = await Promise.race([creating, stopped])
            const w: Etcd3.Watcher = watcher
            w.on('delete', () => {
              deletes++
              wake?.()
            })
            // A compacted start revision or a broken stream: read again and watch anew.
            w.on('error', () => {
              if (watcher === w) watcher = null
              deletes++
              wake?.()
              void w.cancel().catch(() => {})
            })
          }
          if (deletes === seen) {
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), stopped])
            wake = null
          }
        }
      } catch (err) {
        await this.#revokeQuietly(lease)
        throw err
      } finally {
        finished = true
        this.#waits.delete(stop!)
        if (timer) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (watcher) await (watcher as Etcd3.Watcher).cancel().catch(() => {})
      }
    })
  }

  /**
   * Gives the held slot back: deletes its key (only while it is still attached to this table's lease)
   * and revokes the lease.
   *
   * @returns `true` if a slot was held; `false` otherwise (idempotent)
   * @throws {EtcdError} `EETCDUNAVAILABLE` when etcd cannot be reached: the slot is then no longer used by
   *   this table and frees itself when the lease expires, within `ttlSeconds`
   */
  release(): Promise<boolean> {
    return this.#serial(() => this.#release())
  }

  /** Every slot `0..size-1` with its holder (one range read; it does not wait for a pending wait). */
  snapshot(): Promise<EtcdSlotInfo[]> {
    if (this.#closing) {
      return Promise.reject(this.#closedError())
    }
    return (async () => {
      const mine = this.#hold && this.#hold.lease.check() ? this.#hold : null
      const res = await this.#call('reading the slots', () => this.#client.kv.range(this.#range()))
      const slots: EtcdSlotInfo[] = Array.from({ length: this.size }, (_, slot) => ({
        slot,
        alive: false,
        host: null,
        pid: 0,
        since: null,
        self: false,
        lease: null,
        revision: null,
      }))
      for (const kv of res.kvs) {
        const slot = this.#slotOf(kv.key)
        if (slot < 0) continue
        let record: Partial<HolderRecord> = {}
        try {
          record = JSON.parse(kv.value.toString()) as Partial<HolderRecord>
        } catch {}
        const since = typeof record.since === 'string' ? new Date(record.since) : null
        slots[slot] = {
          slot,
          alive: true,
          host: typeof record.host === 'string' ? record.host : null,
          pid: typeof record.pid === 'number' ? record.pid : 0,
          since: since && !Number.isNaN(since.getTime()) ? since : null,
          self: mine !== null && mine.slot === slot && mine.lease.id === kv.lease,
          lease: kv.lease,
          revision: kv.create_revision,
        }
      }
      return slots
    })()
  }

  /**
   * Releases the held slot (if etcd answers; otherwise it frees itself within the TTL), ends pending
   * waits (`ECLOSED`) and closes the connection. Idempotent; every call returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    const queue = this.#queue
    this.#closing = (async () => {
      await queue.catch(() => {})
      try {
        await this.#release()
      } catch {
        // Unreachable etcd: the lease expires on its own within the TTL.
      } finally {
        this.#client.close()
      }
    })()
    for (const stop of this.#waits) stop(this.#closedError())
    return this.#closing
  }

  #closedError(): EtcdError {
    return new EtcdError(`etcd slots ${this.prefix}: the table was closed`, this.#details('ECLOSED'))
  }

  /** Calls {@link EtcdSlotTable.close}, for `await using table = await EtcdSlotTable.open(...)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // -------------------------------------------------------------------------------------------------

  #preferred(options: EtcdAcquireOptions): number | undefined {
    checkObject('options', options)
    return options.preferred === undefined
      ? undefined
      : checkInteger('options.preferred', options.preferred, 0, Number.MAX_SAFE_INTEGER)
  }

  /** Runs `fn` after every earlier call of this table: one acquire, release or snapshot at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closing) {
      return Promise.reject(this.#closedError())
    }
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return run
  }

  #details(code: EtcdErrorCode, slot?: number) {
    return { code, prefix: this.prefix, endpoints: this.endpoints, slot }
  }

  #error(err: unknown, doing: string): Error {
    if (err instanceof EtcdError || err instanceof SlotsExhaustedError) return err
    const e = err as Error
    const where = `etcd at ${this.endpoints.join(', ')}`
    if (e instanceof Error && this.#lib.isRecoverableError(e)) {
      return new EtcdError(`${where} is unreachable (${doing}): ${e.message}`, { ...this.#details('EETCDUNAVAILABLE'), cause: err })
    }
    return new EtcdError(`${where} refused ${doing}: ${e instanceof Error ? e.message : String(err)}`, {
      ...this.#details('EETCD'),
      cause: err,
    })
  }

  async #call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw this.#error(err, doing)
    }
  }

  #exhausted(): SlotsExhaustedError {
    const err = new SlotsExhaustedError(this.prefix, this.size)
    err.message =
      `etcd slots ${this.prefix}: all ${this.size} slots are held by live holders; ` +
      'open the tables with more slots or stop a holder'
    err.stack = `${err.name}: ${err.message}\n${err.stack?.split('\n').slice(1).join('\n') ?? ''}`
    return err
  }

  #key(slot: number): Buffer {
    return Buffer.from(`${this.prefix}/${slot}`)
  }

  /** The range of every key under `<prefix>/`. */
  #range(): Etcd3.IRangeRequest {
    return { key: Buffer.from(`${this.prefix}/`), range_end: Buffer.from(`${this.prefix}0`) }
  }

  #slotOf(key: Buffer): number {
    const rest = key.toString().slice(this.prefix.length + 1)
    if (!/^(0|[1-9][0-9]*)$/.test(rest)) return -1
    const slot = Number(rest)
    return slot < this.size ? slot : -1
  }

  /** Grants a lease and starts keeping it alive. */
  async #grant(): Promise<HeldLease> {
    const sent = stamp()
    const res = await this.#call('granting a lease', () =>
      this.#client.leaseClient.leaseGrant({ TTL: this.#settings.ttlSeconds, ID: 0 }),
    )
    if (res.error) throw new EtcdError(`etcd refused a lease: ${res.error}`, this.#details('EETCD'))
    // etcd may raise a TTL below its minimum: its answer is the TTL the lease has.
    const ttlMs = Number(res.TTL) * 1000
    let lease: HeldLease | null = null
    lease = new HeldLease(this.#client, res.ID, ttlMs, sent, this.#settings.marginMs, (reason, cause) => {
      if (this.#hold?.lease === lease) this.#lose(this.#hold, reason, cause)
      else void this.#revokeQuietly(lease!)
    })
    return lease
  }

  /**
   * Tries to create the key of `preferred` (or slot 0), then of the lowest free slot, each in a
   * transaction that succeeds only if the key is absent, until one succeeds or none is free. A failed
   * transaction returns the whole prefix, so each retry works from a fresh view.
   */
  async #claim(lease: HeldLease, preferred: number | undefined): Promise<{ slot: number; revision: string }> {
    const value = Buffer.from(JSON.stringify(this.#record()))
    let candidate = preferred !== undefined && preferred < this.size ? preferred : 0
    for (;;) {
      if (!lease.check()) {
        throw new EtcdError(`etcd slots ${this.prefix}: the lease ran out while claiming a slot`, this.#details('ELEASELOST'))
      }
      const key = this.#key(candidate)
      const res = await this.#call('claiming a slot', () =>
        this.#client.kv.txn({
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key, value, lease: lease.id } }],
          failure: [{ request_range: this.#range() }],
        }),
      )
      if (res.succeeded) return { slot: candidate, revision: res.header.revision }
      const taken = new Set<number>()
      for (const kv of res.responses[0]?.response_range?.kvs ?? []) {
        const slot = this.#slotOf(kv.key)
        // Ours already: a transaction whose answer was lost and was tried again on another endpoint.
        if (slot >= 0 && kv.lease === lease.id) return { slot, revision: kv.create_revision }
        taken.add(slot)
      }
      let next = -1
      if (preferred !== undefined && preferred < this.size && !taken.has(preferred)) next = preferred
      else for (let i = 0; i < this.size && next < 0; i++) if (!taken.has(i)) next = i
      if (next < 0) return { slot: -1, revision: res.header.revision }
      candidate = next
    }
  }

  #took(lease: HeldLease, { slot, revision }: { slot: number; revision: string }): number {
    if (!lease.check()) {
      // The transaction took longer than the lease's valid window: the key may outlive our claim.
      throw new EtcdError(`etcd slots ${this.prefix}: the lease ran out while claiming slot ${slot}`, this.#details('ELEASELOST', slot))
    }
    this.#hold = { slot, lease, revision }
    return slot
  }

  #lose(hold: Hold, reason: string, cause?: unknown): void {
    this.#hold = null
    const err = new EtcdError(`etcd slots ${this.prefix}: slot ${hold.slot} lost: ${reason}; stop using its ID`, {
      ...this.#details('ELEASELOST', hold.slot),
      cause,
    })
    const lost = this.#lost
    this.#lost = deferred()
    lost.resolve(err)
    this.emit('lost', err)
    // Let the slot go at once if etcd still has it (we no longer claim it either way).
    void this.#revokeQuietly(hold.lease)
  }

  async #release(): Promise<boolean> {
    const hold = this.#hold
    if (!hold) return false
    this.#hold = null
    hold.lease.end()
    const key = this.#key(hold.slot)
    await this.#call('releasing a slot', () =>
      this.#client.kv.txn({
        compare: [{ key, target: 'Lease', result: 'Equal', lease: hold.lease.id }],
        success: [{ request_delete_range: { key } }],
      }),
    )
    await this.#revoke(hold.lease)
    return true
  }

  async #revoke(lease: HeldLease): Promise<void> {
    lease.end()
    try {
      await this.#client.leaseClient.leaseRevoke({ ID: lease.id })
    } catch (err) {
      if (err instanceof this.#lib.EtcdLeaseInvalidError) return
      throw this.#error(err, 'revoking a lease')
    }
  }

  async #revokeQuietly(lease: HeldLease): Promise<void> {
    lease.end()
    try {
      await this.#revoke(lease)
    } catch {}
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

// ---------------------------------------------------------------------------------------------------
// newMultiProcessClient(dataDir, { concurrency: { etcd } })

/** `concurrency.etcd` of {@link newMultiProcessClient}: where the client takes its ID across hosts. */
export interface EtcdConcurrencyOptions extends EtcdSlotTableOptions {
  /** The slot to try first. */
  readonly preferred?: number
  /**
   * Wait up to this long for a free slot (milliseconds) instead of failing at once with
   * `SlotsExhaustedError`.
   *
   * @default 0
   */
  readonly waitMs?: number
  /** Aborts the wait for a free slot. */
  readonly signal?: AbortSignal
  /**
   * Called when the client's lease is lost ({@link EtcdError} `ELEASELOST`): the ID is no longer this
   * process's. Without it, the error is thrown as an uncaught exception, which ends the process unless
   * something handles it — an ID that may now be someone else's is never used silently.
   */
  readonly onLost?: (error: EtcdError) => void
}

/** A config for {@link newMultiProcessClient} that takes its ID from etcd. */
export interface EtcdClientConfig {
  readonly concurrency: { readonly etcd: EtcdConcurrencyOptions; readonly slotsFile?: string }
}

/** @internal Whether a config asks for an ID from etcd (then {@link newMultiProcessClient} is async). */
export function isEtcdConfig(config: unknown): config is EtcdClientConfig {
  if (typeof config !== 'object' || config === null) return false
  const concurrency = (config as { concurrency?: unknown }).concurrency
  return typeof concurrency === 'object' && concurrency !== null && (concurrency as { etcd?: unknown }).etcd !== undefined
}

/**
 * @internal The etcd form of {@link newMultiProcessClient}: takes a slot from etcd, creates `dataDir`, and
 * returns a client whose `close()` releases the slot and closes the table.
 */
export async function newEtcdMultiProcessClient(dataDir: string, config: EtcdClientConfig): Promise<MultiProcessClient> {
  const given = config.concurrency as Record<string, unknown>
  for (const field of ['processId', 'processCount'] as const) {
    if (given[field] !== undefined) {
      throw invalidValue(`config.concurrency.${field}`, given[field], 'cannot be given with config.concurrency.etcd (the ID comes from etcd)')
    }
  }
  const etcd = checkObject<EtcdConcurrencyOptions>('config.concurrency.etcd', given.etcd)
  if (etcd.onLost !== undefined) checkFunction('config.concurrency.etcd.onLost', etcd.onLost)
  if (etcd.signal !== undefined) checkSignal('config.concurrency.etcd.signal', etcd.signal)
  const waitMs = etcd.waitMs === undefined ? 0 : checkMs('config.concurrency.etcd.waitMs', etcd.waitMs)
  checkOptions(etcd, 'config.concurrency.etcd')

  const table = await EtcdSlotTable.open(etcd)
  try {
    const slot =
      waitMs > 0 || etcd.signal
        ? await table.waitForSlot({ preferred: etcd.preferred, timeoutMs: waitMs || Infinity, signal: etcd.signal })
        : await table.acquire({ preferred: etcd.preferred })
    mkdirSync(dataDir, { recursive: true })
    const onLost = etcd.onLost
    table.once('lost', (err) => {
      if (onLost) onLost(err)
      else
        process.nextTick(() => {
          throw err
        })
    })
    const concurrency = {
      processId: slot,
      processCount: table.size,
      slotsFile: typeof given.slotsFile === 'string' ? given.slotsFile : DEFAULT_SLOTS_FILE,
    }
    return MultiProcessClient.create(dataDir, concurrency, {
      slot,
      release: () => {
        table.removeAllListeners('lost')
        void table.close()
      },
    })
  } catch (err) {
    await table.close()
    throw err
  }
}
