// A node:cluster HTTP server where every worker takes a slot: a small, unique ID it keeps while it lives,
// and that a replacement of a dead worker takes over.
//
//   node examples/cluster-server.js
//   WORKERS=4 PORT=3000 SLOTS_FILE=/run/myapp/slots node examples/cluster-server.js
//
// GET / answers { processId, processCount, pid }. A worker that dies is replaced, and the replacement gets
// the freed slot. SIGTERM or SIGINT to the primary shuts down cleanly: every worker closes its client
// (releasing its slot) and the primary exits 0.
'use strict'

const cluster = require('node:cluster')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

const { SlotTable, newMultiProcessClient } = require('procslot')

const WORKERS = Number(process.env.WORKERS ?? os.availableParallelism())
const PORT = Number(process.env.PORT ?? 3000)
const SLOTS_FILE = process.env.SLOTS_FILE ?? path.join(os.tmpdir(), 'cluster-server-example-slots')
const DATA_DIR = process.env.DATA_DIR ?? path.join(os.tmpdir(), 'cluster-server-example-data')

if (cluster.isPrimary) {
  // Make sure the table has a slot for every worker (it never shrinks). The primary takes no slot.
  SlotTable.open(SLOTS_FILE, { slots: WORKERS }).close()

  let stopping = false
  for (let i = 0; i < WORKERS; i++) cluster.fork()
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return
    console.log(`worker pid=${worker.process.pid} died (${signal ?? `code ${code}`}); forking a replacement`)
    cluster.fork()
  })

  const stop = () => {
    if (stopping) return
    stopping = true
    console.log('stopping')
    // Each worker closes its server and its client when disconnected; the primary exits once all are gone.
    for (const worker of Object.values(cluster.workers)) worker.disconnect()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else {
  // Takes this process's slot in SLOTS_FILE: processId is 0..processCount-1, unique among live workers.
  const client = newMultiProcessClient(DATA_DIR, { concurrency: { slotsFile: SLOTS_FILE } })

  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ processId: client.processId, processCount: client.processCount, pid: process.pid }))
  })
  server.listen(PORT, '127.0.0.1', () => {
    const { port } = server.address()
    console.log(
      `worker pid=${process.pid} slot=${client.processId} of ${client.processCount} listening on http://127.0.0.1:${port}/`,
    )
  })
  process.on('disconnect', () => {
    server.close()
    client.close() // gives the slot back (so would the end of the process)
  })
}
