/**
 * Child process of figure 5: a program with `count` real pi agents in tmux
 * that idles until it is interrupted, like a user's script stopped with
 * Ctrl-C. `node --import tsx bench/lib/cleanupChild.ts <count> <home>`
 * Tells the parent (IPC) `{ executionId, pids }` once every agent is live;
 * with `starting` as third argument, at once (the agents are still starting).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import { ChildProcesses } from "@ramure/core/ChildProcesses"
import { RunInfo } from "@ramure/core/RunInfo"
import { Effect } from "effect"
import { piRun } from "./pi.js"

export interface Ready {
  readonly executionId: string
  readonly pids: ReadonlyArray<number>
}

const count = Number(process.argv[2])
const home = process.argv[3]!
const starting = process.argv[4] === "starting"

const main = Process.make("idle", () =>
  Effect.gen(function* () {
    const all = Effect.forEach(Array.from({ length: count }, (_, i) => `p${i}`), (id) => Agent.make(id), {
      concurrency: "unbounded",
      discard: true
    })
    if (starting) yield* Effect.fork(all)
    else yield* all
    const ready: Ready = { executionId: (yield* RunInfo).executionId, pids: (yield* ChildProcesses).unsafeSnapshot() }
    yield* Effect.async<void>((resume) => {
      process.send!(ready, undefined, undefined, () => resume(Effect.void))
    })
    // The parent no longer needs the channel; an open channel would keep this process alive.
    process.disconnect()
    return yield* Effect.never
  }))

main().pipe(Effect.provide(piRun(home)), NodeRuntime.runMain)
