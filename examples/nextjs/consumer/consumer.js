#!/usr/bin/env node
'use strict'
// Keeps the Next.js site fresh: reads wpcdc's post and term topics and asks the app to revalidate
// the paths each change made stale (consumer/plan.js says which).
//
//   KAFKA_BOOTSTRAP=127.0.0.1:9092 WPCDC_NAME=headless NEXT_URL=http://127.0.0.1:3000 \
//   REVALIDATE_SECRET=... node consumer/consumer.js
//
// Environment: KAFKA_BOOTSTRAP (required), WPCDC_NAME (the connector's --name: topics
// wpcdc.<name>.posts and wpcdc.<name>.terms) or POST_TOPIC / TERM_TOPIC, NEXT_URL, REVALIDATE_SECRET,
// GROUP_ID (default wpcdc-nextjs-<name>), FROM_BEGINNING (default true: a new group reads the whole
// compacted topic once, which revalidates every page).
//
// Delivery: the topics are read `read_committed` (the connector writes in Kafka transactions; an
// aborted one must stay invisible). A fetched batch becomes ONE revalidation call, and its offsets are
// committed only after the app answered 200: a crash in between repeats the call (revalidating twice
// is harmless), never skips it. A failing call is retried with backoff, without end, and logged.
// One JSON line per batch on stdout.
const { Kafka, logLevel } = require('kafkajs')
const { postPlan, termPlan, merge, UnsupportedEventError } = require('./plan')

// Errors that no retry can fix (a wrong secret or URL, a record that is not a version-1 event):
// the consumer exits with status 2 and the message, its offsets where they were.
class FatalError extends Error {}

function settings(env) {
  const name = env.WPCDC_NAME
  const config = {
    bootstrap: env.KAFKA_BOOTSTRAP,
    postTopic: env.POST_TOPIC || (name && `wpcdc.${name}.posts`),
    termTopic: env.TERM_TOPIC || (name && `wpcdc.${name}.terms`),
    nextUrl: (env.NEXT_URL || 'http://127.0.0.1:3000').replace(/\/+$/, ''),
    secret: env.REVALIDATE_SECRET,
    groupId: env.GROUP_ID || `wpcdc-nextjs-${name || 'consumer'}`,
    fromBeginning: (env.FROM_BEGINNING || 'true') !== 'false',
  }
  for (const [key, what] of [['bootstrap', 'KAFKA_BOOTSTRAP'], ['postTopic', 'WPCDC_NAME or POST_TOPIC'], ['secret', 'REVALIDATE_SECRET']]) {
    if (!config[key]) throw new Error(`${what} is not set (see the top of consumer/consumer.js)`)
  }
  return config
}

const log = record => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// POST the plan to the app until it answers 200 (or we are stopping: then throw, and nothing is
// committed). ``beat`` keeps the group membership alive while the app is unreachable.
async function revalidate(config, plan, stopping, beat) {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${config.nextUrl}/api/revalidate/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${config.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(plan),
        signal: AbortSignal.timeout(30000),
      })
      if (res.ok) return
      const text = await res.text()
      if (res.status === 401 || res.status === 400) {
        throw new FatalError(`the app refused the revalidation (${res.status}): ${text}; check REVALIDATE_SECRET and NEXT_URL`)
      }
      log({ level: 'warn', message: `revalidation answered ${res.status}`, attempt, body: text.slice(0, 300) })
    } catch (error) {
      if (error instanceof FatalError) throw error
      log({ level: 'warn', message: `revalidation failed: ${error.message}`, attempt, next_url: config.nextUrl })
    }
    if (stopping()) throw new Error('stopping before the revalidation succeeded: its offsets stay uncommitted')
    await sleep(Math.min(10000, 250 * 2 ** Math.min(attempt, 6)))
    await beat().catch(() => {})
  }
}

function decode(message) {
  if (message.value === null) return null
  try {
    return JSON.parse(message.value.toString('utf8'))
  } catch (error) {
    throw new FatalError(`offset ${message.offset}: not JSON (${error.message}): is this a wpcdc topic?`)
  }
}

// The connector creates its topics when it starts: wait for them rather than fail.
async function existingTopics(kafka, config) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    for (let waited = 0; ; waited++) {
      const names = new Set(await admin.listTopics())
      if (names.has(config.postTopic)) return [config.postTopic, config.termTopic].filter(t => t && names.has(t))
      if (waited % 10 === 0) log({ level: 'info', message: `waiting for topic ${config.postTopic} (is wpcdc stream running?)` })
      await sleep(1000)
    }
  } finally {
    await admin.disconnect()
  }
}

async function main() {
  const config = settings(process.env)
  const kafka = new Kafka({
    clientId: 'wpcdc-nextjs-consumer',
    brokers: config.bootstrap.split(','),
    logLevel: logLevel.WARN,
  })
  // readUncommitted: false is read_committed (KafkaJS's default, said here on purpose).
  const consumer = kafka.consumer({ groupId: config.groupId, readUncommitted: false })
  let stopping = false
  const stop = async signal => {
    if (stopping) return
    stopping = true
    log({ level: 'info', message: `${signal}: stopping` })
    await consumer.disconnect().catch(() => {})
    process.exit(0)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  const subscribed = await existingTopics(kafka, config)
  await consumer.connect()
  await consumer.subscribe({ topics: subscribed, fromBeginning: config.fromBeginning })
  log({ level: 'info', message: 'consuming', topics: subscribed, group: config.groupId, next_url: config.nextUrl })

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async args => {
      try {
        await handleBatch(args)
      } catch (error) {
        if (!(error instanceof FatalError || error instanceof UnsupportedEventError)) throw error
        process.stderr.write(`error: ${error.message}\n`)
        process.exit(2)
      }
    },
  })

  async function handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }) {
    if (!batch.messages.length) return
    const events = batch.messages.map(decode)
    const plan = merge(events.map(batch.topic === config.termTopic ? termPlan : postPlan))
    const last = batch.messages[batch.messages.length - 1]
    if (plan.paths.length || plan.all) {
      await revalidate(config, plan, () => stopping || !isRunning() || isStale(), heartbeat)
    }
    // Only now is the work of these records done: commit past the last one.
    const next = (BigInt(last.offset) + 1n).toString()
    await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }])
    resolveOffset(last.offset)
    await heartbeat()
    const newest = events.filter(Boolean).at(-1)
    log({
      level: 'info', topic: batch.topic, partition: batch.partition, offsets: [batch.messages[0].offset, last.offset],
      records: batch.messages.length, revalidated: plan.paths, all: plan.all,
      events: events.map(e => (e === null ? 'tombstone' : `${e.event_id} ${e.action ?? e.op}`)),
      lag_ms: newest?.source?.ts_ms ? Date.now() - newest.source.ts_ms : null,
    })
  }
}

main().catch(error => {
  process.stderr.write(`error: ${error.name}: ${error.message}\n`)
  process.exit(1)
})
