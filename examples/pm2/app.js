// The app of ecosystem.config.cjs: an HTTP server whose instance N takes slot N of a slot file that has
// exactly one slot per instance, so processCount is the fleet size (not the machine's core count).
//
// PM2 cluster mode runs this file once per instance with NODE_APP_INSTANCE set to the instance's number.
// Its ID is slot N when it is free — always, except during a reload: `pm2 reload` starts the new instance
// N before it stops the old one, so slot N is still held. The new process then waits for a slot (off the
// JavaScript thread) and takes the one the old process gives back when PM2 stops it. Two live processes
// never share an ID, which PM2's NODE_APP_INSTANCE alone cannot promise (both carry the same number).
'use strict'

const http = require('node:http')

const { SlotTable, multiProcessConfig, newClient } = require('procslot')

const file = process.env.PROCSLOT_SLOTS_FILE
const instance = Number(process.env.NODE_APP_INSTANCE ?? 0)
const fleet = Number(process.env.PROCSLOT_FLEET)

async function main() {
  // A new file gets exactly `fleet` slots; the table holds this process's slot until it is closed or the
  // process ends (a SIGKILLed instance's slot is free at once).
  const table = SlotTable.open(file, { slots: fleet })
  const processId = await table.waitForSlot({ preferred: instance, timeoutMs: 60_000 })
  const client = newClient(process.env.DATA_DIR, multiProcessConfig(processId, fleet, file))

  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ instance, processId: client.processId, processCount: client.processCount, pid: process.pid }))
  })
  server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
    // One JSON line for PM2's log (and the tests).
    console.log(JSON.stringify({ instance, processId, processCount: client.processCount, pid: process.pid, port: server.address().port }))
  })

  // `pm2 stop` / `pm2 reload` send SIGINT; stop serving and give the slot back.
  const stop = () => {
    server.close()
    client.close()
    table.close()
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
