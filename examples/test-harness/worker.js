// One worker of harness.js: takes a slot, and from it its port and its scratch directory.
'use strict'

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')

const { newMultiProcessClientWithFile } = require('procslot')

const client = newMultiProcessClientWithFile(process.env.HARNESS_ROOT, process.env.SLOTS_FILE)
const port = Number(process.env.BASE_PORT) + client.processId
const scratch = path.join(client.dataDir, `worker-${client.processId}`)
fs.rmSync(scratch, { recursive: true, force: true }) // a previous holder of this slot may have left files
fs.mkdirSync(scratch)

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ processId: client.processId, pid: process.pid }))
})
server.listen(port, '127.0.0.1', () => {
  process.send({ processId: client.processId, pid: process.pid, port, scratch })
})
process.on('disconnect', () => {
  server.close()
  client.close()
})
