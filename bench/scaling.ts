/**
 * Figure 10 — the cost as the run grows: tool-call latency (p50, p99) and the
 * runtime's CPU per call with 1, 10, 100 and 1,000 live agents, the runtime
 * alone in a child process (the agents' clients in this one, as with pi).
 * At each size, one agent calls while the others idle (what a call costs in a
 * bigger run), then every agent calls at once (what the run sustains).
 */
import type * as AgentClient from "@ramure/protocol/AgentClient"
import { Effect } from "effect"
import { interleaved, now, type FigureResult, type Metric, type Size } from "./lib/Figure.js"
import { TEXT } from "./lib/load.js"
import * as RemoteDrivers from "./lib/remoteDrivers.js"

type Clients = ReadonlyArray<Pick<AgentClient.AgentClient, "call">>

/** The value below which `p` of the sorted `values` lie. */
const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN

interface Window {
  readonly p50: number
  readonly p99: number
  readonly callsPerSecond: number
  readonly cpuPerCall: number
}

/** Every client calls `echo` back to back for `durationMs`: each call's latency (µs), and the child's CPU per call. */
const window = (clients: Clients, durationMs: number, cpu: Effect.Effect<number, unknown>) =>
  Effect.gen(function* () {
    const latencies: Array<number> = []
    const cpuBefore = yield* cpu
    const started = now()
    const deadline = started + durationMs
    yield* Effect.forEach(
      clients,
      (client) =>
        Effect.gen(function* () {
          while (now() < deadline) {
            const sent = now()
            yield* client.call("echo", { text: TEXT })
            latencies.push((now() - sent) * 1000)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    const seconds = (now() - started) / 1000
    const used = (yield* cpu) - cpuBefore
    latencies.sort((a, b) => a - b)
    return {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      callsPerSecond: latencies.length / seconds,
      cpuPerCall: used / latencies.length
    } satisfies Window
  })

interface Sample {
  readonly one: Window
  readonly all: Window
}

const once = (agents: number, durationMs: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const run = yield* RemoteDrivers.remoteRun(agents)
      // A short warm-up, so that the first window does not pay for compiling the path.
      yield* window(run.clients.slice(0, 1), durationMs / 4, run.cpu)
      const one = yield* window(run.clients.slice(0, 1), durationMs, run.cpu)
      const all = yield* window(run.clients, durationMs, run.cpu)
      yield* run.stop
      return { one, all } satisfies Sample
    })
  )

export const scaling = (size: Size) =>
  Effect.gen(function* () {
    const levels = size === "full" ? [1, 10, 100, 1_000] : [1, 10]
    const rounds = size === "full" ? 2 : 1
    const durationMs = size === "full" ? 2_000 : 250
    const samples = new Map<number, Array<Sample>>(levels.map((level) => [level, []]))
    for (const level of interleaved(rounds, levels)) samples.get(level)!.push(yield* once(level, durationMs))

    const label = (level: number) => `${level.toLocaleString("en-US")} live agent${level === 1 ? "" : "s"}`
    const metrics: Array<Metric> = levels.flatMap((level): Array<Metric> => {
      const runs = samples.get(level)!
      return [
        { name: `${label(level)}, one calling: latency p50`, unit: "µs", samples: runs.map((s) => s.one.p50), digits: 0 },
        { name: `${label(level)}, one calling: latency p99`, unit: "µs", samples: runs.map((s) => s.one.p99), digits: 0 },
        { name: `${label(level)}, one calling: runtime CPU per call`, unit: "µs", samples: runs.map((s) => s.one.cpuPerCall), digits: 0 },
        ...(level === 1 ? [] : [
          { name: `${label(level)}, all calling: latency p50`, unit: "µs", samples: runs.map((s) => s.all.p50), digits: 0 },
          { name: `${label(level)}, all calling: latency p99`, unit: "µs", samples: runs.map((s) => s.all.p99), digits: 0 },
          { name: `${label(level)}, all calling: calls/s`, unit: "calls/s", samples: runs.map((s) => s.all.callsPerSecond), digits: 0 },
          { name: `${label(level)}, all calling: runtime CPU per call`, unit: "µs", samples: runs.map((s) => s.all.cpuPerCall), digits: 0 }
        ])
      ]
    })
    const result: FigureResult = {
      id: 10,
      title: "Cost as the run grows",
      method:
        `For each size (${levels.join(", ")} live agents with an \`echo\` tool; ${rounds} rounds, sizes interleaved) a fresh ` +
        `run in a child process whose agents' \`AgentClient\`s are in this process. After a short warm-up, one agent calls ` +
        `\`echo\` back to back for ${durationMs / 1000} s while the others idle ("one calling"), then every agent does at ` +
        `once ("all calling", a closed loop: each calls again as soon as its result is back). Latency is each call's round ` +
        `trip as its client sees it; CPU is the run's process (user + system) per call.`,
      metrics,
      counts: { agents: rounds * levels.reduce((sum, level) => sum + level, 0) },
      notes: [
        "With one agent calling, latency and CPU per call stay flat from 1 to 1,000 live agents: nothing on a call's path " +
          "looks at the other agents (sessions, routes and the status fold find an agent by id; the status file follows " +
          "written batches, not each entry). The p99 of a lone caller is the machine's: on this shared 2-core VM a process " +
          "that is runnable waits milliseconds for a core now and then.",
        "With every agent calling, throughput is what one core gives at the CPU per call, and latency grows with the number " +
          "of callers (queueing: each waits for the calls ahead of it). The CPU per call rises at 1,000 callers: more calls " +
          "in flight, larger heap, dearer garbage collection."
      ]
    }
    return result
  })
