/**
 * Taking a slot: one transaction that creates a slot's key only if it is absent, attached to the table's
 * lease, tried again on the lowest free slot while others win the race.
 */
import type * as Etcd3 from 'etcd3'

import type { Client, Etcd3Module } from './connect'
import type { Failures } from './failures'
import { slotKey, slotOf, slotRange } from './keys'
import type { HeldLease } from './lease'
import type { Settings } from './options'

/** A slot taken: the slot and its key's create revision. */
export interface Taken {
  readonly slot: number
  readonly revision: string
}

/**
 * A claim's outcome: the slot taken (`-1`: every slot is held, with the revision the slots were read at),
 * or the lease is gone (take a new one).
 */
export type Claim = Taken | 'lease gone'

/** What a claim runs on: the table's connection, its failures, and the value its keys get. */
export interface Claimer {
  readonly settings: Settings
  readonly lib: Etcd3Module
  readonly client: Client
  readonly failures: Failures
  /** The value of a key the claim creates (see keys.ts). */
  readonly record: () => Buffer
}

/**
 * Tries to create the key of `preferred` (or slot 0), then of the lowest free slot, each in a
 * transaction that succeeds only if the key is absent, until one succeeds or none is free. A failed
 * transaction returns the whole prefix, so each retry works from a fresh view. `'lease gone'` when the
 * lease ran out by the clock before a transaction, or etcd answers that it does not know it (then the
 * transaction wrote nothing).
 */
export async function claimSlot(on: Claimer, lease: HeldLease, preferred: number | undefined): Promise<Claim> {
  const { settings, client, lib } = on
  const size = settings.slots
  const value = on.record()
  let candidate = preferred !== undefined && preferred < size ? preferred : 0
  for (;;) {
    if (!lease.check()) return 'lease gone'
    const key = slotKey(settings, candidate)
    let res: Etcd3.ITxnResponse
    try {
      res = await client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value, lease: lease.id } }],
        failure: [{ request_range: slotRange(settings) }],
      })
    } catch (err) {
      if (err instanceof lib.EtcdLeaseInvalidError) return 'lease gone'
      throw on.failures.from(err, 'claiming a slot')
    }
    if (res.succeeded) return { slot: candidate, revision: res.header.revision }
    const taken = new Set<number>()
    for (const kv of res.responses[0]?.response_range?.kvs ?? []) {
      const slot = slotOf(settings, kv.key)
      // Ours already: a transaction whose answer was lost and was tried again on another endpoint (the
      // only key a claim can find on the table's lease; see TableLease).
      if (slot >= 0 && kv.lease === lease.id) return { slot, revision: kv.create_revision }
      taken.add(slot)
    }
    let next = -1
    if (preferred !== undefined && preferred < size && !taken.has(preferred)) next = preferred
    else for (let i = 0; i < size && next < 0; i++) if (!taken.has(i)) next = i
    if (next < 0) return { slot: -1, revision: res.header.revision }
    candidate = next
  }
}
