#!/usr/bin/env node
// Read a topic from the beginning with KafkaJS, the way a Next.js consumer of wpcdc's topics would,
// and print one JSON line per record on stdout:
//
//   {"partition": 0, "offset": 12, "key": "...", "value": "..." | null, "headers": [["k", "v"], ...]}
//
// Usage: node read.js --bootstrap HOST:PORT --topic T [--max N] [--timeout-ms MS]
//
// Read-committed (`readUncommitted: false`), as wpcdc's consumers must read: the connector writes
// in transactions, and an aborted one must stay invisible. It stops when every partition has been
// read up to the end offset the broker reported at start (the last stable offset), after --max
// records, or after --timeout-ms (exit 2). A consumer crash (KafkaJS cannot decode snappy, lz4 or
// zstd batches without plugins) prints `error: <name>: <message>` on stderr and exits 1.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function parseArgs(argv) {
  const args = { max: Infinity, timeoutMs: 60000 }
  for (let i = 2; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (flag === '--bootstrap') args.bootstrap = value
    else if (flag === '--topic') args.topic = value
    else if (flag === '--max') args.max = Number(value)
    else if (flag === '--timeout-ms') args.timeoutMs = Number(value)
    else throw new Error(`unknown argument ${flag}`)
  }
  if (!args.bootstrap || !args.topic) throw new Error('--bootstrap and --topic are required')
  return args
}

// KafkaJS's default logger writes info lines with console.info, that is on stdout, where the
// records go: everything it says goes to stderr instead.
const stderrLogger = () => ({ namespace, level, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`kafkajs ${level}: ${namespace}: ${message} ${JSON.stringify(extra)}\n`)
}

const text = buf => (buf === null || buf === undefined ? null : buf.toString('utf8'))

// KafkaJS gives headers as an object whose values are a Buffer, or an array of them when a key
// repeats; the other clients give a list of pairs in record order.
function headerPairs(headers) {
  const pairs = []
  for (const [key, value] of Object.entries(headers || {})) {
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([key, text(v)])
  }
  return pairs
}

async function main() {
  const args = parseArgs(process.argv)
  const kafka = new Kafka({
    clientId: 'wpcdc-kafkajs-reader',
    brokers: [args.bootstrap],
    logLevel: logLevel.ERROR,
    logCreator: stderrLogger,
    retry: { retries: 3 },
  })

  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchTopicOffsets(args.topic)
  await admin.disconnect()
  // The partitions still to read, each with the end offset to read up to.
  const todo = new Map()
  for (const { partition, low, high } of offsets) {
    if (BigInt(high) > BigInt(low)) todo.set(partition, BigInt(high))
  }

  let count = 0
  let finished = false
  const consumer = kafka.consumer({
    groupId: `wpcdc-kafkajs-reader-${process.pid}-${Date.now()}`,
    readUncommitted: false,
    retry: { restartOnFailure: async () => false },
  })
  const finish = async code => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    await consumer.disconnect().catch(() => {})
    process.exit(code)
  }
  const timer = setTimeout(() => {
    process.stderr.write(`error: timeout after ${args.timeoutMs} ms, ${count} records read\n`)
    finish(2)
  }, args.timeoutMs)

  const maybeDone = () => {
    if (todo.size === 0 || count >= args.max) finish(0)
  }
  // Batches holding only transaction markers or aborted records reach no handler, but still
  // end in this event, with the offset the consumer moved past.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const end = todo.get(payload.partition)
    if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) todo.delete(payload.partition)
    maybeDone()
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    const e = payload.error
    process.stderr.write(`error: ${e.name}: ${e.message}\n`)
    if (!finished) {
      finished = true
      process.exit(1)
    }
  })

  if (todo.size === 0) return finish(0)
  await consumer.connect()
  await consumer.subscribe({ topic: args.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (finished || count >= args.max) return
      count += 1
      const record = {
        partition,
        offset: Number(message.offset),
        key: text(message.key),
        value: text(message.value),
        headers: headerPairs(message.headers),
      }
      process.stdout.write(JSON.stringify(record) + '\n')
    },
  })
}

main().catch(e => {
  process.stderr.write(`error: ${e.name}: ${e.message}\n`)
  process.exit(1)
})
