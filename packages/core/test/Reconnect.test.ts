/**
 * Replication across dropped connections: the agent's log survives any
 * number of reconnects, from either side, with nothing lost, doubled or
 * reordered — checked end to end with a storm of drops, and on the client
 * alone against a hand-played runtime.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Queue, Random, Schema, type Scope } from "effect"
import * as Agent from "../src/Agent.js"
import * as AgentClient from "@ramure/protocol/AgentClient"
import * as Process from "../src/Process.js"
import * as Protocol from "@ramure/protocol/Protocol"
import type { Driver, Script } from "@ramure/testing/ScriptedAgents"
import { sessionOf } from "../src/internal/agent.js"
import { dropFromServer, scripted } from "./helpers.js"
import { entry, rawRuntime, say } from "./rawRuntime.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const waitUntil = (check: () => boolean, what: string, timeout: Duration.DurationInput = "20 seconds") =>
  Effect.gen(function* () {
    while (!check()) yield* Effect.sleep("5 millis")
  }).pipe(Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting until ${what}`) }), Effect.orDie)

describe("Reconnect storm", () => {
  const AGENTS = 30
  const CALLS = 20
  const MESSAGES = 10
  it.live(
    `${AGENTS} agents × ${CALLS} tool calls and ${MESSAGES} messages while connections drop from both sides: ` +
      "every call gets exactly one result from exactly one handler run, every message arrives once and in order",
    () => {
      const drivers = new Map<string, Driver>()
      /** Handler runs per logical call `agent:i` (each logical call is one call id). */
      const invocations = new Map<string, number>()
      const Work = Schema.Struct({ agent: Schema.String, i: Schema.Number })
      const Report = Schema.Struct({ agent: Schema.String, results: Schema.Array(Schema.String), messages: Schema.Array(Schema.String) })

      const worker: Script = (driver) =>
        Effect.gen(function* () {
          drivers.set(driver.agentId, driver)
          yield* driver.waitForTool("report")
          const results = yield* Effect.forEach(
            range(CALLS),
            (i) => Effect.map(driver.call("work", { agent: driver.agentId, i }), (r) => (r.isError ? `error: ${r.text}` : r.text)),
            { concurrency: 2 }
          )
          const messages: Array<string> = []
          for (let m = 0; m < MESSAGES; m++) messages.push(yield* driver.nextMessage)
          yield* driver.call("report", { agent: driver.agentId, results, messages })
        })

      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const agents = yield* Effect.all(range(AGENTS).map((k) => Agent.make(`w${k}`)), { concurrency: "unbounded" })
          const reports = new Map<string, typeof Report.Type>()
          for (const agent of agents) {
            yield* agent.on("work", { description: "", parameters: Work }, ({ agent: id, i }) =>
              Effect.sync(() => invocations.set(`${id}:${i}`, (invocations.get(`${id}:${i}`) ?? 0) + 1)).pipe(
                Effect.zipRight(Effect.sleep(Duration.millis(5 + (i % 6)))),
                Effect.as(`${id}:${i}`)
              ))
            yield* agent.on("report", { description: "", parameters: Report }, (report) =>
              Effect.sync(() => void reports.set(report.agent, report)))
          }
          const allReported = () => reports.size === AGENTS

          // Every few milliseconds, drop three random agents' connections: 3 times in 4 from the server, else from the agent.
          const drops = { server: 0, client: 0 }
          const drop = Effect.gen(function* () {
            const agent = agents[yield* Random.nextIntBetween(0, AGENTS)]!
            if ((yield* Random.nextIntBetween(0, 4)) < 3) {
              if (yield* dropFromServer(agent, "storm")) drops.server++
            } else {
              const driver = drivers.get(agent.id)
              if (driver?.connected()) {
                drops.client++
                yield* driver.dropConnection
              }
            }
          })
          const storm = Effect.gen(function* () {
            while (!allReported()) {
              yield* Effect.sleep(Duration.millis(yield* Random.nextIntBetween(1, 4)))
              yield* Effect.repeatN(drop, 2)
            }
          })
          yield* Effect.fork(storm)
          // User messages during the storm, in rounds.
          yield* Effect.forEach(
            range(MESSAGES),
            (m) => Effect.zipRight(Effect.sleep("40 millis"), Effect.forEach(agents, (agent) => agent.send(`${agent.id}:m${m}`), { discard: true })),
            { discard: true }
          )
          yield* waitUntil(allReported, "every agent has reported", "45 seconds")
          // Nothing more arrives later: no message was delivered twice.
          yield* Effect.sleep("100 millis")
          const leftover = yield* Effect.forEach([...drivers.values()], (driver) => Queue.size(driver.messages))
          return { agents: agents.map((a) => a.id), reports, drops, leftover }
        }))

      return main().pipe(
        Effect.map(({ agents, drops, leftover, reports }) => {
          expect(drops.server).toBeGreaterThan(2 * AGENTS)
          expect(drops.client).toBeGreaterThan(AGENTS / 2)
          for (const id of agents) {
            const report = reports.get(id)!
            expect(report.results).toEqual(range(CALLS).map((i) => `${id}:${i}`))
            expect(report.messages).toEqual(range(MESSAGES).map((m) => `${id}:m${m}`))
          }
          expect(invocations.size).toBe(AGENTS * CALLS)
          expect([...invocations.values()].every((n) => n === 1)).toBe(true)
          expect(leftover.every((n) => n === 0)).toBe(true)
        }),
        Effect.provide(scripted(() => worker))
      )
    },
    60_000
  )

  const SENDERS = 8
  const EACH = 30
  it.live(
    `entries reach the agent in log order, once each, while ${SENDERS} fibers append concurrently and the connection drops`,
    () => {
      // The senders yield every 16 to 44 operations (the default is 2048): appends interleave as they can under load.
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const agent = yield* Agent.make("reader")
          const received = yield* Deferred.make<ReadonlyArray<string>>()
          yield* agent.on("report", { description: "", parameters: Schema.Struct({ messages: Schema.Array(Schema.String) }) }, ({ messages }) =>
            Deferred.succeed(received, messages))
          const drops = Effect.forEach(range(4), () =>
            Effect.zipRight(Effect.sleep("10 millis"), dropFromServer(agent, "drop")),
            { discard: true })
          const senders = Effect.forEach(
            range(SENDERS),
            (s) => Effect.forEach(range(EACH), (j) => agent.send(`s${s}-${j}`), { discard: true }).pipe(Effect.withMaxOpsBeforeYield(16 + 4 * s)),
            { concurrency: "unbounded", discard: true }
          )
          yield* Effect.all([senders, drops], { concurrency: "unbounded", discard: true })
          const messages = yield* Deferred.await(received)
          const log = (yield* sessionOf(agent).entries).flatMap((body) => (body._tag === "UserMessage" ? [body.text] : []))
          return { messages, log }
        }))
      return main().pipe(
        Effect.map(({ log, messages }) => {
          expect(log).toHaveLength(SENDERS * EACH)
          expect(messages).toEqual(log)
        }),
        Effect.provide(
          scripted({
            reader: (driver) =>
              Effect.gen(function* () {
                const messages: Array<string> = []
                for (let i = 0; i < SENDERS * EACH; i++) messages.push(yield* driver.nextMessage)
                yield* driver.waitForTool("report")
                yield* driver.call("report", { messages })
              })
          })
        )
      )
    },
    30_000
  )
})

// ---------------------------------------------------------------------------
// The client against a hand-played runtime

/** A client of agent "g" that records every entry it applies. */
const recordingClient = (url: string): Effect.Effect<{ client: AgentClient.AgentClient; applied: Array<string> }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const applied: Array<string> = []
    const client = yield* AgentClient.make({
      url,
      agentId: "g",
      token: "t",
      onEntry: (body) => Effect.sync(() => void applied.push(body._tag === "UserMessage" ? body.text : body._tag))
    })
    return { client, applied }
  })

describe("AgentClient replication", () => {
  it.scopedLive("a gap (entry N+2 at N) asks for Hello{after: N} once; N+1, N+2 … are then applied once, in order", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const { applied, client } = yield* recordingClient(server.url)
      const peer = yield* Queue.take(server.connections)
      expect(yield* peer.next).toEqual({ _tag: "Hello", protocol: Protocol.version, agentId: "g", after: 0 })
      peer.send(entry(1, say("one")))
      peer.send(entry(2, say("two")))
      peer.send({ _tag: "Synced", seq: 2 })
      yield* client.synced
      // N = 2: entry 4 arrives first, then 5, then a stale duplicate of 2.
      peer.send(entry(4, say("four")))
      peer.send(entry(5, say("five")))
      peer.send(entry(2, say("two")))
      expect(yield* peer.next).toEqual({ _tag: "Hello", protocol: Protocol.version, agentId: "g", after: 2 })
      yield* Effect.sleep("50 millis")
      expect(yield* peer.pending).toBe(0) // one resync in flight, not one per out-of-order entry
      expect(applied).toEqual(["one", "two"])
      // The resync: the backlog from 3, with duplicates on the way.
      peer.send(entry(3, say("three")))
      peer.send(entry(4, say("four")))
      peer.send(entry(3, say("three")))
      peer.send(entry(4, say("four")))
      peer.send(entry(5, say("five")))
      peer.send({ _tag: "Synced", seq: 5 })
      yield* waitUntil(() => client.lastSeq() === 5, "the client has applied entry 5", "3 seconds")
      yield* Effect.sleep("50 millis")
      expect(applied).toEqual(["one", "two", "three", "four", "five"])
      expect(yield* peer.pending).toBe(0)
    }))

  it.scopedLive("a tool call made while disconnected is sent after the next sync and gets its result", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const { client } = yield* recordingClient(server.url)
      const first = yield* Queue.take(server.connections)
      yield* first.next
      first.send(entry(1, { _tag: "ToolAdded", tool: { name: "t", description: "", parameters: {} } }))
      first.send({ _tag: "Synced", seq: 1 })
      yield* client.synced
      first.close(4002, "dropped")
      yield* waitUntil(() => !client.connected(), "the client has seen the drop", "3 seconds")
      const call = yield* Effect.fork(client.call("t", { x: 1 }, "call-1"))
      const second = yield* Queue.take(server.connections)
      expect(yield* second.next).toMatchObject({ _tag: "Hello", after: 1 })
      second.send({ _tag: "Synced", seq: 1 })
      expect(yield* second.next).toEqual({ _tag: "ToolCall", callId: "call-1", tool: "t", args: { x: 1 } })
      second.send(entry(2, { _tag: "ToolResult", callId: "call-1", isError: false, text: "done" }))
      expect(yield* call.await.pipe(Effect.flatten)).toEqual({ isError: false, text: "done" })
    }))

  it.scopedLive("what the runtime sends right after accepting is not lost: an immediate unknown_agent is fatal at once", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime((socket) => {
        socket.send(Protocol.encode({ _tag: "ProtocolError", code: "unknown_agent", message: "no agent g" }))
        socket.close(Protocol.CloseCode.unknownAgent, "unknown agent")
      })
      const { client } = yield* recordingClient(server.url)
      const error = yield* client.fatal.pipe(Effect.flip, Effect.timeout("3 seconds"))
      expect(error).toBeInstanceOf(AgentClient.AgentClientError)
      expect(error.message).toBe("no agent g")
      expect(yield* Effect.flip(client.synced)).toBeInstanceOf(AgentClient.AgentClientError)
      yield* Effect.sleep("200 millis")
      expect(server.accepted()).toBe(1)
    }))
})
