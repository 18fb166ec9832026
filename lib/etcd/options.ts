/**
 * The options of {@link EtcdSlotTable.open}, checked once (lib/validate.ts: Node's argument error codes)
 * into the settings a table runs on.
 */
import { checkInteger, checkObject, checkString, invalidType, invalidValue } from '../validate'

/** The most slots an etcd table may have (a range read lists them all). */
const MAX_ETCD_SLOTS = 65_536

export interface Settings {
  readonly endpoints: readonly string[]
  readonly prefix: string
  readonly slots: number
  readonly ttlSeconds: number
  readonly marginMs: number
  readonly callTimeoutMs: number
}

export function checkOptions(options: unknown, where = 'options'): Settings {
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
