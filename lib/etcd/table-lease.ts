/**
 * The table's one lease, over the table's life: granted on the first claim, kept until it is given up (a
 * key may have been left on it, or it ran out while no slot was held) or revoked by close, then granted
 * anew on the next claim.
 */
import { EtcdError } from '../errors'
import { stamp } from './clock'
import type { Client, Etcd3Module } from './connect'
import type { Failures } from './failures'
import { HeldLease } from './lease'
import type { Settings } from './options'

/**
 * The table's lease, or none before the first claim and after one was given up. While it is the table's
 * lease, no key is attached to it but the held slot's and the one a claim in progress may create:
 * whatever leaves a key behind otherwise (a release, a claim or a wait that failed) gives the lease up.
 */
export class TableLease {
  readonly #settings: Settings
  readonly #lib: Etcd3Module
  readonly #client: Client
  readonly #failures: Failures
  readonly #onLost: (lease: HeldLease, reason: string, cause?: unknown) => void
  #lease: HeldLease | null = null
  /** Keep-alives of the leases given up. */
  readonly #past = { sent: 0, acked: 0 }

  /** `onLost`: a lease of the table ran out by the clock, or etcd no longer knows it. */
  constructor(
    settings: Settings,
    lib: Etcd3Module,
    client: Client,
    failures: Failures,
    onLost: (lease: HeldLease, reason: string, cause?: unknown) => void,
  ) {
    this.#settings = settings
    this.#lib = lib
    this.#client = client
    this.#failures = failures
    this.#onLost = onLost
  }

  /** Keep-alive requests sent and acknowledged over every lease the table has had. */
  get keepAlives(): { sent: number; acked: number } {
    const lease = this.#lease
    return { sent: this.#past.sent + (lease?.sent ?? 0), acked: this.#past.acked + (lease?.acked ?? 0) }
  }

  /**
   * The lease to claim a slot on: the table's, while it is {@link HeldLease.usable}; else (none yet, or it
   * ran out or went stale — the table holds no slot on it, or `held` would have reported the loss) a new
   * one, which becomes the table's.
   */
  async forClaim(): Promise<HeldLease> {
    const lease = this.#lease
    if (lease?.usable()) return lease
    if (lease) this.giveUp(lease) // (if its loss has not given it up already)
    const granted = await this.#grant()
    this.#lease = granted
    return granted
  }

  /**
   * Stops using the table's lease `lease`: it is no longer the table's, its keep-alives end, and it is
   * revoked in the background. Nothing if it is no longer the table's (given up already).
   */
  giveUp(lease: HeldLease): void {
    if (this.#lease !== lease) return
    this.#forget(lease)
    void this.#revokeQuietly(lease)
  }

  /**
   * Revokes the table's lease, if it has one — which deletes the held slot's key with it — and waits for
   * etcd's answer: the table's close.
   *
   * @throws {EtcdError} when etcd cannot be reached (the lease then expires on its own within the TTL)
   */
  async revoke(): Promise<void> {
    const lease = this.#lease
    if (!lease) return
    this.#forget(lease)
    await this.#revoke(lease)
  }

  /** Grants a lease and starts keeping it alive. */
  async #grant(): Promise<HeldLease> {
    const sent = stamp()
    const res = await this.#failures.call('granting a lease', () =>
      this.#client.leaseClient.leaseGrant({ TTL: this.#settings.ttlSeconds, ID: 0 }),
    )
    if (res.error) throw new EtcdError(`etcd refused a lease: ${res.error}`, this.#failures.details('EETCD'))
    // etcd may raise a TTL below its minimum: its answer is the TTL the lease has.
    const ttlMs = Number(res.TTL) * 1000
    let lease: HeldLease | null = null
    lease = new HeldLease(this.#client, res.ID, ttlMs, sent, this.#settings.marginMs, (reason, cause) =>
      this.#onLost(lease!, reason, cause),
    )
    return lease
  }

  /** Makes `lease` no longer the table's (if it was), keeping its keep-alive counts. */
  #forget(lease: HeldLease): void {
    if (this.#lease !== lease) return
    this.#lease = null
    this.#past.sent += lease.sent
    this.#past.acked += lease.acked
  }

  async #revoke(lease: HeldLease): Promise<void> {
    lease.end()
    try {
      await this.#client.leaseClient.leaseRevoke({ ID: lease.id })
    } catch (err) {
      if (err instanceof this.#lib.EtcdLeaseInvalidError) return
      throw this.#failures.from(err, 'revoking a lease')
    }
  }

  async #revokeQuietly(lease: HeldLease): Promise<void> {
    lease.end()
    try {
      await this.#revoke(lease)
    } catch {}
  }
}
