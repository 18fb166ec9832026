/**
 * The table: slots `0..slots-1` under a key prefix, taken in transactions on the table's one lease. The
 * table owns its hold of a slot (taken, released, lost) and composes the rest: the key layout (keys.ts),
 * the claim (claim.ts), the wait (wait.ts), the table's lease (table-lease.ts) and its errors (failures.ts).
 */
import { EventEmitter } from 'node:events'

import type { EtcdError } from '../errors'
import { checkInteger, checkMs, checkObject, checkSignal } from '../validate'
import { claimSlot, type Claim, type Claimer, type Taken } from './claim'
import { loadEtcd3, newClient, type Client, type Etcd3Module } from './connect'
import { Failures } from './failures'
import { freeSlot, heldSlot, holderRecords, slotKey, slotOf, slotRange } from './keys'
import type { HeldLease } from './lease'
import { checkOptions, type Settings } from './options'
import { TableLease } from './table-lease'
import { waitForSlot, type WaitSteps } from './wait'
import { PrefixWatch } from './watch'
import type { EtcdAcquireOptions, EtcdSlotInfo, EtcdSlotTableEvents, EtcdSlotTableOptions, EtcdWaitOptions } from './types'

interface Hold {
  readonly slot: number
  /** The table's lease when the slot was taken: the key is attached to it. */
  readonly lease: HeldLease
  /** The key's create revision. */
  readonly revision: string
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
  readonly #client: Client
  readonly #failures: Failures
  readonly #lease: TableLease
  /** What a claim runs on (the table's connection, errors and holder record). */
  readonly #claimer: Claimer
  /** What a wait does with this table. */
  readonly #waitSteps: WaitSteps
  #hold: Hold | null = null
  #lost: { promise: Promise<EtcdError>; resolve: (e: EtcdError) => void }
  #queue: Promise<unknown> = Promise.resolve()
  #closing: Promise<void> | null = null
  readonly #waits = new Set<(err: Error) => void>()

  private constructor(settings: Settings, lib: Etcd3Module, client: Client) {
    super()
    this.#settings = settings
    this.#client = client
    const failures = new Failures(settings, lib)
    this.#failures = failures
    this.#lease = new TableLease(settings, lib, client, failures, (lease, reason, cause) => {
      if (this.#hold?.lease === lease) this.#lose(this.#hold, reason, cause)
      // No slot on it: nothing is lost; the next claim takes a new lease.
      else this.#lease.giveUp(lease)
    })
    this.#claimer = { settings, lib, client, failures, record: holderRecords() }
    this.#waitSteps = {
      lease: () => this.#lease.forClaim(),
      claim: (lease, preferred) => claimSlot(this.#claimer, lease, preferred),
      giveUp: (lease) => this.#lease.giveUp(lease),
      took: (lease, taken) => this.#took(lease, taken),
      watch: (from, events) => new PrefixWatch(client, lib.FilterType.Noput, slotRange(settings), from, events),
      timedOut: () => failures.exhausted(),
      closed: () => (this.#closing ? failures.closed() : null),
      waits: this.#waits,
    }
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
      throw table.#failures.from(err, 'connecting')
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
    return this.#lease.keepAlives
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
        const lease = await this.#lease.forClaim()
        let claim: Claim
        try {
          claim = await claimSlot(this.#claimer, lease, preferred)
        } catch (err) {
          // The transaction's answer is unknown: a key may have been created on the lease.
          this.#lease.giveUp(lease)
          throw err
        }
        if (claim === 'lease gone') {
          this.#lease.giveUp(lease)
          if (attempt < 2) continue
          throw this.#failures.leaseGone()
        }
        if (claim.slot < 0) throw this.#failures.exhausted()
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
      return waitForSlot(this.#waitSteps, preferred, timeoutMs, signal)
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
      return Promise.reject(this.#failures.closed())
    }
    return (async () => {
      const mine = this.#hold && this.#hold.lease.check() ? this.#hold : null
      const res = await this.#failures.call('reading the slots', () => this.#client.kv.range(slotRange(this.#settings)))
      const slots: EtcdSlotInfo[] = Array.from({ length: this.size }, (_, slot) => freeSlot(slot))
      for (const kv of res.kvs) {
        const slot = slotOf(this.#settings, kv.key)
        if (slot < 0) continue
        slots[slot] = heldSlot(slot, kv, mine !== null && mine.slot === slot ? mine.lease.id : null)
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
      try {
        await this.#lease.revoke()
      } catch {
        // Unreachable etcd: the lease expires on its own within the TTL.
      } finally {
        this.#client.close()
      }
    })()
    for (const stop of this.#waits) stop(this.#failures.closed())
    return this.#closing
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
      return Promise.reject(this.#failures.closed())
    }
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return run
  }

  #took(lease: HeldLease, { slot, revision }: Taken): number {
    if (!lease.check()) {
      // The transaction took longer than the lease's valid window: the key may outlive our claim. The
      // lease goes (and the key with it, if etcd answers the revoke).
      this.#lease.giveUp(lease)
      throw this.#failures.leaseRanOut(slot)
    }
    this.#hold = { slot, lease, revision }
    return slot
  }

  #lose(hold: Hold, reason: string, cause?: unknown): void {
    this.#hold = null
    const err = this.#failures.lost(hold.slot, reason, cause)
    // Let the slot go at once if etcd still has it (we no longer claim it either way); the next acquire
    // takes a new lease.
    this.#lease.giveUp(hold.lease)
    const lost = this.#lost
    this.#lost = deferred()
    lost.resolve(err)
    this.emit('lost', err)
  }

  async #release(): Promise<boolean> {
    const hold = this.#hold
    if (!hold) return false
    this.#hold = null
    const key = slotKey(this.#settings, hold.slot)
    try {
      await this.#failures.call('releasing a slot', () =>
        this.#client.kv.txn({
          compare: [{ key, target: 'Lease', result: 'Equal', lease: hold.lease.id }],
          success: [{ request_delete_range: { key } }],
        }),
      )
    } catch (err) {
      // The key may still be there: let the lease expire (or be revoked, if etcd answers that), and the
      // slot with it.
      this.#lease.giveUp(hold.lease)
      throw err
    }
    return true
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}
