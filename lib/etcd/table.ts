/**
 * The table: slots `0..slots-1` under a key prefix, taken in transactions on the table's one lease.
 */
import { EventEmitter } from 'node:events'
import type * as Os from 'node:os'

import type * as Etcd3 from 'etcd3'

import { EtcdError, SlotsExhaustedError, type EtcdErrorCode } from '../errors'
import { checkInteger, checkMs, checkObject, checkSignal } from '../validate'
import { stamp } from './clock'
import { loadEtcd3, newClient, type Client, type Etcd3Module } from './connect'
import { HeldLease } from './lease'
import { checkOptions, type Settings } from './options'
import { PrefixWatch } from './watch'
import type { EtcdAcquireOptions, EtcdSlotInfo, EtcdSlotTableEvents, EtcdSlotTableOptions, EtcdWaitOptions } from './types'

interface Hold {
  readonly slot: number
  /** The table's lease when the slot was taken: the key is attached to it. */
  readonly lease: HeldLease
  /** The key's create revision. */
  readonly revision: string
}

/** A claim's outcome: the slot taken (`-1`: every slot is held), or the lease is gone (take a new one). */
type Claim = { readonly slot: number; readonly revision: string } | 'lease gone'

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
 * The table has one lease, granted at its first `acquire` (or `waitForSlot`) and kept alive until
 * {@link EtcdSlotTable.close} revokes it, also while the table holds no slot: taking a slot is one
 * transaction on it, and a release deletes the key only. A lease that runs out while the table holds no
 * slot (the process was stopped past the TTL, etcd was out of reach) loses nothing: the next `acquire`
 * grants a new one.
 *
 * An open table keeps the process running (it holds a connection and, once it has a lease, sends
 * keep-alives) until {@link EtcdSlotTable.close}.
 */
export class EtcdSlotTable extends EventEmitter<EtcdSlotTableEvents> {
  readonly #settings: Settings
  readonly #lib: Etcd3Module
  readonly #client: Client
  readonly #record: () => HolderRecord
  #hold: Hold | null = null
  /**
   * The table's lease, or `null` before the first claim and after one was given up. While it is the
   * table's lease, no key is attached to it but the held slot's and the one a claim in progress may create:
   * whatever leaves a key behind otherwise (a release, a claim or a wait that failed) gives the lease up.
   */
  #lease: HeldLease | null = null
  /** Keep-alives of the leases given up. */
  readonly #pastKeepAlives = { sent: 0, acked: 0 }
  #lost: { promise: Promise<EtcdError>; resolve: (e: EtcdError) => void }
  #queue: Promise<unknown> = Promise.resolve()
  #closing: Promise<void> | null = null
  readonly #waits = new Set<(err: Error) => void>()

  private constructor(settings: Settings, lib: Etcd3Module, client: Client) {
    super()
    this.#settings = settings
    this.#lib = lib
    this.#client = client
    // node:os loads here, with the first table, not with the class (every name is read at an ESM import).
    const host = (require('node:os') as typeof Os).hostname()
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

  /**
   * Keep-alive requests this table has sent and etcd acknowledged, over every lease it has had (`{ sent: 0,
   * acked: 0 }` before its first acquire).
   */
  get keepAlives(): { sent: number; acked: number } {
    const lease = this.#lease
    const past = this.#pastKeepAlives
    return { sent: past.sent + (lease?.sent ?? 0), acked: past.acked + (lease?.acked ?? 0) }
  }

  /**
   * Takes a slot: the one this table holds already, else `preferred` if it is free, else the lowest free
   * one. One transaction on the table's lease when the first guess is free; a lost race costs one more
   * transaction. The first acquire also grants the lease, as does an acquire after the lease was lost or
   * ran out while the table held no slot.
   *
   * @returns the slot, 0-based
   * @throws {SlotsExhaustedError} (`ESLOTSFULL`) when every slot is held
   * @throws {EtcdError} `EETCDUNAVAILABLE`, `ECLOSED`, `EETCD`; `ELEASELOST` when the table's lease ran
   *   out while the slot was being claimed, or etcd did not know a lease just granted (no slot is held then)
   */
  acquire(options: EtcdAcquireOptions = {}): Promise<number> {
    const preferred = this.#preferred(options)
    return this.#serial(async () => {
      const held = this.held
      if (held >= 0) return held
      // A lease etcd no longer knows (revoked behind the table while it held no slot) is replaced once.
      for (let attempt = 1; ; attempt++) {
        const lease = await this.#leaseForClaim()
        let claim: Claim
        try {
          claim = await this.#claim(lease, preferred)
        } catch (err) {
          // The transaction's answer is unknown: a key may have been created on the lease.
          this.#giveUp(lease)
          throw err
        }
        if (claim === 'lease gone') {
          this.#giveUp(lease)
          if (attempt < 2) continue
          throw this.#leaseGone()
        }
        if (claim.slot < 0) throw this.#exhausted()
        return this.#took(lease, claim)
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
      let lease = await this.#leaseForClaim()
      // Whether the wait is parked on the watch: no claim of it is in flight, so no key can appear on the
      // lease after it ends.
      let parked = false
      let wake: (() => void) | null = null
      let deletes = 0
      // Referenced from the moment it is made, and ended (at once, on this side) when the wait ends.
      let watch: PrefixWatch | null = null
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
          // The lease ran out or went stale while we waited (etcd out of reach longer than its window):
          // a new one.
          lease = await this.#leaseForClaim()
          const claim = await Promise.race([this.#claim(lease, preferred), stopped])
          if (claim === 'lease gone') {
            this.#giveUp(lease)
            continue
          }
          if (claim.slot >= 0) return this.#took(lease, claim)
          if (watch === null) {
            // Every delete after the revision just read: nothing freed in between is missed.
            const from = BigInt(claim.revision) + 1n
            const w: PrefixWatch = new PrefixWatch(this.#client, this.#lib.FilterType.Noput, this.#range(), from, {
              deleted: () => {
                deletes++
                wake?.()
              },
              // A compacted start revision: read again and watch anew.
              reset: () => {
                if (watch === w) watch = null
                deletes++
                wake?.()
              },
            })
            watch = w
          }
          if (deletes === seen) {
            parked = true
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), stopped])
            parked = false
            wake = null
          }
        }
      } catch (err) {
        // Ended by a timeout, an abort or close() while it waited: the lease has no key of ours and stays.
        // Ended during a claim (or by its failure): the claim may still create a key, so the lease goes.
        if (!parked) this.#giveUp(lease)
        throw err
      } finally {
        ;(watch as PrefixWatch | null)?.end()
        this.#waits.delete(stop!)
        if (timer) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
    })
  }

  /**
   * Gives the held slot back: deletes its key (only while it is still attached to this table's lease), in
   * one transaction. The lease stays, for the next acquire.
   *
   * @returns `true` if a slot was held; `false` otherwise (idempotent)
   * @throws {EtcdError} `EETCDUNAVAILABLE` when etcd cannot be reached: the slot is then no longer used by
   *   this table, which gives its lease up (the next acquire grants a new one), and it frees itself when
   *   the lease expires, within `ttlSeconds`
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
   * Ends pending waits (`ECLOSED`), revokes the table's lease — which deletes the held slot's key with
   * it — and closes the connection. When etcd cannot be reached, the lease, and so the slot, expires on its
   * own within the TTL. Idempotent; every call returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    const queue = this.#queue
    this.#closing = (async () => {
      await queue.catch(() => {})
      this.#hold = null
      const lease = this.#lease
      try {
        if (lease) {
          this.#forget(lease)
          await this.#revoke(lease)
        }
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

  /**
   * The lease to claim a slot on: the table's, while it is {@link HeldLease.usable}; else (none yet, or it
   * ran out or went stale — the table holds no slot on it, or `held` would have reported the loss) a new
   * one, which becomes the table's.
   */
  async #leaseForClaim(): Promise<HeldLease> {
    const lease = this.#lease
    if (lease?.usable()) return lease
    if (lease) this.#giveUp(lease) // (if its loss has not given it up already)
    const granted = await this.#grant()
    this.#lease = granted
    return granted
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
      // No slot on it: nothing is lost; the next claim takes a new lease.
      else this.#giveUp(lease!)
    })
    return lease
  }

  /**
   * Stops using the table's lease `lease`: it is no longer the table's, its keep-alives end, and it is
   * revoked in the background. Nothing if it is no longer the table's (given up already).
   */
  #giveUp(lease: HeldLease): void {
    if (this.#lease !== lease) return
    this.#forget(lease)
    void this.#revokeQuietly(lease)
  }

  /** Makes `lease` no longer the table's (if it was), keeping its keep-alive counts. */
  #forget(lease: HeldLease): void {
    if (this.#lease !== lease) return
    this.#lease = null
    this.#pastKeepAlives.sent += lease.sent
    this.#pastKeepAlives.acked += lease.acked
  }

  #leaseGone(): EtcdError {
    return new EtcdError(`etcd slots ${this.prefix}: etcd no longer knows the lease of the table`, this.#details('ELEASELOST'))
  }

  /**
   * Tries to create the key of `preferred` (or slot 0), then of the lowest free slot, each in a
   * transaction that succeeds only if the key is absent, until one succeeds or none is free. A failed
   * transaction returns the whole prefix, so each retry works from a fresh view. `'lease gone'` when the
   * lease ran out by the clock before a transaction, or etcd answers that it does not know it (then the
   * transaction wrote nothing).
   */
  async #claim(lease: HeldLease, preferred: number | undefined): Promise<Claim> {
    const value = Buffer.from(JSON.stringify(this.#record()))
    let candidate = preferred !== undefined && preferred < this.size ? preferred : 0
    for (;;) {
      if (!lease.check()) return 'lease gone'
      const key = this.#key(candidate)
      let res: Etcd3.ITxnResponse
      try {
        res = await this.#client.kv.txn({
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key, value, lease: lease.id } }],
          failure: [{ request_range: this.#range() }],
        })
      } catch (err) {
        if (err instanceof this.#lib.EtcdLeaseInvalidError) return 'lease gone'
        throw this.#error(err, 'claiming a slot')
      }
      if (res.succeeded) return { slot: candidate, revision: res.header.revision }
      const taken = new Set<number>()
      for (const kv of res.responses[0]?.response_range?.kvs ?? []) {
        const slot = this.#slotOf(kv.key)
        // Ours already: a transaction whose answer was lost and was tried again on another endpoint (the
        // only key a claim can find on the table's lease; see #lease).
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
      // The transaction took longer than the lease's valid window: the key may outlive our claim. The
      // lease goes (and the key with it, if etcd answers the revoke).
      this.#giveUp(lease)
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
    // Let the slot go at once if etcd still has it (we no longer claim it either way); the next acquire
    // takes a new lease.
    this.#giveUp(hold.lease)
    const lost = this.#lost
    this.#lost = deferred()
    lost.resolve(err)
    this.emit('lost', err)
  }

  async #release(): Promise<boolean> {
    const hold = this.#hold
    if (!hold) return false
    this.#hold = null
    const key = this.#key(hold.slot)
    try {
      await this.#call('releasing a slot', () =>
        this.#client.kv.txn({
          compare: [{ key, target: 'Lease', result: 'Equal', lease: hold.lease.id }],
          success: [{ request_delete_range: { key } }],
        }),
      )
    } catch (err) {
      // The key may still be there: let the lease expire (or be revoked, if etcd answers that), and the
      // slot with it.
      this.#giveUp(hold.lease)
      throw err
    }
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
