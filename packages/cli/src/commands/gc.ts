/** `ramure gc`: remove stale registry entries and orphaned tmux sessions. */
import { Command } from "@effect/cli"
import * as Registry from "@ramure/core/Registry"
import { collectOrphans } from "@ramure/core/SshMachineProvider"
import { shortId } from "@ramure/core/RunInfo"
import * as Worktree from "@ramure/core/Worktree"
import { Console, Effect } from "effect"
import * as Runs from "../Runs.js"
import * as Tmux from "../Tmux.js"

export const gc = Command.make("gc", {}, () =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const removed = yield* Registry.removeStale(home)
    for (const entry of removed) {
      yield* Console.log(`removed stale registry entry ${shortId(entry.execution_id)} (${entry.program}, pid ${entry.pid} is gone)`)
    }
    const live = (yield* Registry.list(home)).filter((item) => item.alive).map((item) => shortId(item.entry.execution_id))
    const orphans = new Set((yield* Tmux.sessions).flatMap((name) => {
      const run = Tmux.runOf(name)
      return run === undefined || live.includes(run) ? [] : [run]
    }))
    let killed = 0
    for (const run of orphans) {
      for (const name of yield* Tmux.killRun(run)) {
        killed++
        yield* Console.log(`killed orphaned tmux session ${name}`)
      }
    }
    const worktrees = yield* Worktree.collectOrphans(home)
    for (const { executionId, machine, released, repo } of worktrees) {
      yield* Console.log(
        released._tag === "Saved"
          ? `saved the work of ${machine} (run ${shortId(executionId)}) to branch ${released.branch} of ${repo} and removed its worktree`
          : `could not save the work of ${machine} (run ${shortId(executionId)}) to branch ${released.branch} of ${repo}: ${released.message}; its files are still in ${released.path}`
      )
    }
    const remote = yield* collectOrphans(home)
    for (const item of remote) {
      yield* Console.log(
        item.reached
          ? `cleaned up run ${shortId(item.executionId)} on host ${item.host}${item.sessions.length > 0 ? `: killed ${item.sessions.join(", ")}` : ""}`
          : `host ${item.host} of dead run ${shortId(item.executionId)} did not answer; try again later`
      )
    }
    if (removed.length === 0 && killed === 0 && worktrees.length === 0 && remote.length === 0) yield* Console.log("nothing to clean up")
  })
).pipe(
  Command.withDescription(`Remove stale registry entries and kill orphaned ramure-<id8>-* tmux sessions (socket ramure) of runs that are not live, here and on the ssh hosts they used; commit the work left in dead runs' worktrees to their branches and remove the worktrees.`)
)
