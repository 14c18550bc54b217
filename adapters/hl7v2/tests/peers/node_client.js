// node-hl7-client as a sender: sends each message of a JSON array file, one at
// a time on one connection, waiting for each ACK, and prints
// "ACK <MSA-1> <MSA-2>" per ACK. Exits 0 after all ACKs, 2 on timeout.
// Usage: node node_client.js PORT MESSAGES.json
'use strict'
const fs = require('fs')
const { Client, Message } = require('node-hl7-client')

const port = Number(process.argv[2])
const messages = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'))
const client = new Client({ host: '127.0.0.1' })
let waiting = null
const conn = client.createConnection({ port, waitAck: true }, async (res) => {
  const msg = res.getMessage()
  process.stdout.write(`ACK ${msg.get('MSA.1').toString()} ${msg.get('MSA.2').toString()}\n`)
  if (waiting) { const w = waiting; waiting = null; w() }
})
const timer = setTimeout(() => { process.stderr.write('timeout\n'); process.exit(2) }, 20000)

async function main () {
  for (const text of messages) {
    const acked = new Promise((resolve) => { waiting = resolve })
    await conn.sendMessage(new Message({ text }))
    await acked
  }
  clearTimeout(timer)
  await conn.close()
  process.exit(0)
}
main().catch((e) => { process.stderr.write(`error: ${e}\n`); process.exit(1) })
