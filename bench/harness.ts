/**
 * A tiny benchmark harness: warm-up, then many timed samples of a case and its baseline, interleaved so
 * that both see the same machine (a busy neighbour, a frequency change, a GC) in the same proportion.
 *
 * A sample is `batch` back-to-back calls timed with `process.hrtime.bigint()` and divided by `batch`, so
 * sub-microsecond operations are timed in batches and slower ones one call per sample. Optional `before`
 * and `after` hooks run around every sample, untimed, for per-sample set-up. All times are nanoseconds
 * per operation.
 */

/** One thing to time. */
export interface Bench {
  /** What is timed, as the table shows it. */
  readonly name: string
  /** The timed operation. Its result is kept, so that the engine cannot drop the call. */
  readonly fn: () => unknown
  /** Calls per sample, timed together and divided. @default 1 */
  readonly batch?: number
  /** Runs before every sample, untimed. */
  readonly before?: () => void
  /** Runs after every sample, untimed. */
  readonly after?: () => void
}

/** How long to run. */
export interface RunOptions {
  /** Warm-up time, for both benches together (at least `minWarmupSamples` samples each). @default 200 */
  readonly warmupMs?: number
  /** @default 20 */
  readonly minWarmupSamples?: number
  /** Measuring stops at this many samples of each bench... @default 2000 */
  readonly maxSamples?: number
  /** ...or when this much time has passed, once each has `minSamples`. @default 2000 */
  readonly maxTimeMs?: number
  /** @default 50 */
  readonly minSamples?: number
}

/** Per-operation statistics of one bench, in nanoseconds. */
export interface Stats {
  readonly name: string
  /** How many samples were taken (after warm-up). */
  readonly samples: number
  /** Calls per sample. */
  readonly batch: number
  readonly median: number
  /** The 99th percentile of the samples (nearest rank). With `batch > 1` a sample is a batch's mean. */
  readonly p99: number
  readonly mean: number
  readonly min: number
  readonly max: number
  /** `1e9 / mean`. */
  readonly opsPerSec: number
}

/** The result of {@link compare}. */
export interface Comparison {
  readonly ours: Stats
  readonly baseline: Stats
  /** `ours.median / baseline.median`. */
  readonly ratio: number
}

/** One row of the report: a comparison, its aim in words (`null`: report only) and whether it was met. */
export interface Case {
  readonly name: string
  readonly comparison: Comparison
  readonly aim: string | null
  readonly met: boolean | null
}

/** Where results go, so that no call is optimized away. */
export let blackhole: unknown

function sample(bench: Bench, batch: number): number {
  bench.before?.()
  const fn = bench.fn
  let result: unknown
  const start = process.hrtime.bigint()
  for (let i = 0; i < batch; i++) result = fn()
  const end = process.hrtime.bigint()
  blackhole = result
  bench.after?.()
  return Number(end - start) / batch
}

/** The `q` quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)))
  return sorted[rank - 1]!
}

export function stats(name: string, batch: number, times: number[]): Stats {
  const sorted = [...times].sort((a, b) => a - b)
  const mean = times.reduce((sum, t) => sum + t, 0) / times.length
  const n = sorted.length
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
  return {
    name,
    samples: n,
    batch,
    median,
    p99: quantile(sorted, 0.99),
    mean,
    min: sorted[0]!,
    max: sorted[n - 1]!,
    opsPerSec: 1e9 / mean,
  }
}

/** Times `ours` and `baseline`, warm-up first, samples interleaved. */
export function compare(ours: Bench, baseline: Bench, options: RunOptions = {}): Comparison {
  const warmupNs = BigInt(Math.round((options.warmupMs ?? 200) * 1e6))
  const minWarmup = options.minWarmupSamples ?? 20
  const maxSamples = options.maxSamples ?? 2000
  const minSamples = Math.min(options.minSamples ?? 50, maxSamples)
  const maxTimeNs = BigInt(Math.round((options.maxTimeMs ?? 2000) * 1e6))
  const ourBatch = Math.max(1, Math.floor(ours.batch ?? 1))
  const baseBatch = Math.max(1, Math.floor(baseline.batch ?? 1))

  let start = process.hrtime.bigint()
  for (let i = 0; i < minWarmup || process.hrtime.bigint() - start < warmupNs; i++) {
    sample(ours, ourBatch)
    sample(baseline, baseBatch)
  }

  const ourTimes: number[] = []
  const baseTimes: number[] = []
  start = process.hrtime.bigint()
  while (ourTimes.length < maxSamples) {
    // Alternate which goes first, so neither always follows the other's after-hook.
    if (ourTimes.length % 2 === 0) {
      ourTimes.push(sample(ours, ourBatch))
      baseTimes.push(sample(baseline, baseBatch))
    } else {
      baseTimes.push(sample(baseline, baseBatch))
      ourTimes.push(sample(ours, ourBatch))
    }
    if (ourTimes.length >= minSamples && process.hrtime.bigint() - start >= maxTimeNs) break
  }

  const o = stats(ours.name, ourBatch, ourTimes)
  const b = stats(baseline.name, baseBatch, baseTimes)
  return { ours: o, baseline: b, ratio: o.median / b.median }
}

/** An asynchronous thing to time (one call per sample). */
export interface AsyncBench {
  readonly name: string
  readonly fn: () => Promise<unknown>
  /** Runs before every sample, untimed. */
  readonly before?: () => Promise<void> | void
  /** Runs after every sample, untimed. */
  readonly after?: () => Promise<void> | void
}

async function sampleAsync(bench: AsyncBench): Promise<number> {
  await bench.before?.()
  const start = process.hrtime.bigint()
  blackhole = await bench.fn()
  const end = process.hrtime.bigint()
  await bench.after?.()
  return Number(end - start)
}

/**
 * Times asynchronous `ours` and `baseline` (operations of milliseconds: spawning, killing), a few warm-up
 * rounds first, samples interleaved, until `samples` each or `maxTimeMs`.
 */
export async function compareAsync(
  ours: AsyncBench,
  baseline: AsyncBench,
  options: { samples?: number; warmup?: number; maxTimeMs?: number } = {},
): Promise<Comparison> {
  const samples = options.samples ?? 30
  for (let i = 0; i < (options.warmup ?? 2); i++) {
    await sampleAsync(ours)
    await sampleAsync(baseline)
  }
  const ourTimes: number[] = []
  const baseTimes: number[] = []
  const start = Date.now()
  while (ourTimes.length < samples) {
    if (ourTimes.length % 2 === 0) {
      ourTimes.push(await sampleAsync(ours))
      baseTimes.push(await sampleAsync(baseline))
    } else {
      baseTimes.push(await sampleAsync(baseline))
      ourTimes.push(await sampleAsync(ours))
    }
    if (ourTimes.length >= 5 && Date.now() - start >= (options.maxTimeMs ?? 10_000)) break
  }
  const o = stats(ours.name, 1, ourTimes)
  const b = stats(baseline.name, 1, baseTimes)
  return { ours: o, baseline: b, ratio: o.median / b.median }
}

/** The cost of one `process.hrtime.bigint()` pair, in ns (the floor of a one-call sample). */
export function timerOverhead(): number {
  const times: number[] = []
  for (let i = 0; i < 10_000; i++) {
    const a = process.hrtime.bigint()
    const b = process.hrtime.bigint()
    times.push(Number(b - a))
  }
  times.sort((x, y) => x - y)
  return quantile(times, 0.5)
}

/** `1234.5` ns as `1.23 µs`, and so on. */
export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return String(ns)
  if (ns < 1e3) return `${ns.toFixed(ns < 10 ? 2 : 1)} ns`
  if (ns < 1e6) return `${(ns / 1e3).toFixed(2)} µs`
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`
  return `${(ns / 1e9).toFixed(2)} s`
}

/** `1234567` as `1.23 M`. */
export function formatRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M`
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k`
  return perSec.toFixed(0)
}

/** Rows of cells as aligned text: a header, a rule, then the rows. `right` lists right-aligned columns. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number>): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}
