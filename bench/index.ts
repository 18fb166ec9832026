/**
 * procslot benchmarks: `npm run bench` (builds first), or `npm run bench -- --json` for JSON on stdout.
 *
 * Every case is timed against a baseline in the same run (samples interleaved, see ./harness.ts) and
 * compared by median. Aims come from the issue; a missed aim is printed, never an exit failure. The
 * results are also written to bench/results.json (gitignored). Progress goes to stderr.
 *
 * The cases, one file per group, in the report's order: the slot file (./slots.ts), `procslot exec`
 * (./exec.ts), waitForSlot (./waits.ts), the process manager (./manager.ts), slots on etcd (./etcd.ts),
 * and the published package (./release.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, platform, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { etcdCases, type EtcdBench } from './etcd.ts'
import { execCases } from './exec.ts'
import { managerCases } from './manager.ts'
import { releaseCases, type ReleaseSizes } from './release.ts'
import { slotCases } from './slots.ts'
import { waitCases } from './waits.ts'
import { formatNs, formatRate, formatTable, timerOverhead, type Case, type Stats } from './harness.ts'

const jsonOut = process.argv.includes('--json')
const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url))

interface CaseResult {
  readonly id: number
  readonly case: string
  /** The aim in words, or `null` (report only). */
  readonly aim: string | null
  /** Whether the aim is met; `null` when there is none. */
  readonly aimMet: boolean | null
  /** `ours.median / baseline.median`. */
  readonly ratio: number
  readonly ours: Stats
  readonly baseline: Stats
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`)
}

/** The report's row of case `c`, numbered `id`. */
function result(id: number, c: Case): CaseResult {
  const { ours, baseline, ratio } = c.comparison
  return { id, case: c.name, aim: c.aim, aimMet: c.aim === null ? null : c.met === true, ratio, ours, baseline }
}

async function main(): Promise<void> {
  const began = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'procslot-bench-'))
  const results: CaseResult[] = []
  let etcd: EtcdBench | null = null
  let sizes: ReleaseSizes | null = null
  const timerNs = timerOverhead()
  const add = (cases: readonly Case[]): void => {
    for (const c of cases) results.push(result(results.length + 1, c))
  }

  try {
    add(await slotCases(dir, progress))
    add(execCases(dir, progress))
    add(await waitCases(dir, progress))
    add(await managerCases(dir, progress))
    etcd = await etcdCases(dir, progress, results.length + 1)
    add(etcd.cases)
    const release = await releaseCases(dir, progress)
    add(release.cases)
    sizes = release.sizes
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }

  const cpuList = cpus()
  const report = {
    meta: {
      node: process.version,
      v8: process.versions.v8,
      platform: platform(),
      arch: process.arch,
      cpus: cpuList.length,
      availableParallelism: availableParallelism(),
      cpuModel: cpuList[0]?.model.trim() ?? null,
      loadavg: loadavg(),
      date: new Date().toISOString(),
      durationMs: Date.now() - began,
      timerOverheadNs: timerNs,
      units: 'nanoseconds per operation; opsPerSec = 1e9 / mean',
    },
    cases: results,
    etcdKeepAlive: etcd?.traffic ?? null,
    etcdSkipped: etcd?.skipped ?? null,
    tarballs: sizes,
  }
  const json = JSON.stringify(report, null, 2)
  writeFileSync(RESULTS, json + '\n')

  if (jsonOut) {
    process.stdout.write(json + '\n')
    return
  }
  const header = ['case', 'median', 'p99', 'mean', 'ops/s', 'baseline', 'baseline median', 'ratio', 'aim', 'met']
  const rows = results.map((r) => [
    `${r.id}. ${r.case}`,
    formatNs(r.ours.median),
    formatNs(r.ours.p99),
    formatNs(r.ours.mean),
    formatRate(r.ours.opsPerSec),
    r.baseline.name,
    formatNs(r.baseline.median),
    `${r.ratio.toFixed(2)}×`,
    r.aim ?? '— (report only)',
    r.aimMet === null ? '—' : r.aimMet ? 'yes' : 'NO',
  ])
  const m = report.meta
  console.log(
    `procslot bench — node ${m.node}, ${m.platform}-${m.arch}, ${m.cpus} CPUs (${m.cpuModel ?? 'unknown'}), ` +
      `load ${m.loadavg.map((l) => l.toFixed(2)).join(' ')}, ${m.date}`,
  )
  console.log(formatTable(header, rows, new Set([1, 2, 3, 4, 6, 7])))
  if (etcd?.traffic) {
    const k = etcd.traffic
    console.log(
      `\netcd keep-alive traffic of one idle holder (TTL ${k.ttlSeconds} s, over ${k.windowMs / 1000} s): ` +
        `${k.requestsPerMinute} requests/min, ${k.bytesPerMinute} B/min on the wire ` +
        `(${k.bytesUpPerMinute} up, ${k.bytesDownPerMinute} down)`,
    )
  } else if (etcd?.skipped) {
    console.log(`\netcd cases skipped: ${etcd.skipped}`)
  }
  console.log(
    `\nper operation; samples: ${results.map((r) => `${r.id}: ${r.ours.samples}×${r.ours.batch}`).join(', ')}; ` +
      `timer overhead ${formatNs(timerNs)} per sample; ratio = median / baseline median; ` +
      `${(m.durationMs / 1000).toFixed(1)} s; JSON in ${RESULTS}`,
  )
  if (sizes) {
    const kb = (n: number): string => `${(n / 1024).toFixed(1)} KiB`
    console.log(
      `tarballs: ${sizes.main.file} ${kb(sizes.main.bytes)} (${kb(sizes.main.unpackedBytes)} unpacked, ` +
        `${sizes.main.files} files); ${sizes.platform.file} ${kb(sizes.platform.bytes)} ` +
        `(${kb(sizes.platform.unpackedBytes)} unpacked)`,
    )
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
