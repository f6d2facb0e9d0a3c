/** `ramure status [id]`: processes, agents, connections and endpoints of a run. */
import { Command } from "@effect/cli"
import type { LogEntry } from "@ramure/core/RunEvent"
import { Console, Effect } from "effect"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Terminal from "../Terminal.js"
import { json, runId } from "./shared.js"

export const status = Command.make("status", { id: runId, json }, ({ id, json }) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, id)
    const status = yield* Runs.status(home, run)
    const entries = Runs.readLog(home, run.id)
    const outcome = run.live ? undefined : Runs.outcomeOf(entries)
    if (json) {
      return yield* Console.log(
        Terminal.json({ ...status, id: run.id, live: run.live !== undefined, url: run.live?.server_url, outcome }, 2)
      )
    }
    const last = new Map<string, LogEntry>()
    for (const entry of entries) if (entry.agent !== undefined) last.set(entry.agent, entry)
    yield* Console.log(
      Format.statusReport(status, { id: run.id, live: run.live !== undefined, url: run.live?.server_url, ...(outcome ? { outcome } : {}) }, last)
    )
  })
).pipe(
  Command.withDescription("Show a run: process tree, agents (state, machine, tmux session, tool calls, tokens, cost), connections, endpoints. Live runs are asked; finished runs are rebuilt from their logs.")
)
