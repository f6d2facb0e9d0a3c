/**
 * Child program of figure 10: `count` real pi agents in tmux, idle; prints
 * `ready <execution id>` once every agent is connected — on its first run
 * (started cold) and again when `ramure resume` runs it (taken over) — then
 * idles until it is stopped.
 *
 *   node --import tsx bench/lib/resumeChild.ts <count> <home>
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import { RunInfo } from "@ramure/core/RunInfo"
import { Console, Effect } from "effect"
import { piRun } from "./pi.js"

const count = Number(process.argv[2])
const home = process.argv[3]!

const main = Process.make("idle", () =>
  Effect.gen(function* () {
    yield* Effect.forEach(Array.from({ length: count }, (_, i) => `r${i}`), (id) => Agent.make(id), {
      concurrency: "unbounded",
      discard: true
    })
    yield* Console.log(`ready ${(yield* RunInfo).executionId}`)
    return yield* Effect.never
  }))

main().pipe(Effect.provide(piRun(home)), NodeRuntime.runMain)
