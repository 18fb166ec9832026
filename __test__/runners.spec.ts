// Test runners (issue 21): Vitest's VITEST_POOL_ID and Jest's JEST_WORKER_ID are unique within one run
// only, so two runs at once on one host give two workers the same number — the same port, the same
// database. The examples in examples/vitest, examples/jest and examples/node-test take a slot per worker
// process instead. Here each runs as its users would run it, twice at once with 4 workers each, and every
// test reports what it saw (a JSON line: run, worker ID, slot, port, database, pid, error, ticket).
//
// Overlap is made certain, not left to timing: each test holds its port until the 8th test (of both runs)
// holds its own (the examples' BARRIER_DIR: numbered tickets, created exclusively). Tickets 1..8 then
// belong to tests that all held their ports at one moment: 4 per run, since a run's 4 workers cannot go
// on past the barrier. Ports are below Linux's ephemeral range (32768-60999), each case its own 20, so
// neither an outgoing connection of another test file nor another case here can hold one. The cases run
// one after another (test.serial): each starts two runners and their 8 workers at once, which is load
// enough for the deadlines on one busy CPU.
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { deadline, inCI, tempDir } from './helpers.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const EXAMPLES = join(ROOT, 'examples')
const require = createRequire(import.meta.url)

/** The CLI script of an installed devDependency, or null when it is not installed. */
function bin(name: string): string | null {
  try {
    const manifest = require.resolve(`${name}/package.json`)
    const entry = (require(manifest) as { bin: string | Record<string, string> }).bin
    return join(dirname(manifest), typeof entry === 'string' ? entry : entry[name]!)
  } catch {
    return null
  }
}

const VITEST = bin('vitest')
const JEST = bin('jest')
/** A runner's tests: run wherever it is installed (it is a devDependency); in CI its absence is a failure. */
const vitestTest = VITEST || inCI ? test.serial : test.serial.skip
const jestTest = JEST || inCI ? test.serial : test.serial.skip

const WORKERS = 4 // per run
const OVERLAP = 2 * WORKERS // the tests of both runs that hold their ports at once
const FILES = ['01', '02', '03', '04', '05', '06', '07', '08']

type Exit = { code: number | null; signal: NodeJS.Signals | null }
type Report = {
  runner: string
  run: 'a' | 'b'
  pid: number
  file: string
  workerId: number
  slot: number | null
  port: number
  database: string
  error: string | null
  ticket: number
}

/**
 * Runs `argv` (a node script and its arguments, from the repository's root) twice at once, as runs `a` and
 * `b`, sharing one slot file and one barrier, each in a process group of its own; resolves with both
 * exits, every test's report and the runs' output.
 */
async function twoRuns(
  t: ExecutionContext,
  argv: (run: 'a' | 'b', dir: string) => string[],
  env: Record<string, string>,
): Promise<{ exits: Exit[]; reports: Report[]; output: string }> {
  const { dir, cleanup } = tempDir('procslot-runners-')
  t.teardown(cleanup)
  mkdirSync(join(dir, 'barrier'))
  const results = join(dir, 'results.jsonl')
  const runs = (['a', 'b'] as const).map((run) => {
    const child = spawn(process.execPath, argv(run, dir), {
      cwd: ROOT,
      detached: true, // its own process group: the runner and its workers go together in the teardown
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        RUN_NAME: run,
        RESULTS_FILE: results,
        BARRIER_DIR: join(dir, 'barrier'),
        BARRIER_COUNT: String(OVERLAP),
        BARRIER_TIMEOUT_MS: '30000',
        PROCSLOT_SLOTS_FILE: join(dir, 'slots'),
        PROCSLOT_FLEET: '16',
        SCRATCH_DIR: join(dir, 'scratch'),
        ...env,
      },
    })
    let output = ''
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    t.teardown(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL') // workers left behind by a run that failed half-way
      } catch {}
    })
    return { run, exited, output: () => output }
  })
  const exits = await deadline(Promise.all(runs.map((r) => r.exited)), 90_000, 'both runs to end')
  const output = runs.map((r, i) => `--- run ${r.run} (${JSON.stringify(exits[i])}):\n${r.output()}`).join('\n')
  let text = ''
  try {
    text = readFileSync(results, 'utf8')
  } catch {}
  const reports = text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Report)
  return { exits, reports, output }
}

/** The reports of tickets 1..8: tests that all held their ports at one moment, 4 of each run. */
function overlapping(reports: Report[]): Report[] {
  return reports.filter((r) => r.ticket >= 1 && r.ticket <= OVERLAP).sort((a, b) => a.ticket - b.ticket)
}

const distinct = (values: unknown[]) => new Set(values).size

/** What two runs of an example with procslot must show. */
function assertDistinct(
  t: ExecutionContext,
  runner: string,
  { exits, reports, output }: Awaited<ReturnType<typeof twoRuns>>,
) {
  t.deepEqual(exits, [{ code: 0, signal: null }, { code: 0, signal: null }], output)
  // Every test of both runs ran once, passed and listened.
  t.is(reports.length, 2 * FILES.length, output)
  for (const run of ['a', 'b']) {
    t.deepEqual(reports.filter((r) => r.run === run).map((r) => r.file).sort(), FILES, `run ${run}`)
  }
  t.deepEqual(reports.filter((r) => r.error !== null), [])
  t.true(reports.every((r) => r.runner === runner && r.slot === r.workerId && r.workerId >= 0 && r.workerId < 16))
  // The 8 tests that overlapped: 8 worker processes, 8 IDs, 8 ports, 8 databases.
  const both = overlapping(reports)
  t.is(both.length, OVERLAP, JSON.stringify(reports))
  t.is(both.filter((r) => r.run === 'a').length, WORKERS)
  t.is(distinct(both.map((r) => r.pid)), OVERLAP)
  t.is(distinct(both.map((r) => r.workerId)), OVERLAP, JSON.stringify(both))
  t.is(distinct(both.map((r) => r.port)), OVERLAP)
  t.is(distinct(both.map((r) => r.database)), OVERLAP)
}

/** What two runs of an example with the runner's own worker IDs show: two workers with one ID. */
function assertCollision(
  t: ExecutionContext,
  { exits, reports, output }: Awaited<ReturnType<typeof twoRuns>>,
) {
  const both = overlapping(reports)
  t.is(both.length, OVERLAP, output)
  // Each run numbers its workers 1..4: the overlapping tests hold 4 IDs and 4 ports between them, and the
  // second listen on each port failed.
  t.deepEqual([...new Set(both.map((r) => r.workerId))].sort((x, y) => x - y), [1, 2, 3, 4], JSON.stringify(both))
  t.true(distinct(both.map((r) => r.port)) < OVERLAP)
  t.true(
    both.some((r) => r.error === 'EADDRINUSE'),
    JSON.stringify(both),
  )
  t.true(
    exits.some((e) => e.code !== 0),
    'a run whose test hit EADDRINUSE fails',
  )
}

const vitestArgs = () => [
  VITEST!,
  'run',
  '--config',
  join(EXAMPLES, 'vitest', 'vitest.config.mjs'),
  '--no-cache', // two runs at once would both write the results cache under examples/vitest
  '--reporter=dot',
]

vitestTest('two Vitest runs at once, 4 workers each: a slot per worker gives 8 distinct IDs and ports, and every test passes', async (t) => {
  if (!VITEST) return t.fail('vitest is not installed (npm install)')
  assertDistinct(t, 'vitest', await twoRuns(t, vitestArgs, { BASE_PORT: '31100' }))
})

vitestTest('two Vitest runs at once with VITEST_POOL_ID as the worker ID give two workers one port: EADDRINUSE', async (t) => {
  if (!VITEST) return t.fail('vitest is not installed (npm install)')
  assertCollision(t, await twoRuns(t, vitestArgs, { BASE_PORT: '31120', WORKER_IDS: 'runner' }))
})

// A fresh cache per run: with timings of earlier runs that were all fast, Jest runs a small suite in band
// (one process), and the barrier would wait for 8 workers that never come.
const jestArgs = (run: string, dir: string) => [
  JEST!,
  '--config',
  join(EXAMPLES, 'jest', 'jest.config.js'),
  '--cacheDirectory',
  join(dir, `jest-cache-${run}`),
]

jestTest('two Jest runs at once, 4 workers each: a slot per worker gives 8 distinct IDs and ports, and every test passes', async (t) => {
  if (!JEST) return t.fail('jest is not installed (npm install)')
  assertDistinct(t, 'jest', await twoRuns(t, jestArgs, { BASE_PORT: '31140' }))
})

jestTest('two Jest runs at once with JEST_WORKER_ID as the worker ID give two workers one port: EADDRINUSE', async (t) => {
  if (!JEST) return t.fail('jest is not installed (npm install)')
  assertCollision(t, await twoRuns(t, jestArgs, { BASE_PORT: '31160', WORKER_IDS: 'runner' }))
})

test.serial('two node --test runs at once, --test-concurrency=4: a slot per test process gives 8 distinct IDs and ports', async (t) => {
  const files = FILES.map((f) => join(EXAMPLES, 'node-test', 'test', `${f}.test.mjs`))
  assertDistinct(t, 'node-test', await twoRuns(t, () => ['--test', '--test-concurrency=4', ...files], { BASE_PORT: '31180' }))
})
