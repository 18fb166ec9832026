/**
 * How a table's failures read: every {@link EtcdError} and {@link SlotsExhaustedError} it throws or reports
 * is made here, with the table's prefix, endpoints and slot.
 */
import { EtcdError, SlotsExhaustedError, type EtcdErrorCode } from '../errors'
import type { Etcd3Module } from './connect'
import type { Settings } from './options'

/** The errors of one table. */
export class Failures {
  readonly #settings: Settings
  readonly #lib: Etcd3Module

  constructor(settings: Settings, lib: Etcd3Module) {
    this.#settings = settings
    this.#lib = lib
  }

  /** What every {@link EtcdError} of the table carries besides its message. */
  details(code: EtcdErrorCode, slot?: number) {
    return { code, prefix: this.#settings.prefix, endpoints: this.#settings.endpoints, slot }
  }

  /**
   * `err`, thrown by the etcd client while the table was `doing` something, as the error the table throws:
   * `EETCDUNAVAILABLE` for a failure the client counts as transient (unreachable, no leader, a deadline),
   * `EETCD` for a refusal. The table's own errors pass unchanged.
   */
  from(err: unknown, doing: string): Error {
    if (err instanceof EtcdError || err instanceof SlotsExhaustedError) return err
    const e = err as Error
    const where = `etcd at ${this.#settings.endpoints.join(', ')}`
    if (e instanceof Error && this.#lib.isRecoverableError(e)) {
      return new EtcdError(`${where} is unreachable (${doing}): ${e.message}`, {
        ...this.details('EETCDUNAVAILABLE'),
        cause: err,
      })
    }
    return new EtcdError(`${where} refused ${doing}: ${e instanceof Error ? e.message : String(err)}`, {
      ...this.details('EETCD'),
      cause: err,
    })
  }

  /** Runs `fn`, a call to etcd, and throws what it throws as {@link Failures.from} makes it. */
  async call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw this.from(err, doing)
    }
  }

  /** Every slot is held (`ESLOTSFULL`), in words of etcd. */
  exhausted(): SlotsExhaustedError {
    const { prefix, slots } = this.#settings
    const err = new SlotsExhaustedError(prefix, slots)
    err.message =
      `etcd slots ${prefix}: all ${slots} slots are held by live holders; ` +
      'open the tables with more slots or stop a holder'
    err.stack = `${err.name}: ${err.message}\n${err.stack?.split('\n').slice(1).join('\n') ?? ''}`
    return err
  }

  /** The table was closed (`ECLOSED`). */
  closed(): EtcdError {
    return new EtcdError(`etcd slots ${this.#settings.prefix}: the table was closed`, this.details('ECLOSED'))
  }

  /** etcd does not know the table's lease, even one just granted (`ELEASELOST`): no slot is held. */
  leaseGone(): EtcdError {
    const prefix = this.#settings.prefix
    return new EtcdError(`etcd slots ${prefix}: etcd no longer knows the lease of the table`, this.details('ELEASELOST'))
  }

  /** The lease ran out while `slot` was being claimed (`ELEASELOST`): the slot is not held. */
  leaseRanOut(slot: number): EtcdError {
    const prefix = this.#settings.prefix
    return new EtcdError(`etcd slots ${prefix}: the lease ran out while claiming slot ${slot}`, this.details('ELEASELOST', slot))
  }

  /** The held `slot` was lost, for `reason` (`ELEASELOST`): what the `'lost'` event reports. */
  lost(slot: number, reason: string, cause: unknown): EtcdError {
    return new EtcdError(`etcd slots ${this.#settings.prefix}: slot ${slot} lost: ${reason}; stop using its ID`, {
      ...this.details('ELEASELOST', slot),
      cause,
    })
  }
}
