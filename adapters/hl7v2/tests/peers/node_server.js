// Stock node-hl7-server answering AA to everything (stores nothing).
// Prints "PORT <n>" once listening and "RECV <MSH-10>" per message.
// With --quiet (benchmark) nothing is printed per message.
// Usage: node node_server.js [--quiet]
'use strict'
const quiet = process.argv.includes('--quiet')
const { Server } = require('node-hl7-server')

const server = new Server({ bindAddress: '127.0.0.1' })
const inbound = server.createInbound({ port: 0 }, async (req, res) => {
  if (!quiet) {
    const id = req.getMessage().get('MSH.10').toString()
    process.stdout.write(`RECV ${id}\n`)
  }
  await res.sendResponse('AA')
})
inbound.on('listen', () => {
  process.stdout.write(`PORT ${inbound._socket.address().port}\n`)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
