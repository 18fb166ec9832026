// procslot prefork demo: a node:cluster HTTP server whose workers each take a slot (a small, unique,
// reusable ID) from a slot file, and a replacement for a SIGKILLed worker that takes the slot it left.
//
//   npm run demo            (builds first)
//   node examples/prefork-demo.js
//
// The primary holds no slot: it only creates the slot file and reads it with snapshot(). Every wait is on
// an event (an IPC message, 'listening', 'exit', an HTTP response) with a deadline; there are no sleeps.
// Exits 0 when every step went as described, 1 (with the reason) otherwise.
'use strict'

const cluster = require('node:cluster')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

const { SlotTable } = require('../index.js')

const WORKERS = 4 // and as many slots
const STEP_MS = 15_000 // deadline of every wait
const VICTIM_SLOT = 1 // the slot whose worker is SIGKILLed
const FILE_ENV = 'PROCSLOT_DEMO_FILE'

// ---------------------------------------------------------------------------------------------------
// Worker: take a slot, tell the primary, answer GET / with { slot, pid }.

function worker() {
  let table
  let slot
  try {
    table = SlotTable.open(process.env[FILE_ENV])
    slot = table.acquire()
  } catch (err) {
    process.send({ type: 'error', message: `${err.name} ${err.code ?? ''}: ${err.message}` })
    process.exitCode = 1
    process.disconnect()
    return
  }
  process.send({ type: 'slot', slot, pid: process.pid })

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ slot, pid: process.pid }))
    } else {
      res.writeHead(404).end()
    }
  })
  // Port 0 in a cluster: the primary binds one ephemeral port and every worker (the replacement too)
  // shares it.
  server.listen(0, '127.0.0.1')

  // worker.disconnect() from the primary closes the server, then the IPC channel: give the slot back
  // explicitly (ending the process would free it too).
  process.once('disconnect', () => {
    table.release()
    table.close()
  })
}

// ---------------------------------------------------------------------------------------------------
// Primary.

let tempDir = null
let table = null
const records = [] // every worker forked, in order

async function primary() {
  const started = Date.now()
  cluster.schedulingPolicy = cluster.SCHED_RR // the primary deals connections out in turn (all platforms)
  cluster.setupPrimary({ exec: __filename })

  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'procslot-demo-'))
  const file = path.join(tempDir, 'slots')
  table = SlotTable.open(file, { slots: WORKERS })
  if (table.held !== -1) throw new Error(`the primary holds slot ${table.held}; it should hold none`)

  console.log(`procslot prefork demo: ${WORKERS} workers, ${table.size} slots`)
  console.log(`slot file: ${file}`)
  console.log(`primary pid ${process.pid} (holds no slot)`)

  // A worker that dies without being told to fails the run, whatever step is waiting.
  let crashed
  const crash = new Promise((_, reject) => (crashed = reject))
  crash.catch(() => {})
  cluster.on('exit', (w, code, signal) => {
    const rec = records.find((r) => r.worker === w)
    if (rec && !rec.expectExit) {
      crashed(new Error(`worker #${w.id} (pid ${rec.pid}) exited unexpectedly (${signal ?? `code ${code}`})`))
    }
  })
  const step = (promise, what) => deadline(Promise.race([promise, crash]), STEP_MS, what)

  // 1. Fork the workers.
  header(1, `Forking ${WORKERS} workers; each takes a slot with SlotTable.open(file).acquire()`)
  const first = Array.from({ length: WORKERS }, () => fork(file))
  await step(Promise.all(first.map((r) => r.ready)), `${WORKERS} workers to listen and report their slots`)
  for (const r of [...first].sort((a, b) => a.slot - b.slot)) {
    say(`worker #${r.id}  pid ${r.pid}  took slot ${r.slot}`)
  }
  const port = first[0].port
  const strays = first.filter((r) => r.port !== port)
  if (strays.length > 0) throw new Error(`workers listen on different ports: ${first.map((r) => r.port).join(', ')}`)
  const slots = new Set(first.map((r) => r.slot))
  if (slots.size !== WORKERS) throw new Error(`the workers did not get ${WORKERS} distinct slots`)
  say(`all ${WORKERS} listening on http://127.0.0.1:${port}/`)
  say('')
  printTable()

  // 2. Requests.
  header(2, `Sending 12 requests to http://127.0.0.1:${port}/ (3 rounds of 4 in parallel)`)
  const answers = []
  for (let round = 0; round < 3; round++) {
    answers.push(...(await step(Promise.all(Array.from({ length: 4 }, () => get(port))), 'HTTP responses')))
  }
  printAnswers(answers)

  // 3. SIGKILL the worker holding slot 1.
  const victim = first.find((r) => r.slot === VICTIM_SLOT)
  header(3, `SIGKILL worker #${victim.id} (pid ${victim.pid}), the holder of slot ${VICTIM_SLOT}`)
  victim.expectExit = true
  victim.worker.process.kill('SIGKILL')
  const { code, signal } = await step(victim.exited, `worker #${victim.id} to exit`)
  say(`cluster 'exit': worker #${victim.id} pid ${victim.pid} ended by ${signal ?? `exit code ${code}`}`)
  const after = table.snapshot()[VICTIM_SLOT]
  if (after.alive) throw new Error(`slot ${VICTIM_SLOT} still shows a live holder (pid ${after.pid}) after its worker died`)
  say(`slot ${VICTIM_SLOT} still names pid ${after.pid}, but nobody holds its lock: free for the taking`)
  say('')
  printTable()

  // 4. Fork a replacement: it must get the freed slot.
  header(4, 'Forking a replacement worker')
  const replacement = fork(file)
  await step(replacement.ready, `the replacement worker #${replacement.id} to listen and report its slot`)
  if (replacement.slot !== VICTIM_SLOT) {
    throw new Error(
      `the replacement (pid ${replacement.pid}) took slot ${replacement.slot}, not slot ${VICTIM_SLOT} freed by pid ${victim.pid}`,
    )
  }
  if (replacement.port !== port) throw new Error(`the replacement listens on port ${replacement.port}, not ${port}`)
  say(
    `replacement worker #${replacement.id} pid ${replacement.pid} took slot ${replacement.slot}, ` +
      `the slot freed by pid ${victim.pid}`,
  )
  say('')
  printTable()

  // 5. Requests until the replacement (and every other slot) has answered.
  const MAX_REQUESTS = 200
  const MAX_MS = 10_000
  header(5, `Sending requests until the replacement and all ${WORKERS} slots have answered (at most ${MAX_REQUESTS} or ${MAX_MS / 1000} s)`)
  const until = Date.now() + MAX_MS
  const again = []
  const heard = () => new Set(again.map((a) => a.slot)).size === WORKERS && again.some((a) => a.pid === replacement.pid)
  while (!heard()) {
    if (again.length >= MAX_REQUESTS || Date.now() > until) {
      throw new Error(`the replacement (pid ${replacement.pid}) did not answer within ${again.length} requests`)
    }
    again.push(await step(get(port), 'an HTTP response'))
  }
  printAnswers(again)
  const firstFromReplacement = again.findIndex((a) => a.pid === replacement.pid) + 1
  say(`the replacement answered request ${firstFromReplacement} of ${again.length}`)

  // 6. Shut down.
  header(6, 'Shutting down: disconnecting every worker')
  const live = records.filter((r) => !r.expectExit)
  for (const r of live) {
    r.expectExit = true
    r.worker.disconnect()
  }
  const exits = await step(Promise.all(live.map((r) => r.exited)), 'the workers to exit')
  live.forEach((r, i) => {
    const { code, signal } = exits[i]
    say(`worker #${r.id}  pid ${r.pid}  slot ${r.slot}  exited with ${signal ?? `code ${code}`}`)
  })
  const bad = live.filter((_, i) => exits[i].code !== 0)
  if (bad.length > 0) throw new Error(`workers ${bad.map((r) => `#${r.id}`).join(', ')} did not exit cleanly`)
  say('')
  printTable()
  const held = table.snapshot().filter((s) => s.alive)
  if (held.length > 0) throw new Error(`slots still held after shutdown: ${held.map((s) => s.slot).join(', ')}`)
  cleanup()
  say(`removed ${tempDir}`)
  console.log(`\ndone in ${Date.now() - started} ms`)
}

/** Forks a worker and tracks it: `ready` once it has both reported its slot and is listening. */
function fork(file) {
  const worker = cluster.fork({ [FILE_ENV]: file })
  const rec = { worker, id: worker.id, pid: worker.process.pid, slot: undefined, port: undefined, expectExit: false }
  rec.exited = new Promise((resolve) => worker.once('exit', (code, signal) => resolve({ code, signal })))
  rec.ready = new Promise((resolve, reject) => {
    const check = () => rec.slot !== undefined && rec.port !== undefined && resolve(rec)
    worker.on('message', (msg) => {
      if (msg && msg.type === 'slot') {
        if (msg.pid !== rec.pid) reject(new Error(`worker #${rec.id} reports pid ${msg.pid}, the primary knows ${rec.pid}`))
        rec.slot = msg.slot
        check()
      } else if (msg && msg.type === 'error') {
        reject(new Error(`worker #${rec.id} (pid ${rec.pid}) could not take a slot: ${msg.message}`))
      }
    })
    worker.on('listening', (address) => {
      rec.port = address.port
      check()
    })
    rec.exited.then(({ code, signal }) =>
      reject(new Error(`worker #${rec.id} (pid ${rec.pid}) exited (${signal ?? `code ${code}`}) before it was ready`)),
    )
  })
  rec.ready.catch(() => {}) // reported by whichever step waits on it
  records.push(rec)
  return rec
}

/** GET / on a fresh connection (no keep-alive, so the primary deals each one to the next worker). */
function get(port) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' }, timeout: 5_000 },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`GET / answered ${res.statusCode}`))
          try {
            resolve(JSON.parse(body))
          } catch (err) {
            reject(new Error(`GET / answered something other than JSON: ${body}`))
          }
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('GET / timed out')))
    req.on('error', reject)
  })
}

/** Rejects after `ms` with `what` in the message, unless `promise` settles first. */
function deadline(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Kills whatever workers are left and removes the temporary directory. Idempotent. */
function cleanup() {
  for (const r of records) {
    if (r.worker.process.exitCode === null && r.worker.process.signalCode === null) {
      r.expectExit = true
      r.worker.process.kill('SIGKILL')
    }
  }
  if (table) {
    table.close()
    table = null
  }
  if (tempDir && fs.existsSync(tempDir)) fs.rmSync(tempDir, { recursive: true, force: true })
}

function header(n, text) {
  console.log(`\n[${n}] ${text}`)
}

function say(text) {
  console.log(text === '' ? '' : `    ${text}`)
}

/** The slot table as the primary sees it. */
function printTable() {
  const rows = table.snapshot().map((s) => {
    const rec = s.pid === 0 ? undefined : [...records].reverse().find((r) => r.pid === s.pid)
    let who = '-'
    if (s.self) who = 'the primary (!)'
    else if (rec) who = `#${rec.id}${rec.worker.process.signalCode === 'SIGKILL' ? ' (SIGKILLed)' : ''}`
    else if (s.pid !== 0) who = '?'
    return [String(s.slot), s.pid === 0 ? '-' : String(s.pid), s.alive ? 'yes' : 'no', who]
  })
  printRows(['slot', 'pid', 'alive', 'worker'], rows)
}

/** Which slots answered, how often. */
function printAnswers(answers) {
  const bySlot = new Map()
  for (const a of answers) {
    const key = `${a.slot}:${a.pid}`
    bySlot.set(key, { slot: a.slot, pid: a.pid, count: (bySlot.get(key)?.count ?? 0) + 1 })
  }
  const rows = [...bySlot.values()]
    .sort((a, b) => a.slot - b.slot || a.pid - b.pid)
    .map((a) => {
      const rec = records.find((r) => r.pid === a.pid)
      return [String(a.slot), String(a.pid), rec ? `#${rec.id}` : '?', String(a.count)]
    })
  say(`${answers.length} answers from ${rows.length} workers:`)
  printRows(['slot', 'pid', 'worker', 'answers'], rows)
}

function printRows(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => say(cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd())
  line(head)
  line(widths.map((w) => '-'.repeat(w)))
  rows.forEach(line)
}

// ---------------------------------------------------------------------------------------------------

if (cluster.isPrimary) {
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      console.error(`\nerror: interrupted by ${sig}`)
      cleanup()
      process.exit(1)
    })
  }
  primary().then(
    () => process.exit(0),
    (err) => {
      console.error(`\nerror: ${err && err.message ? err.message : err}`)
      cleanup()
      process.exit(1)
    },
  )
} else {
  worker()
}
