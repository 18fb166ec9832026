// A test harness that spawns a fleet of N worker processes. Each takes a slot and derives from it what
// must not collide between workers: its port (BASE_PORT + processId) and its scratch directory
// (<root>/worker-<processId>). The harness checks that every worker answers on its own port, then stops
// them all and prints a JSON summary as its last line.
//
//   node examples/test-harness/harness.js [workers]
//   BASE_PORT=41000 HARNESS_ROOT=/tmp/run-1 node examples/test-harness/harness.js 4
'use strict'

const { fork } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

const { SlotTable } = require('procslot')

const workers = Number(process.argv[2] ?? 4)
const basePort = Number(process.env.BASE_PORT ?? 41000)
const ownRoot = !process.env.HARNESS_ROOT // a temporary root of our own is removed at the end
const root = process.env.HARNESS_ROOT ?? fs.mkdtempSync(path.join(os.tmpdir(), 'procslot-harness-'))
const slotsFile = path.join(root, 'slots')
const DEADLINE_MS = 15_000

async function main() {
  fs.mkdirSync(root, { recursive: true })
  // A table with a slot per worker; the harness itself takes none.
  SlotTable.open(slotsFile, { slots: workers }).close()

  const children = Array.from({ length: workers }, () =>
    fork(path.join(__dirname, 'worker.js'), [], { env: { ...process.env, SLOTS_FILE: slotsFile, BASE_PORT: String(basePort), HARNESS_ROOT: root } }),
  )
  try {
    // Each worker reports { processId, port, scratch } once it is listening.
    const reports = await within(Promise.all(children.map(ready)), 'the workers to start')
    for (const r of reports.sort((a, b) => a.processId - b.processId)) {
      console.log(`worker pid ${r.pid}: slot ${r.processId} -> port ${r.port}, scratch ${r.scratch}`)
    }
    const answers = await within(Promise.all(reports.map((r) => get(r.port))), 'every worker to answer')
    answers.forEach((a, i) => {
      if (a.processId !== reports[i].processId) throw new Error(`port ${reports[i].port} answered as slot ${a.processId}`)
    })
    console.log(JSON.stringify({ ok: true, slotsFile, workers: reports }))
  } finally {
    await within(Promise.all(children.map(stop)), 'the workers to exit')
    if (ownRoot) fs.rmSync(root, { recursive: true, force: true })
  }
}

function ready(child) {
  return new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code, signal) => reject(new Error(`worker ${child.pid} exited (${signal ?? code}) before it was ready`)))
  })
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.disconnect() // the worker closes its server and its client, which frees its slot
  return exited
}

function get(port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () => resolve(JSON.parse(body)))
      })
      .on('error', reject)
  })
}

function within(promise, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${DEADLINE_MS} ms waiting for ${what}`)), DEADLINE_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

main().catch((err) => {
  console.error(`harness: ${err.message}`)
  process.exitCode = 1
})
