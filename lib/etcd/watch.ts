/**
 * A waiting table's watch on the slots' prefix: one Watch call of its own, for deletes only.
 */
import type { EventEmitter } from 'node:events'

import type * as Etcd3 from 'etcd3'

import { endCall, type Client } from './connect'

type WatchStream = Awaited<ReturnType<Client['watchClient']['watch']>>

export interface PrefixWatchEvents {
  /** A key of the prefix was deleted: a slot may be free. */
  deleted(): void
  /** The watch can no longer report every delete (its start revision was compacted, or etcd cancelled it). */
  reset(): void
}

/**
 * Watches the keys in `range` for deletes from revision `from` on, and calls `events.deleted` for each
 * batch of deletes. A broken stream is opened again (after 100 ms, doubling up to 1 s) from the revision
 * after the last delete seen, so no delete is missed across a reconnection; when etcd refuses that
 * revision (compacted), `events.reset` is called and the watch ends.
 *
 * {@link PrefixWatch.end} ends it at once and for good: the call is cancelled on this side (no round trip,
 * so it cannot hang on an unresponsive etcd), a stream still being opened is ended when it arrives, and no
 * reconnection is left pending. Nothing of the watch outlives `end()`.
 */
export class PrefixWatch {
  readonly #client: Client
  readonly #range: Etcd3.IRangeRequest
  readonly #events: PrefixWatchEvents
  readonly #noPut: number
  #from: bigint
  #stream: WatchStream | null = null
  #opening = false
  #ended = false
  #retry: NodeJS.Timeout | null = null
  #backoffMs = 100

  constructor(client: Client, noPut: number, range: Etcd3.IRangeRequest, from: bigint, events: PrefixWatchEvents) {
    this.#client = client
    this.#noPut = noPut
    this.#range = range
    this.#from = from
    this.#events = events
    this.#open()
  }

  /** Ends the watch (idempotent). */
  end(): void {
    this.#ended = true
    if (this.#retry) clearTimeout(this.#retry)
    this.#retry = null
    this.#drop()
  }

  #open(): void {
    if (this.#ended || this.#opening) return
    this.#opening = true
    this.#client.watchClient.watch().then(
      (stream) => {
        this.#opening = false
        if (this.#ended) return endCall(stream)
        this.#stream = stream
        stream.on('data', (res: Etcd3.IWatchResponse) => this.#data(stream, res))
        stream.on('error', () => this.#broken(stream))
        stream.on('end', () => this.#broken(stream))
        stream.write({
          create_request: {
            key: this.#range.key,
            range_end: this.#range.range_end,
            start_revision: this.#from.toString(),
            filters: [this.#noPut],
          },
        })
      },
      () => {
        this.#opening = false
        this.#reopenLater()
      },
    )
  }

  #data(stream: WatchStream, res: Etcd3.IWatchResponse): void {
    if (stream !== this.#stream) return
    if (res.canceled) {
      // A compacted start revision (or a cancel by etcd): this watch cannot see every delete any more.
      this.end()
      return this.#events.reset()
    }
    if (res.created) this.#backoffMs = 100
    const events = res.events ?? []
    if (events.length === 0) return
    for (const ev of events) {
      const next = BigInt(ev.kv.mod_revision) + 1n
      if (next > this.#from) this.#from = next
    }
    this.#events.deleted()
  }

  #broken(stream: WatchStream): void {
    if (stream !== this.#stream) return
    this.#drop()
    this.#reopenLater()
  }

  #reopenLater(): void {
    if (this.#ended || this.#retry) return
    this.#retry = setTimeout(() => {
      this.#retry = null
      this.#open()
    }, this.#backoffMs)
    this.#backoffMs = Math.min(1000, this.#backoffMs * 2)
  }

  #drop(): void {
    const stream = this.#stream
    this.#stream = null
    if (stream) {
      ;(stream as unknown as EventEmitter).removeAllListeners('data')
      endCall(stream)
    }
  }
}
