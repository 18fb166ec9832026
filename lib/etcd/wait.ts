/**
 * Waiting for a slot: claim, and while every slot is held, watch the prefix for deletes (no polling) and
 * claim again after each, until a claim succeeds or the wait is ended (a timeout, an abort, close).
 */
import type { Claim, Taken } from './claim'
import type { HeldLease } from './lease'
import type { PrefixWatch, PrefixWatchEvents } from './watch'

/** What a wait does with its table: the steps of a claim, the watch, and how it ends. */
export interface WaitSteps {
  /** The lease to claim on (a new one when the table's ran out). */
  lease(): Promise<HeldLease>
  /** One claim on `lease` (see claim.ts). */
  claim(lease: HeldLease, preferred: number | undefined): Promise<Claim>
  /** Gives up the table's lease `lease`: a key of a claim may be left on it. */
  giveUp(lease: HeldLease): void
  /** Makes the taken slot the table's hold, and returns it. */
  took(lease: HeldLease, taken: Taken): number
  /** Starts a watch of the prefix's deletes, from revision `from` on. */
  watch(from: bigint, events: PrefixWatchEvents): PrefixWatch
  /** The error of a wait that timed out. */
  timedOut(): Error
  /** The error of a wait whose table is closed, or `null` while it is open. */
  closed(): Error | null
  /** The table's pending waits, each by its way to end it: close ends every one. */
  readonly waits: Set<(err: Error) => void>
}

/**
 * Waits for a slot on `steps`' table, claiming `preferred` first as every claim does: ends with the slot
 * taken, or throws when `timeoutMs` passes ({@link WaitSteps.timedOut}), `signal` aborts (its reason), the
 * table is closed, or a claim fails.
 */
export async function waitForSlot(
  steps: WaitSteps,
  preferred: number | undefined,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<number> {
  signal?.throwIfAborted()
  let lease = await steps.lease()
  // Whether the wait is parked on the watch: no claim of it is in flight, so no key can appear on the
  // lease after it ends.
  let parked = false
  let wake: (() => void) | null = null
  let deletes = 0
  // Referenced from the moment it is made, and ended (at once, on this side) when the wait ends.
  let watch: PrefixWatch | null = null
  let stop: ((err: Error) => void) | null = null
  const stopped = new Promise<never>((_, reject) => (stop = reject))
  stopped.catch(() => {})
  const onAbort = () => stop!(signal!.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  const timer = timeoutMs === Infinity ? null : setTimeout(() => stop!(steps.timedOut()), timeoutMs)
  steps.waits.add(stop!)
  // Closed while the lease was being granted: close() found no wait to end yet.
  const closed = steps.closed()
  if (closed) stop!(closed)
  try {
    for (;;) {
      const seen = deletes
      // The lease ran out or went stale while we waited (etcd out of reach longer than its window):
      // a new one.
      lease = await steps.lease()
      const claim = await Promise.race([steps.claim(lease, preferred), stopped])
      if (claim === 'lease gone') {
        steps.giveUp(lease)
        continue
      }
      if (claim.slot >= 0) return steps.took(lease, claim)
      if (watch === null) {
        // Every delete after the revision just read: nothing freed in between is missed.
        const w: PrefixWatch = steps.watch(BigInt(claim.revision) + 1n, {
          deleted: () => {
            deletes++
            wake?.()
          },
          // A compacted start revision: read again and watch anew.
          reset: () => {
            if (watch === w) watch = null
            deletes++
            wake?.()
          },
        })
        watch = w
      }
      if (deletes === seen) {
        parked = true
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), stopped])
        parked = false
        wake = null
      }
    }
  } catch (err) {
    // Ended by a timeout, an abort or close() while it waited: the lease has no key of ours and stays.
    // Ended during a claim (or by its failure): the claim may still create a key, so the lease goes.
    if (!parked) steps.giveUp(lease)
    throw err
  } finally {
    ;(watch as PrefixWatch | null)?.end()
    steps.waits.delete(stop!)
    if (timer) clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}
