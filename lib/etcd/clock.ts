/**
 * The holder's clock.
 */

/**
 * Milliseconds on the monotonic clock: the clock of `performance.now()` (libuv's `uv_hrtime`) read
 * without loading node:perf_hooks (a dozen modules, about 1 ms in a fresh process).
 */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6

/**
 * A moment on this process's clocks: the monotonic clock (never steps, keeps running while the process is
 * stopped) and the wall clock (also counts a suspend of the whole machine, during which the monotonic clock
 * stands still). Elapsed time is the larger of the two: a wall clock stepped back is ignored, one stepped
 * forward can only make the holder give up early — the safe side.
 */
export interface Stamp {
  readonly mono: number
  readonly wall: number
}

export function stamp(): Stamp {
  return { mono: monotonicMs(), wall: Date.now() }
}

export function elapsedSince(s: Stamp): number {
  return Math.max(monotonicMs() - s.mono, Date.now() - s.wall)
}
