/**
 * Figure 8 — the warm pool: `agent()` with pis started ahead of need against
 * cold starts, for one agent and for fan-outs, and against pi's own
 * `subagent` example extension running the same four-child fan-out.
 */
import * as Agent from "@ramure/core/Agent"
import * as PiAgents from "@ramure/pi/PiAgents"
import * as Process from "@ramure/core/Process"
import * as Ramure from "ramure/Ramure"
import { RunLog } from "@ramure/core/RunLog"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Effect, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { now, type FigureResult, type Size } from "./lib/Figure.js"
import { tempDirectory } from "./lib/harness.js"
import { model, unavailable } from "./lib/pi.js"
import { runPiSubagentFanout, subagentExtension } from "./lib/subagent.js"

const title = "Warm pool: agent() from pre-started pis"

const Finish = Schema.Struct({ result: Schema.String })

/** A scripted model whose every agent finishes at once; records when each agent's first request arrived. */
const finishingModel = Effect.gen(function* () {
  const firstRequest = new Map<string, number>()
  const server = yield* ScriptedModel.make({
    fallback: (agent) => [
      {
        expect: () => {
          if (!firstRequest.has(agent)) firstRequest.set(agent, now())
          return undefined
        },
        toolCalls: [{ name: "finish", arguments: { result: agent } }]
      },
      { text: "(done)" }
    ]
  })
  return { server, firstRequest }
})

const runLayer = (home: string, server: ScriptedModel.ScriptedModelServer, pool?: PiAgents.PoolOptions) =>
  Ramure.layer({
    home,
    program: "bench-pool",
    provider: "tmux",
    register: false,
    handleSignals: false,
    model,
    modelsJson: ScriptedModel.piModelsJson(server.baseUrl()),
    ...(pool === undefined ? {} : { pool })
  })

/** Wait until the pool has reported `count` pis ready in total, then let the machine settle. */
const poolReady = (count: number) =>
  Effect.flatMap(RunLog, (runLog) =>
    runLog.entries().pipe(
      Stream.filter((entry) => entry.event._tag === "PoolMemberReady"),
      Stream.take(count),
      Stream.runDrain,
      Effect.zipRight(Effect.sleep("500 millis"))
    ))

/** A child process with one agent that is told to go and finishes through its model. */
const oneAgent = (name: string, marks: { readonly made?: (ms: number) => void; readonly finished?: () => void } = {}) =>
  Process.make(name, () =>
    Effect.gen(function* () {
      const started = now()
      const agent = yield* Agent.make(name)
      marks.made?.(now() - started)
      yield* agent.on("finish", { description: "Report and stop", parameters: Finish }, ({ result }) => {
        marks.finished?.()
        return Process.done(result)
      })
      yield* agent.send("go")
      return yield* Process.wait()
    }))

/** Start `count` agents at once; the wall time until the last one has reported its result. */
const fanout = (prefix: string, count: number) =>
  Effect.gen(function* () {
    const started = now()
    let last = started
    const finished = () => void (last = Math.max(last, now()))
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`),
      (name) => oneAgent(name, { finished })(),
      { concurrency: "unbounded", discard: true }
    )
    return last - started
  })

export const warmPool = (size: Size) =>
  Effect.gen(function* () {
    const missing = unavailable()
    if (missing !== undefined) return { id: 8, title, method: "", metrics: [], skipped: missing } satisfies FigureResult
    const rounds = size === "full" ? 5 : 1
    const fanoutSize = size === "full" ? 10 : 2
    const home = yield* tempDirectory("pool")
    const { firstRequest, server } = yield* finishingModel

    const single = { cold: { made: [] as Array<number>, first: [] as Array<number> }, pooled: { made: [] as Array<number>, first: [] as Array<number> }, eager: { first: [] as Array<number> } }
    const sample = (kind: "cold" | "pooled" | "eager", name: string) =>
      Effect.gen(function* () {
        const started = now()
        yield* oneAgent(name, { made: (ms) => kind !== "eager" && single[kind].made.push(ms) })()
        single[kind].first.push(firstRequest.get(name)! - started)
      })

    // One agent at a time: cold, and pooled (the pool refilled and the machine quiet before each sample).
    yield* Effect.gen(function* () {
      for (let i = 1; i <= rounds; i++) yield* sample("cold", `cold${i}`)
    }).pipe(Effect.provide(runLayer(home, server)))
    yield* Effect.gen(function* () {
      for (let i = 1; i <= rounds; i++) {
        yield* poolReady(i)
        yield* sample("pooled", `pooled${i}`)
      }
    }).pipe(Effect.provide(runLayer(home, server, { size: 1 })))
    // The same with the refill starting at once (no stagger): the next pi loads while the agent starts.
    yield* Effect.gen(function* () {
      for (let i = 1; i <= rounds; i++) {
        yield* poolReady(i)
        yield* sample("eager", `eager${i}`)
      }
    }).pipe(Effect.provide(runLayer(home, server, { size: 1, refillDelay: 0 })))

    // Fan-outs: `fanoutSize` agents at once, and four (pi's subagent extension runs at most four children at once).
    const wide = { cold: [] as Array<number>, pooled: [] as Array<number> }
    const four = { cold: [] as Array<number>, pooled: [] as Array<number>, subagent: [] as Array<number> }
    for (let round = 1; round <= rounds; round++) {
      wide.cold.push(yield* fanout(`wide-cold${round}`, fanoutSize).pipe(Effect.provide(runLayer(home, server))))
      four.cold.push(yield* fanout(`four-cold${round}`, 4).pipe(Effect.provide(runLayer(home, server))))
      yield* Effect.gen(function* () {
        yield* poolReady(fanoutSize)
        wide.pooled.push(yield* fanout(`wide-pooled${round}`, fanoutSize))
      }).pipe(Effect.provide(runLayer(home, server, { size: fanoutSize, concurrency: 2 })))
      yield* Effect.gen(function* () {
        yield* poolReady(4)
        four.pooled.push(yield* fanout(`four-pooled${round}`, 4))
      }).pipe(Effect.provide(runLayer(home, server, { size: 4, concurrency: 2 })))
      if (subagentExtension() !== undefined) {
        four.subagent.push(yield* runPiSubagentFanout(path.join(home, `subagent${round}`), 4))
      }
    }

    const ratio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.map((x, i) => x / b[i]!)
    const metrics: FigureResult["metrics"] = [
      { name: "cold: agent() until ready", unit: "ms", samples: single.cold.made, digits: 0 },
      { name: "pooled: agent() until ready", unit: "ms", samples: single.pooled.made, digits: 0 },
      { name: "cold: agent() until first model request", unit: "ms", samples: single.cold.first, digits: 0 },
      {
        name: "pooled: agent() until first model request",
        unit: "ms",
        samples: single.pooled.first,
        target: { op: "<", value: 100 },
        digits: 0
      },
      { name: "cold / pooled, first model request", unit: "×", samples: ratio(single.cold.first, single.pooled.first), target: { op: ">", value: 10 }, digits: 1 },
      { name: "pooled, refill not delayed: agent() until first model request", unit: "ms", samples: single.eager.first, digits: 0 },
      { name: `fan-out of ${fanoutSize}, cold: wall time`, unit: "ms", samples: wide.cold, digits: 0 },
      { name: `fan-out of ${fanoutSize}, pooled: wall time`, unit: "ms", samples: wide.pooled, digits: 0 },
      { name: `fan-out of ${fanoutSize}, cold / pooled`, unit: "×", samples: ratio(wide.cold, wide.pooled), digits: 1 },
      { name: "fan-out of 4, cold: wall time", unit: "ms", samples: four.cold, digits: 0 },
      { name: "fan-out of 4, pooled: wall time", unit: "ms", samples: four.pooled, digits: 0 },
      ...(four.subagent.length > 0
        ? [
          { name: "fan-out of 4, pi subagent extension: wall time", unit: "ms", samples: four.subagent, digits: 0 },
          { name: "fan-out of 4, pi subagent / ramure cold", unit: "×", samples: ratio(four.subagent, four.cold), target: { op: ">" as const, value: 1 }, digits: 2 },
          { name: "fan-out of 4, pi subagent / ramure pooled", unit: "×", samples: ratio(four.subagent, four.pooled), digits: 1 }
        ]
        : [])
    ]
    fs.rmSync(home, { recursive: true, force: true })
    return {
      id: 8,
      title,
      method:
        `Real pi in tmux, scripted model whose every agent calls \`finish\` on its first request. One agent: ${rounds} samples ` +
        `each; a sample is a child process from \`Agent.make\` to the agent's first model request (the scripted server ` +
        `notes its arrival), with \`send("go")\` right after the agent is ready. Pooled samples wait for the pool to be ` +
        `full and then 0.5 s, so they measure a warm pool on a quiet machine. "Refill not delayed" sets \`refillDelay: 0\`: ` +
        `the replacement pi starts loading while the agent that took the last one starts working. Fan-outs: all agents ` +
        `started at once, wall time until the last has reported its result (pool sized to the fan-out, filled before timing). ` +
        `pi's \`subagent\` example extension: a parent pi (scripted) calls \`subagent\` with four parallel tasks; its ` +
        `children are \`pi --mode json -p\` processes (at most four at once); timed from the parent's tool call to the ` +
        `request that carries the four results.`,
      metrics,
      counts: { agents: rounds * (2 + 1) + rounds * (2 * fanoutSize + 8) },
      notes: [
        "A cold fan-out starts at most `maxStartingAgents` pis at once (by default one per core: 2 here), so a fan-out of " +
          "four starts in two waves, where pi's `subagent` extension starts all four at once. Starting pi is CPU-bound: on " +
          "2 cores the two take about as long, and which is ahead varies from pair to pair with the machine's load. With " +
          "the former default of 16 (all four at once) this figure measured pi subagent / ramure cold at 1.55×; the pacing " +
          "is what brings the first agent of a larger burst up in about one pi start time (figure 4)."
      ]
    } satisfies FigureResult
  }).pipe(Effect.scoped)
