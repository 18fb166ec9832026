/**
 * Where the slots live in etcd: slot `n` is the key `<prefix>/<n>`, and its value is a JSON record of its
 * holder (host, PID, since when).
 */
import type * as Os from 'node:os'

import type * as Etcd3 from 'etcd3'

import type { Settings } from './options'
import type { EtcdSlotInfo } from './types'

/** The JSON value of a slot's key: who holds it. */
interface HolderRecord {
  host: string
  pid: number
  since: string
}

/** The key of `slot`. */
export function slotKey(settings: Settings, slot: number): Buffer {
  return Buffer.from(`${settings.prefix}/${slot}`)
}

/** The range of every key under `<prefix>/`. */
export function slotRange(settings: Settings): Etcd3.IRangeRequest {
  return { key: Buffer.from(`${settings.prefix}/`), range_end: Buffer.from(`${settings.prefix}0`) }
}

/** The slot a key of the range names, or `-1` for a key that names none (not a slot number, or too high). */
export function slotOf(settings: Settings, key: Buffer): number {
  const rest = key.toString().slice(settings.prefix.length + 1)
  if (!/^(0|[1-9][0-9]*)$/.test(rest)) return -1
  const slot = Number(rest)
  return slot < settings.slots ? slot : -1
}

/** The value a claim writes, made anew for each claim: this host, this process, now. */
export function holderRecords(): () => Buffer {
  // node:os loads here, with the first table, not with the module (every name is read at an ESM import).
  const host = (require('node:os') as typeof Os).hostname()
  return () => Buffer.from(JSON.stringify({ host, pid: process.pid, since: new Date().toISOString() } satisfies HolderRecord))
}

/** A slot no key names, as a snapshot lists it. */
export function freeSlot(slot: number): EtcdSlotInfo {
  return { slot, alive: false, host: null, pid: 0, since: null, self: false, lease: null, revision: null }
}

/**
 * A held slot, as a snapshot lists it, from its key's value (fields it cannot read are left empty);
 * `self` when the key is attached to `ownLease`, the lease of this table's own hold of the slot.
 */
export function heldSlot(slot: number, kv: Etcd3.IKeyValue, ownLease: string | null): EtcdSlotInfo {
  let record: Partial<HolderRecord> = {}
  try {
    record = JSON.parse(kv.value.toString()) as Partial<HolderRecord>
  } catch {}
  const since = typeof record.since === 'string' ? new Date(record.since) : null
  return {
    slot,
    alive: true,
    host: typeof record.host === 'string' ? record.host : null,
    pid: typeof record.pid === 'number' ? record.pid : 0,
    since: since && !Number.isNaN(since.getTime()) ? since : null,
    self: ownLease !== null && ownLease === kv.lease,
    lease: kv.lease,
    revision: kv.create_revision,
  }
}
