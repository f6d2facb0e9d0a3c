/**
 * Child process of figure 7: a live, registered run with `count` idle
 * scripted agents in RAMURE_HOME `home`, until the parent closes the IPC
 * channel. `node --import tsx bench/lib/liveRunChild.ts <count> <home>`
 * Tells the parent `{ executionId }` once every agent is live.
 */
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as Ramure from "ramure/Ramure"
import { RunInfo } from "@ramure/core/RunInfo"
import { Effect } from "effect"

const count = Number(process.argv[2])
const home = process.argv[3]!

const main = Process.make("live", () =>
  Effect.gen(function* () {
    yield* Effect.forEach(Array.from({ length: count }, (_, i) => `a${i}`), (id) => Agent.make(id), {
      concurrency: "unbounded",
      discard: true
    })
    const { executionId } = yield* RunInfo
    yield* Effect.async<void>((resume) => {
      process.send!({ executionId }, undefined, undefined, () => resume(Effect.void))
    })
    // Runs until the parent goes away.
    yield* Effect.async<void>((resume) => {
      process.once("disconnect", () => resume(Effect.void))
    })
  }))

Effect.runPromise(main().pipe(Effect.provide(Ramure.layerScripted({}, { home, program: "bench-live" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
