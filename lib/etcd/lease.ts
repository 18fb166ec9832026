/**
 * One held lease: its keep-alives, and the holder's own deadline.
 */
import type { EventEmitter } from 'node:events'

import type * as Etcd3 from 'etcd3'

import { elapsedSince, stamp, type Stamp } from './clock'
import { endCall, type Client } from './connect'

type KeepAliveStream = Awaited<ReturnType<Client['leaseClient']['leaseKeepAlive']>>

/**
 * A lease this process holds, kept alive over one keep-alive stream: an open table's one lease, which the
 * slot it holds (if any) is attached to. It is valid until `ttl - margin` after the send time of the last
 * request etcd acknowledged (the grant, then each keep-alive): etcd extended the lease to at least that
 * send time plus the TTL, since it processed the request after it was sent. Every look at the lease
 * ({@link HeldLease.check}) compares that deadline with the clock first, so a process that was stopped or
 * starved learns it is late at its first step, whatever its timers do.
 */
export class HeldLease {
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

  /**
   * Whether a new claim may be made on the lease: it is held, and at least one keep-alive interval of its
   * window is left (at most one keep-alive went unanswered). A claim on a lease with less left could succeed
   * only to be given up moments later; the table grants a new lease instead.
   */
  usable(): boolean {
    return this.check() && this.remaining() >= this.#intervalMs
  }

  /** Whether the lease is still held; declares it lost (once) when its deadline has passed. */
  check(): boolean {
    if (this.#state !== 'held') return false
    const left = this.remaining()
    if (left > 0) return true
    this.#lose(`no keep-alive acknowledged for ${Math.round(this.#ttlMs - this.#marginMs - left)} ms`)
    return false
  }

  /** Stops keeping the lease alive, without declaring it lost (the table gives it up; the caller revokes it). */
  end(): void {
    if (this.#state === 'held') this.#state = 'ended'
    this.#teardown()
  }

  #lose(reason: string, cause?: unknown): void {
    if (this.#state !== 'held') return
    this.#state = 'lost'
    try {
      this.#teardown()
    } finally {
      this.#onLost(reason, cause)
    }
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
    // Unref'd: the keep-alive interval is what holds the process up while the lease is kept.
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
        // Ended while the stream was being opened: end it at once, or it keeps the process alive.
        if (this.#state !== 'held') return endCall(stream)
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
      endCall(stream)
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
