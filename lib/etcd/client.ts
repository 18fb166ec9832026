/**
 * `newMultiProcessClient(dataDir, { concurrency: { etcd } })`: a fleet client whose ID is a slot on etcd.
 */
import { mkdirSync } from 'node:fs'

import type { ConcurrencyConfig } from '../config'
import type { EtcdError } from '../errors'
import { DEFAULT_SLOTS_FILE } from '../native'
import { checkFunction, checkMs, checkObject, checkSignal, invalidValue } from '../validate'
import { checkOptions } from './options'
import { EtcdSlotTable } from './table'
import type { EtcdSlotTableOptions } from './types'

/** `concurrency.etcd` of {@link newMultiProcessClient}: where the client takes its ID across hosts. */
export interface EtcdConcurrencyOptions extends EtcdSlotTableOptions {
  /** The slot to try first. */
  readonly preferred?: number
  /**
   * Wait up to this long for a free slot (milliseconds) instead of failing at once with
   * `SlotsExhaustedError`.
   *
   * @default 0
   */
  readonly waitMs?: number
  /** Aborts the wait for a free slot. */
  readonly signal?: AbortSignal
  /**
   * Called when the client's lease is lost ({@link EtcdError} `ELEASELOST`): the ID is no longer this
   * process's. Without it, the error is thrown as an uncaught exception, which ends the process unless
   * something handles it — an ID that may now be someone else's is never used silently.
   */
  readonly onLost?: (error: EtcdError) => void
}

/** A config for {@link newMultiProcessClient} that takes its ID from etcd. */
export interface EtcdClientConfig {
  readonly concurrency: { readonly etcd: EtcdConcurrencyOptions; readonly slotsFile?: string }
}

/**
 * @internal The etcd half of {@link newMultiProcessClient}: takes a slot from etcd and creates `dataDir`;
 * returns the client's concurrency and its lease, whose `release()` gives the slot back and closes the
 * table (the caller makes the client of them).
 */
export async function acquireEtcdId(
  dataDir: string,
  config: EtcdClientConfig,
): Promise<{ concurrency: ConcurrencyConfig; lease: { slot: number; release(): void } }> {
  const given = config.concurrency as Record<string, unknown>
  for (const field of ['processId', 'processCount'] as const) {
    if (given[field] !== undefined) {
      throw invalidValue(`config.concurrency.${field}`, given[field], 'cannot be given with config.concurrency.etcd (the ID comes from etcd)')
    }
  }
  const etcd = checkObject<EtcdConcurrencyOptions>('config.concurrency.etcd', given.etcd)
  if (etcd.onLost !== undefined) checkFunction('config.concurrency.etcd.onLost', etcd.onLost)
  if (etcd.signal !== undefined) checkSignal('config.concurrency.etcd.signal', etcd.signal)
  const waitMs = etcd.waitMs === undefined ? 0 : checkMs('config.concurrency.etcd.waitMs', etcd.waitMs)
  checkOptions(etcd, 'config.concurrency.etcd')

  const table = await EtcdSlotTable.open(etcd)
  try {
    const slot =
      waitMs > 0 || etcd.signal
        ? await table.waitForSlot({ preferred: etcd.preferred, timeoutMs: waitMs || Infinity, signal: etcd.signal })
        : await table.acquire({ preferred: etcd.preferred })
    mkdirSync(dataDir, { recursive: true })
    const onLost = etcd.onLost
    table.once('lost', (err) => {
      if (onLost) onLost(err)
      else
        process.nextTick(() => {
          throw err
        })
    })
    const concurrency = {
      processId: slot,
      processCount: table.size,
      slotsFile: typeof given.slotsFile === 'string' ? given.slotsFile : DEFAULT_SLOTS_FILE,
    }
    const lease = {
      slot,
      release: () => {
        table.removeAllListeners('lost')
        void table.close()
      },
    }
    return { concurrency, lease }
  } catch (err) {
    await table.close()
    throw err
  }
}
