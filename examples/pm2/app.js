// The app of ecosystem.config.cjs: an HTTP server whose instance N takes slot N of a slot file.
//
// PM2 cluster mode runs this file once per instance with NODE_APP_INSTANCE set to the instance's number.
// Its ID is that slot when it is free — always, unless an older process with the same instance number is
// still alive (a reload overlap), in which case it takes the lowest free slot instead.
'use strict'

const http = require('node:http')

const { SlotTable, multiProcessConfig, newClient } = require('procslot')

const file = process.env.PROCSLOT_SLOTS_FILE
const instance = Number(process.env.NODE_APP_INSTANCE ?? 0)

// The table (grown to PROCSLOT_SLOTS) holds this process's slot until it is closed or the process ends.
const table = SlotTable.open(file, { slots: Number(process.env.PROCSLOT_SLOTS ?? 8) })
const processId = table.acquire({ preferred: instance })
const client = newClient(process.env.DATA_DIR, multiProcessConfig(processId, table.size, file))

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ instance, processId: client.processId, pid: process.pid }))
})
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  // One JSON line for PM2's log (and the tests).
  console.log(JSON.stringify({ instance, processId, pid: process.pid, port: server.address().port }))
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
