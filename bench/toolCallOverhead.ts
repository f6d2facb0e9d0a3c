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
              target: { op: "<=", value: 2 },
              digits: 2
            },
            { name: "raw: process CPU per round trip", unit: "µs", samples: raw.map((r) => r.cpu), digits: 0 },
            { name: "runtime: process CPU per call (client + runtime)", unit: "µs", samples: runtime.map((r) => r.cpu), digits: 0 },
            { name: "runtime / raw (CPU)", unit: "×", samples: runtime.map((r, i) => r.cpu / raw[i]!.cpu), digits: 2 }
          ],
          counts: { calls: rounds * callsPerBatch + warmup },
          notes: [
            "What limits it (`node --cpu-prof`): a runtime call crosses five fiber hand-offs — caller → server connection loop → " +
              "forked handler fiber → the agent's entry log → writer fiber → client connection loop → caller's Deferred — each a " +
              "Queue/Deferred suspend and resume in the Effect runtime, where the raw echo is one callback per side. The profile is " +
              "the Effect run loop, Queue/Deferred and FiberRef bookkeeping plus GC (15–20 %), `ws` writev syscalls (6–10 %), Schema " +
              "decoding of the message union and the tool arguments (3–4 %), two log entries and three agent events per call.",
            "A floor for this design: one Effect fiber per socket with a Queue between `ws` and the fiber and a Deferred per call " +
              "already costs about 4× the raw echo's CPU here. ≤ 2× would need frames handled synchronously in the `ws` callback, " +
              "without fiber hops — a different design, not a tuning.",
            "Effect 3.22's `Deferred` constructor (used by every `Queue.take` that has to wait) spreads a symbol-keyed prototype, " +
              "which Node 20's V8 clones on its slow path: 5–12 µs per Deferred on this machine (3–5 % of the profile).",
            "Changed in core for this figure: connection frames and each agent's entry writer are consumed by a loop over " +
              "`Queue.takeBetween` instead of a Stream per connection (`Connection.forEach`, `EventLog.forEach`), and JSONL log " +
              "lines are batched per event-loop turn instead of waking a writer fiber per line: a third less CPU per call " +
              "(both versions side by side in one process, medians of 8 rounds: 1 agent 628 → 419 µs, 10 agents 688 → 410 µs)."
          ]
        }
        return result
      })
    )
  })
