/** `ramure gc`: remove what dead runs left behind, and only that. */
import { Command, Options } from "@effect/cli"
import * as Orphans from "@ramure/node/Orphans"
import * as Registry from "@ramure/node/Registry"
import { shortId } from "@ramure/core/RunInfo"
import { collectOrphans } from "@ramure/ssh/SshMachineProvider"
import * as GitWorktree from "@ramure/node/GitWorktree"
import { Console, Effect, Option } from "effect"
import * as Format from "../Format.js"
import * as Prune from "../Prune.js"
import * as Runs from "../Runs.js"
import * as Tmux from "../Tmux.js"

const olderThan = Options.text("older-than").pipe(
  Options.withDescription(
    "Also remove the logs and working directories of finished runs that ended longer ago than this (7d, 12h, 30m, 2w); live runs are never touched."
  ),
  Options.optional
)

export const gc = Command.make("gc", { olderThan }, (options) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const age = yield* Option.match(options.olderThan, { onNone: () => Effect.succeed(undefined), onSome: Prune.parseAge })
    const { unreadable } = yield* Registry.scan(home)
    const removed = yield* Registry.removeStale(home)
    const lines: Array<string> = []
    for (const entry of removed) {
      lines.push(`removed stale registry entry ${shortId(entry.execution_id)} (${entry.program}, pid ${entry.pid} is gone)`)
    }
    for (const entry of unreadable) lines.push(`left unreadable registry entry ${entry.file} alone: ${entry.reason}`)
    const { orphans, unattributed, waiting } = Orphans.collectSync(Tmux.socket())
    for (const orphan of orphans) {
      const whose = `run ${shortId(orphan.owner.executionId)}${orphan.owner.home === home ? "" : ` of ${orphan.owner.home}`}, pid ${orphan.owner.pid} is gone`
      for (const session of orphan.sessions) lines.push(`killed orphaned tmux session ${session} (${whose})`)
      for (const pid of orphan.processes) lines.push(`killed orphaned process ${pid} (${whose})`)
    }
    for (const { session, why } of unattributed) lines.push(`left tmux session ${session} alone: ${why}`)
    for (const run of waiting) {
      lines.push(
        `left run ${shortId(run.owner.executionId)} alone (pid ${run.owner.pid} is gone): its agents wait for ` +
          `\`ramure resume ${shortId(run.owner.executionId)}\` until ${new Date(run.until).toISOString()} (${run.sessions.join(", ")})`
      )
    }
    for (const { executionId, machine, released, repo } of yield* GitWorktree.collectOrphans(home)) {
      lines.push(
        released._tag === "Saved"
          ? `saved the work of ${machine} (run ${shortId(executionId)}) to branch ${released.branch} of ${repo} and removed its worktree`
          : `could not save the work of ${machine} (run ${shortId(executionId)}) to branch ${released.branch} of ${repo}: ${released.message}; its files are still in ${released.path}`
      )
    }
    for (const item of yield* collectOrphans(home)) {
      lines.push(
        item.reached
          ? `cleaned up run ${shortId(item.executionId)} on host ${item.host}${item.sessions.length > 0 ? `: killed ${item.sessions.join(", ")}` : ""}`
          : `host ${item.host} of dead run ${shortId(item.executionId)} did not answer; try again later`
      )
    }
    if (age !== undefined) {
      for (const run of yield* Prune.prune(home, age)) {
        const what = `finished run ${shortId(run.id)}${run.program === undefined ? "" : ` (${run.program})`}, ended ${Format.age(new Date(run.endedAt).toISOString())} ago`
        lines.push(`removed ${what}: its logs and working directories, ${Prune.size(run.bytes)}`)
        for (const failure of run.failures) lines.push(`could not remove all of ${what}: ${failure}`)
      }
    }
    yield* Console.log(lines.length === 0 ? "nothing to clean up" : lines.join("\n"))
  })
).pipe(
  Command.withDescription(
    `Remove what dead runs left behind, and only that: registry entries of dead runs, and the tmux sessions (socket ramure, ` +
      `or RAMURE_TMUX_SOCKET) and processes whose owner label names an orchestrator (pid and start time) that is gone, ` +
      `whatever its RAMURE_HOME; also on the ssh hosts they used. The work left in dead runs' worktrees is committed to ` +
      `their branches and the worktrees removed. Live runs of any home, sessions without a readable owner label and ` +
      `unreadable registry entries are reported and left alone. With --older-than, also the logs and working ` +
      `directories of runs that ended longer ago than that.`
  )
)
