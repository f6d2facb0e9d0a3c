/**
 * Figure 2 — tool-call throughput: calls per second through one runtime with
 * 1, 10 and 100 agents calling `echo` concurrently (closed loop: each agent
 * calls again as soon as its result is back). Two set-ups: the agents'
 * clients in another process (the runtime alone in its process, as with pi
 * agents) and in-process scripted drivers (`Ramure.layerScripted`, clients
 * and runtime sharing one process).
 */
import type * as AgentClient from "@ramure/protocol/AgentClient"
import { Effect } from "effect"
import { interleaved, type FigureResult, type Metric, type Size } from "./lib/Figure.js"
import { scriptedRun } from "./lib/harness.js"
import { closedLoop, echoScripts, startEchoAgents } from "./lib/load.js"
import * as RemoteDrivers from "./lib/remoteDrivers.js"

type Clients = ReadonlyArray<Pick<AgentClient.AgentClient, "call">>

const ownCpu = Effect.sync(() => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
})

/**
 * Per level: calls/s and the runtime process's CPU time per call (µs), after a
 * warm-up, `rounds` interleaved windows per level.
 */
const measure = (
  clients: Clients,
  cpu: Effect.Effect<number, unknown>,
  options: { readonly levels: ReadonlyArray<number>; readonly rounds: number; readonly durationMs: number; readonly warmupMs: number }
) =>
  Effect.gen(function* () {
    yield* closedLoop(clients, options.warmupMs)
    const rates = new Map<number, Array<number>>(options.levels.map((level) => [level, []]))
    const cpuPerCall = new Map<number, Array<number>>(options.levels.map((level) => [level, []]))
    let calls = 0
    for (const level of interleaved(options.rounds, options.levels)) {
      const before = yield* cpu
      const load = yield* closedLoop(clients.slice(0, level), options.durationMs)
      const used = (yield* cpu) - before
      calls += load.calls
      rates.get(level)!.push(load.calls / load.seconds)
      cpuPerCall.get(level)!.push(used / load.calls)
    }
    return { rates, cpuPerCall, calls }
  })

export const toolCallThroughput = (size: Size) =>
  Effect.gen(function* () {
    const levels = size === "full" ? [1, 10, 100] : [1, 10]
    const rounds = size === "full" ? 4 : 1
    const durationMs = size === "full" ? 2_000 : 250
    const warmupMs = size === "full" ? 2_000 : 200
    const agents = Math.max(...levels)
    const options = { levels, rounds, durationMs, warmupMs }

    const remote = yield* Effect.scoped(
      Effect.gen(function* () {
        const run = yield* RemoteDrivers.remoteRun(agents)
        const measured = yield* measure(run.clients, run.cpu, options)
        yield* run.stop
        return measured
      })
    )
    const { drivers, scripts } = echoScripts()
    const local = yield* scriptedRun(scripts, () =>
      Effect.flatMap(startEchoAgents(agents, drivers), (all) => measure(all, ownCpu, options)))

    const metrics: Array<Metric> = [
      ...levels.map((level): Metric => ({
        name: `${level} agent${level === 1 ? "" : "s"}, clients in another process`,
        unit: "calls/s",
        samples: remote.rates.get(level)!,
        ...(level === 10 ? { target: { op: ">=", value: 10_000 } as const } : {})
      })),
      ...levels.map((level): Metric => ({
        name: `${level} agent${level === 1 ? "" : "s"}, in-process scripted drivers`,
        unit: "calls/s",
        samples: local.rates.get(level)!
      })),
      ...levels.map((level): Metric => ({
        name: `${level} agent${level === 1 ? "" : "s"}: runtime process CPU per call (clients in another process)`,
        unit: "µs",
        samples: remote.cpuPerCall.get(level)!,
        ...(level === 10 ? { target: { op: "<=", value: 100 } as const } : {}),
        digits: 0
      })),
      {
        name: "10 agents: calls/s one core would sustain (10⁶ / runtime CPU per call)",
        unit: "calls/s",
        samples: remote.cpuPerCall.get(Math.min(10, agents))!.map((micros) => 1e6 / micros),
        digits: 0
      },
      ...levels.map((level): Metric => ({
        name: `${level} agent${level === 1 ? "" : "s"}: process CPU per call (in-process, runtime + drivers)`,
        unit: "µs",
        samples: local.cpuPerCall.get(level)!,
        digits: 0
      }))
    ]
    const result: FigureResult = {
      id: 2,
      title: "Tool-call throughput",
      method:
        `One run with ${agents} agents that have an \`echo\` tool; for each level, that many agents call it back to back ` +
        `for ${durationMs / 1000} s after a ${warmupMs / 1000} s warm-up; ${rounds} rounds, levels interleaved. ` +
        `"clients in another process": the run in a child process whose launcher has this process connect an ` +
        `\`AgentClient\` per agent (the runtime alone in its process, as with pi agents); "in-process": ` +
        `\`Ramure.layerScripted\`, runtime and drivers in one process.`,
      metrics,
      counts: { calls: remote.calls + local.calls },
      notes: [
        "The runtime is CPU-bound on one event loop: throughput ≈ the share of a core it gets ÷ its CPU per call, and more " +
          "concurrent agents only add queueing. 10,000 calls/s needs ≤ 100 µs of runtime CPU per call on a whole core; the " +
          "row \"calls/s one core would sustain\" is what a whole, idle core would give at the measured CPU per call.",
        "Per call the runtime decodes the frame (`JSON.parse` and a field check for `ToolCall`), logs two entries (one JSONL " +
          "write for both, the status fold by agent id), runs the handler in a fiber of its own (decoding the arguments with " +
          "the tool's Schema), appends the result to the agent's replication log, waits until it is on disk and sends it; see " +
          "figure 1 for what changed and where the time goes.",
        "In the run's own process (`--cpu-prof` of the child) about a quarter of the samples are in `writev`: each result is " +
          "a WebSocket frame to another process over loopback TCP, and the send wakes the receiver; on this VM that is tens " +
          "of µs a frame, a cost the in-process raw echo of figure 1 does not have. With the Effect run loop (~15 %), GC " +
          "(~7 %) and the log write (~4 %) it puts the floor of this design well above 100 µs per call here.",
        "On this shared 2-core VM (load average in the header) the bench and the runtime get a fraction of the CPU, so the " +
          "absolute rates are far below what an idle machine gives; the CPU-per-call rows are the more stable measure."
      ]
    }
    return result
  })
