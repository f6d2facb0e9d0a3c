/**
 * What one connection can cost a run: a flood of garbage is cut off, a
 * client that never reads is dropped with a reason, an agent that reads
 * slowly is paced — and the run's other agents go on.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Registry from "@ramure/node/Registry"
import { AgentLauncher, type LaunchSpec } from "@ramure/core/AgentLauncher"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import * as Ramure from "ramure/Ramure"
import { Effect, Fiber, Layer, Queue, Schema } from "effect"
import WebSocket from "ws"
import * as Agent from "../src/Agent.js"
import { sessionOf } from "../src/internal/agent.js"
import * as Process from "../src/Process.js"
import * as Protocol from "@ramure/protocol/Protocol"
import { Run } from "../src/Run.js"
import type { LogEntry } from "../src/RunEvent.js"
import { RunInfo } from "../src/RunInfo.js"
import { RunLog } from "../src/RunLog.js"
import { scripted, tempHome } from "./helpers.js"

interface Raw {
  readonly socket: WebSocket
  readonly received: Array<string>
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>
}

/** A raw WebSocket to the run, collecting what it is sent. */
const open = (url: string, secret: string) =>
  Effect.async<Raw, Error>((resume) => {
    const socket = new WebSocket(url, { headers: { [Protocol.TOKEN_HEADER]: secret } })
    const received: Array<string> = []
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })))
    socket.on("message", (data) => received.push(data.toString()))
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("open", () => resume(Effect.succeed({ socket, received, closed })))
  })

const noArgs = { description: "", parameters: Schema.Struct({}) }

/** A worker that calls `echo` for every message it gets: the run still serves its agents. */
const worker: ScriptedAgents.Scripts = {
  worker: (driver) =>
    Effect.gen(function* () {
      yield* driver.waitForTool("echo")
      while (true) {
        yield* driver.nextMessage
        yield* driver.call("echo", {})
      }
    })
}

/** Agents that are only started: the test connects for them, with the `LaunchSpec`s it takes from the queue. */
const unconnected = (specs: Queue.Queue<LaunchSpec>) =>
  Ramure.make({
    home: tempHome(),
    program: "test",
    launcher: Layer.succeed(AgentLauncher, {
      launch: (spec) =>
        Effect.as(Queue.offer(specs, spec), { pid: undefined, session: undefined, exited: Effect.never, outputTail: Effect.succeed("") })
    }),
    maxMessageBytes: 256 * 1024,
    maxUnreadBytes: 1024 * 1024
  })

const count = (entries: ReadonlyArray<LogEntry>, code: string) =>
  entries.reduce((sum, e) => (e.event._tag === "ProtocolViolation" && e.event.code === code ? sum + 1 + (e.event.suppressed ?? 0) : sum), 0)

describe("what a connection can cost the run", () => {
  it.live("a flood of garbage frames is answered only up to an allowance, then the connection is closed; the log counts them in a few entries", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        const worker = yield* Agent.make("worker")
        const echoed = yield* Effect.makeLatch(false)
        yield* worker.on("echo", noArgs, () => Effect.as(echoed.open, "ok"))
        const target = yield* Agent.make("target")
        const raw = yield* open(`${url}${Protocol.agentPath(target.id)}`, sessionOf(target).secret)
        for (let i = 0; i < 100_000; i++) raw.socket.send(i % 2 === 0 ? "{not json" : `{"_tag":"Garbage","i":${i}}`)
        const closed = yield* Effect.promise(() => raw.closed)
        // The run went on: another agent's call is served.
        yield* worker.send("call echo")
        yield* echoed.await
        const log = yield* (yield* RunLog).history({ agent: target.id })
        return { closed, answered: raw.received.length, log }
      }))
    return main().pipe(
      Effect.map(({ answered, closed, log }) => {
        expect(closed).toEqual({ code: Protocol.CloseCode.tooManyBadFrames, reason: "too many frames the run cannot act on" })
        expect(answered).toBeGreaterThanOrEqual(100)
        expect(answered).toBeLessThan(1_000)
        const violations = log.filter((e) => e.event._tag === "ProtocolViolation")
        expect(violations.length).toBeLessThanOrEqual(4)
        expect(count(log, "malformed") + count(log, "unknown_message")).toBe(answered + 1)
        expect(violations.at(-1)?.event).toMatchObject({ code: "too_many_bad_frames" })
      }),
      Effect.provide(scripted(worker))
    )
  })

  it.live("a control client that never reads is dropped once its unread replies pass the limit, with the reason in the log", () => {
    const home = tempHome()
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        const { executionId } = yield* RunInfo
        const runLog = yield* RunLog
        const [entry] = yield* Registry.list(home)
        const raw = yield* open(`${url}${Protocol.controlPath}`, entry!.entry.token)
        raw.socket.pause()
        let dropped: LogEntry | undefined
        for (let batch = 0; dropped === undefined && batch < 1_000; batch++) {
          for (let i = 0; i < 200; i++) {
            raw.socket.send(JSON.stringify({ _tag: "Request", id: String(batch * 200 + i), tag: "Status", payload: {}, headers: [] }))
          }
          yield* Effect.sleep("5 millis")
          dropped = (yield* runLog.history()).find((e) => e.event._tag === "ProtocolViolation" && e.event.code === "slow_reader")
        }
        raw.socket.terminate()
        return { dropped, executionId }
      }))
    return main().pipe(
      Effect.map(({ dropped }) => {
        expect(dropped?.event).toMatchObject({ _tag: "ProtocolViolation", code: "slow_reader", path: "/control" })
        expect(dropped?.event._tag === "ProtocolViolation" && dropped.event.message).toMatch(
          /^the peer does not read what it is sent: \d+ bytes unread \(the limit is 1048576\)$/
        )
      }),
      Effect.provide(scripted({}, { home, maxMessageBytes: 256 * 1024, maxUnreadBytes: 1024 * 1024 }))
    )
  })

  it.live("an agent that reads slowly is paced, not dropped: once it reads, it gets every entry, in order", () =>
    Effect.gen(function* () {
      const specs = yield* Queue.unbounded<LaunchSpec>()
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const starting = yield* Effect.fork(Agent.make("slow"))
          const spec = yield* Queue.take(specs)
          const raw = yield* open(`${spec.url}${Protocol.agentPath(spec.agentId)}`, spec.secret)
          raw.socket.send(Protocol.encode({ _tag: "Hello", protocol: Protocol.version, agentId: spec.agentId, after: 0 }))
          const agent = yield* Fiber.join(starting)
          raw.socket.pause()
          // 40 MB for an agent that reads nothing: far beyond what the run lets go unread (1 MiB here).
          const text = "z".repeat(4096)
          for (let i = 0; i < 10_000; i++) yield* agent.send(`${i} ${text}`)
          raw.socket.resume()
          const entries = () => raw.received.filter((frame) => frame.startsWith('{"_tag":"Entry"'))
          while (entries().length < 10_000 && raw.socket.readyState === WebSocket.OPEN) yield* Effect.sleep("20 millis")
          raw.socket.close()
          return entries().map((frame) => JSON.parse(frame).body.text.split(" ")[0])
        }))
      const received = yield* main().pipe(Effect.provide(unconnected(specs)))
      expect(received).toEqual(Array.from({ length: 10_000 }, (_, i) => String(i)))
    }), 120_000)
})
