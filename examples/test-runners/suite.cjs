// What every test of the Vitest, Jest and node:test examples does with its worker's ID (TEST_WORKER_ID, set
// by the example's procslot-setup file): it derives a port and a scratch database from it, listens on the
// port (127.0.0.1) and writes the database while the test runs. Two live workers with one ID would share
// both: the second listen fails with EADDRINUSE. Each example's suite file is this, for its runner:
// `require('../test-runners/suite.cjs')('jest')`.
//
// Environment, all optional:
//   BASE_PORT      the port of worker 0 (default 31100: below Linux's ephemeral range, 32768-60999,
//                  where an outgoing connection could hold one of ours by chance)
//   SCRATCH_DIR    where the scratch databases live (default os.tmpdir()/procslot-<runner>-example)
//   RESULTS_FILE   a file that gets one JSON line per test: what it saw, for a harness to check
//   RUN_NAME       a name for this run, in those lines
//   BARRIER_DIR, BARRIER_COUNT, BARRIER_TIMEOUT_MS
//                  each test holds its port until BARRIER_COUNT tests (of every run) hold theirs: how
//                  the repository's test makes two runs overlap for certain (see barrier() below)
'use strict'

const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

/** This worker's ID and what it derives from it (`runner`: vitest, jest or node-test). */
function worker(runner) {
  const id = Number(process.env.TEST_WORKER_ID)
  if (!Number.isInteger(id) || id < 0) throw new Error(`no worker ID: TEST_WORKER_ID=${process.env.TEST_WORKER_ID}`)
  const scratch = process.env.SCRATCH_DIR ?? path.join(os.tmpdir(), `procslot-${runner}-example`)
  return { id, port: Number(process.env.BASE_PORT ?? 31100) + id, database: path.join(scratch, `db-${id}.sqlite`) }
}

/** The body of every test. Throws if the worker's port is taken. */
async function useWorkerResources(runner, file) {
  const { id, port, database } = worker(runner)
  const server = net.createServer((socket) => socket.end())
  let error = null
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', resolve)
    })
  } catch (err) {
    error = err.code ?? String(err)
  }
  // A stand-in for a real database: a file only this worker may write while it runs.
  fs.mkdirSync(path.dirname(database), { recursive: true })
  fs.writeFileSync(database, `${process.pid} ${file}\n`)
  let ticket = null
  try {
    ticket = barrier.ticket()
    await barrier.wait()
  } finally {
    const slot = process.env.TEST_WORKER_SLOT === undefined ? null : Number(process.env.TEST_WORKER_SLOT)
    record(runner, { file, workerId: id, slot, port, database, error, ticket })
    if (server.listening) await new Promise((resolve) => server.close(resolve))
  }
  if (error) throw new Error(`worker ${id} could not listen on port ${port}: ${error}`)
}

/** Appends what this test saw to RESULTS_FILE: one write, so lines of concurrent tests never interleave. */
function record(runner, fields) {
  if (!process.env.RESULTS_FILE) return
  const line = { runner, run: process.env.RUN_NAME ?? null, pid: process.pid, ...fields }
  fs.appendFileSync(process.env.RESULTS_FILE, JSON.stringify(line) + '\n')
}

/**
 * With BARRIER_DIR set, a test takes the next ticket (1, 2, ...: files created exclusively, so each number
 * goes to one test) while it holds its port, and holds it until ticket BARRIER_COUNT is taken. So tickets
 * 1 to BARRIER_COUNT belong to tests that all held their ports at one moment. Without it, no wait.
 */
const barrier = {
  ticket() {
    const dir = process.env.BARRIER_DIR
    if (!dir) return null
    for (let n = 1; ; n++) {
      try {
        fs.writeFileSync(path.join(dir, String(n)), `${process.env.RUN_NAME ?? ''} ${process.pid}\n`, { flag: 'wx' })
        return n
      } catch (err) {
        if (err.code !== 'EEXIST') throw err
      }
    }
  },
  /** Waits on inotify (fs.watch), with a deadline, for ticket BARRIER_COUNT to be taken. */
  async wait() {
    const dir = process.env.BARRIER_DIR
    if (!dir) return
    const last = path.join(dir, String(Number(process.env.BARRIER_COUNT)))
    const timeoutMs = Number(process.env.BARRIER_TIMEOUT_MS ?? 30_000)
    const watcher = fs.watch(dir)
    let timer
    try {
      await new Promise((resolve, reject) => {
        const check = () => fs.existsSync(last) && resolve()
        watcher.on('change', check)
        watcher.on('error', reject)
        timer = setTimeout(() => reject(new Error(`barrier: ${last} not taken within ${timeoutMs} ms`)), timeoutMs)
        check()
      })
    } finally {
      clearTimeout(timer)
      watcher.close()
    }
  },
}

/** The suite of one runner: `worker()` and `useWorkerResources(file)`. */
module.exports = (runner) => ({
  worker: () => worker(runner),
  useWorkerResources: (file) => useWorkerResources(runner, file),
})
