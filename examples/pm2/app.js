// The app of ecosystem.config.cjs: an HTTP server whose instance N holds slot N of a slot file that has
// exactly one slot per instance, so processCount is the fleet size (not the machine's core count).
//
// PM2 cluster mode runs this file once per instance with NODE_APP_INSTANCE set to the instance's number.
// `pm2 reload` replaces the instances two at a time: it starts the new instance N, waits until it listens
// (at most listen_timeout), then sends the old instance N SIGINT and waits for it to exit (at most
// kill_timeout, then SIGKILL). The two overlap, both with NODE_APP_INSTANCE=N, and slot N is the old one's
// until it gives it back. Hence this shape:
//
// - Listen at once, so that PM2 goes on to stop the old instance instead of waiting for listen_timeout.
// - Take slot N and no other (`exact: true`): the new instance N waits for the old one to give slot N back.
//   (Any free slot would keep IDs unique, but two instances reloaded together would then swap slots.)
// - Requests that reach the new instance meanwhile wait for its slot; they do not fail.
// - On SIGINT, stop accepting, finish the requests in flight, then give the slot back: no answer of the
//   old instance names an ID that the new one holds.
'use strict'

const cluster = require('node:cluster')
const http = require('node:http')

const { SlotTable, multiProcessConfig, newClient } = require('procslot')

const file = process.env.PROCSLOT_SLOTS_FILE
const instance = Number(process.env.NODE_APP_INSTANCE ?? 0)
const fleet = Number(process.env.PROCSLOT_FLEET)
/** Now, for the log lines: process.hrtime() in milliseconds, one clock for every process of the host. */
const now = () => Number(process.hrtime.bigint()) / 1e6

// A new file gets exactly `fleet` slots; the table holds this process's slot until it is closed or the
// process ends (a SIGKILLed instance's slot is free at once).
const table = SlotTable.open(file, { slots: fleet })
const stopping = new AbortController()
// Slot N, the moment its holder (the old instance N, during a reload) gives it back or dies. The timeout
// only bounds a wait for a holder outside this fleet: PM2 SIGKILLs an old instance after kill_timeout.
const waitStarted = now()
const ready = table
  .waitForSlot({ preferred: instance, exact: true, timeoutMs: 60_000, signal: stopping.signal })
  .then((processId) => ({ processId, took: now(), client: newClient(process.env.DATA_DIR, multiProcessConfig(processId, fleet, file)) }))
ready.catch((err) => {
  if (stopping.signal.aborted) return // stopped before it had its slot
  console.error(err)
  process.exitCode = 1
  stop()
})

const server = http.createServer((req, res) => {
  ready.then(
    ({ client }) => {
      res.writeHead(200, { 'content-type': 'application/json', ...(stopping.signal.aborted && { connection: 'close' }) })
      res.end(JSON.stringify({ instance, processId: client.processId, processCount: client.processCount, pid: process.pid }))
    },
    () => {
      res.writeHead(503, { connection: 'close' })
      res.end()
    },
  )
})
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1')

// One JSON line for PM2's log (and the tests) once it listens and holds slot N, with how long it waited.
const listening = new Promise((resolve) => server.once('listening', resolve))
Promise.all([ready, listening]).then(([{ processId, took, client }]) => {
  const waitedMs = Math.round(took - waitStarted)
  console.log(JSON.stringify({ event: 'ready', instance, processId, processCount: client.processCount, pid: process.pid, port: server.address().port, waitedMs, at: took }))
}, () => {})

// `pm2 stop` / `pm2 reload` send SIGINT. Stop accepting connections, let the requests in flight finish,
// then give the slot back and exit.
//
// Under PM2 the listening socket is the PM2 daemon's (cluster mode): it hands each connection to an
// instance over IPC and lets go of it only once the instance has acknowledged it. An instance that exits
// right after server.close() can leave one connection unacknowledged, and its client waits forever (seen
// under a continuous load). cluster.worker.disconnect() closes the server, waits for its connections to
// end, and completes only once PM2 has confirmed that it sends this instance no more connections (one
// that was on its way is sent back and goes to another instance).
function stop() {
  if (stopping.signal.aborted) return
  stopping.abort()
  const closed = new Promise((resolve) => {
    if (cluster.isWorker) cluster.worker.once('disconnect', resolve).disconnect()
    else server.close(resolve)
  })
  closed
    .then(() => ready)
    .then(({ processId, client }) => {
      client.close()
      console.log(JSON.stringify({ event: 'releasing', instance, processId, pid: process.pid, at: now() }))
    })
    .catch(() => {}) // it never had a slot
    .finally(() => {
      table.close() // gives the slot back
      process.exit()
    })
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
