/**
 * Figure 1 — tool-call overhead: one tool call through the runtime (scripted
 * driver → AgentClient → WebSocket → decode → handler → ToolResult entry →
 * agent) against a raw `ws` echo of the same payload, one connection each,
 * same process, batches interleaved.
 */
import * as Agent from "@ramure/core/Agent"
import * as Protocol from "@ramure/protocol/Protocol"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import { Deferred, Effect } from "effect"
import { interleaved, now, type FigureResult, type Size } from "./lib/Figure.js"
import { addEcho, echoClient, echoServer, handOver, scriptedRun } from "./lib/harness.js"

const TEXT = "x".repeat(64)

export const toolCallOverhead = (size: Size) =>
  Effect.gen(function* () {
    const rounds = size === "full" ? 20 : 3
    const callsPerBatch = size === "full" ? 1_000 : 100
    const warmup = size === "full" ? 5_000 : 100

    const slot = yield* Deferred.make<ScriptedAgents.Driver>()
    const drivers = new Map([["a", slot]])
    return yield* scriptedRun(handOver(drivers), () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("a")
        yield* addEcho(agent)
        const driver = yield* Deferred.await(slot)
        const { url } = yield* echoServer
        const echo = yield* echoClient(url)
        // The raw baseline echoes the frame the runtime would receive for the same call.
        const frame = Protocol.encode({ _tag: "ToolCall", callId: "a-m3x0k2-1", tool: "echo", args: { text: TEXT } })

        /** Wall and CPU time per call, in µs. */
        const perCall = (started: number, cpu: NodeJS.CpuUsage, n: number) => {
          const used = process.cpuUsage(cpu)
          return { wall: ((now() - started) * 1000) / n, cpu: (used.user + used.system) / n }
        }
        const subject = (n: number) =>
          Effect.gen(function* () {
            const started = now()
            const cpu = process.cpuUsage()
            for (let i = 0; i < n; i++) yield* driver.call("echo", { text: TEXT })
            return perCall(started, cpu, n)
          })
        const baseline = (n: number) =>
          Effect.promise(async () => {
            const started = now()
            const cpu = process.cpuUsage()
            for (let i = 0; i < n; i++) await echo.roundTrip(frame)
            return perCall(started, cpu, n)
          })

        yield* subject(warmup)
        yield* baseline(warmup)

        const runtime: Array<{ wall: number; cpu: number }> = []
        const raw: Array<{ wall: number; cpu: number }> = []
        for (const step of interleaved(rounds, ["raw", "runtime"] as const)) {
          if (step === "raw") raw.push(yield* baseline(callsPerBatch))
          else runtime.push(yield* subject(callsPerBatch))
        }
        const result: FigureResult = {
          id: 1,
          title: "Tool-call overhead",
          method:
            `${rounds} interleaved rounds of ${callsPerBatch} sequential calls each: ` +
            `AgentClient → WS → decode → \`echo\` handler → ToolResult entry → client, ` +
            `vs a raw \`ws\` echo of the same ${frame.length}-byte frame; one connection each, both ends in this process; ` +
            `ratio taken per round. CPU: this process's user + system time per call (both ends).`,
          metrics: [
            { name: "raw ws echo round trip", unit: "µs", samples: raw.map((r) => r.wall), digits: 0 },
            { name: "runtime tool call round trip", unit: "µs", samples: runtime.map((r) => r.wall), digits: 0 },
            {
              name: "runtime / raw (wall)",
              unit: "×",
              samples: runtime.map((r, i) => r.wall / raw[i]!.wall),
              target: { op: "<=", value: 3 },
              digits: 2
            },
            { name: "raw: process CPU per round trip", unit: "µs", samples: raw.map((r) => r.cpu), digits: 0 },
            { name: "runtime: process CPU per call (client + runtime)", unit: "µs", samples: runtime.map((r) => r.cpu), digits: 0 },
            { name: "runtime / raw (CPU)", unit: "×", samples: runtime.map((r, i) => r.cpu / raw[i]!.cpu), digits: 2 }
          ],
          counts: { calls: rounds * callsPerBatch + warmup },
          notes: [
            "Per call the runtime decodes the frame with `JSON.parse` and a check of the `ToolCall`'s three fields (the " +
              "Schema union decodes only the other messages), logs `ToolCalled` and `ToolReturned` — one JSONL write for " +
              "both: woken by an entry, the log's writer lets the fibers that are ready run before it takes its batch —, " +
              "runs the handler in a fiber of its own whose services and call annotation are set once at its start (no " +
              "`Effect.provide`/`Effect.locally` around it), appends the result to the agent's replication log, waits " +
              "until it is on disk and sends it as JSON of the run's own typed values (no Schema encode). No " +
              "`Agent.toolCall` span is made while traces go nowhere (Effect's own tracer).",
            "Waits are on Mailboxes (connection frames, the log's writer and its followers) and on `Effect.async` " +
              "(replication readers), not on Queues and Deferreds: Effect 3.22's Deferred constructor spreads a " +
              "symbol-keyed prototype, ~4 µs on Node 20 here — more than the rest of logging an entry.",
            "The largest single cost found: STATUS.md followed every log entry through a PubSub subscription and a Stream " +
              "(`RunLog.entries`), ~80 µs of CPU per call (this figure with and without the status file: 254 and 251 µs " +
              "against 172 and 167 µs). It now follows the log's written batches (`RunLog.follow`): one wake-up per batch.",
            "Before these changes, on the same machine the same hour: 255–270 µs of CPU per call (both ends); the code before " +
              "the architecture rework (516ee52) 148–162 µs.",
            "The floor of this design (`node --cpu-prof`): the Effect run loop and its hand-offs (~30 % of the samples: " +
              "frame → the connection's fiber → a fiber per call → the log's writer → the agent's replication reader → " +
              "send; on the client the connection's fiber → the caller), GC (~11 %), `ws` sends (~8 %), the log write " +
              "(~4 %). The raw echo is one callback per side, with no log and no fiber. ≤ 3× the raw echo (≈ 40 µs of CPU " +
              "for both ends) leaves no room for a durable log write and a fiber per call — it would take handling frames " +
              "synchronously in the `ws` callbacks, a different design rather than a tuning."
          ]
        }
        return result
      })
    )
  })
