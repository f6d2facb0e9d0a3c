/**
 * Child process of figure 9: one run whose `count` agents live in the
 * parent (`RemoteDrivers`), each with a `result` tool that returns `bytes`
 * bytes of text. Memory is read by the parent's probes (`Child.memory`).
 * `node --expose-gc --import tsx bench/lib/memoryChild.ts <count>`
 */
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as Ramure from "ramure/Ramure"
import { Effect, Queue, Schema } from "effect"
import { now } from "./Figure.js"
import { parentMessages, runChild, toParent } from "./child.js"
import { tempDirectory } from "./harness.js"
import * as RemoteDrivers from "./remoteDrivers.js"
import type { FromChild, ToChild } from "./scaleChild.js"

const count = Number(process.argv[2])

const program = Effect.gen(function* () {
  const inbox = yield* parentMessages<ToChild>({ type: "stop" })
  const home = yield* tempDirectory("memory")
  let stopping = 0
  const main = Process.make("memory", () =>
    Effect.gen(function* () {
      const started = now()
      yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => `w${i}`),
        (id) =>
          Effect.flatMap(Agent.make(id), (agent) =>
            agent.on("result", { description: "A result of `bytes` bytes", parameters: Schema.Struct({ bytes: Schema.Number }) }, ({ bytes }) =>
              Effect.succeed("r".repeat(bytes)))),
        { concurrency: "unbounded", discard: true }
      )
      const { heapUsed, rss } = process.memoryUsage()
      yield* toParent({ type: "live", startMs: now() - started, rssBefore: rss, rssAfter: rss, heapBefore: heapUsed, heapAfter: heapUsed } satisfies FromChild)
      yield* Queue.take(inbox)
      stopping = now()
    }))
  yield* main().pipe(Effect.provide(Ramure.make({ home, program: "bench-memory", launcher: RemoteDrivers.layer })))
  yield* toParent({ type: "stopped", ms: now() - stopping } satisfies FromChild)
})

runChild(program)
