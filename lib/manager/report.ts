/**
 * Reporting: the manager's logger and its events, and how a failure of background work is told.
 * Internal to the manager (not exported by the package).
 */
import type { EventEmitter } from 'node:events'

import type { Logger, ManagerEvents } from './types'

/** Who the manager's events go to: the manager itself, or an event emitter (`procslot stop`). */
export type Emitter = Pick<EventEmitter<ManagerEvents>, 'emit' | 'listenerCount'>

/** The logger and the events of a manager. */
export class Reporter {
  constructor(
    readonly log: Logger,
    readonly events: Emitter,
  ) {}

  /**
   * Reports a failure of background work — never thrown, so it can never end the process: the logger's
   * `error` always, the `'error'` event when someone listens (an `'error'` event nobody listens to would
   * throw).
   */
  report(err: unknown, message: string, fields: object = {}): void {
    const error = err instanceof Error ? err : new Error(String(err))
    try {
      this.log.error({ ...fields, err: error.message, code: (error as { code?: unknown }).code }, message)
    } catch {}
    if (this.events.listenerCount('error') > 0) this.events.emit('error', error)
  }
}
