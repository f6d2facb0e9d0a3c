/** `ramure tail [id]`: a run's recent log entries; `-f` follows a live run until it ends. */
import { Command, Options } from "@effect/cli"
import type { LogEntry } from "@ramure/core/RunEvent"
import { shortId } from "@ramure/core/RunInfo"
import { Console, Effect, Either, Option, Stream } from "effect"
import * as ControlClient from "../ControlClient.js"
import { AgentNotFound } from "../Errors.js"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Terminal from "../Terminal.js"
import { agent, json, runId } from "./shared.js"

const lines = Options.integer("lines").pipe(
  Options.withAlias("n"),
  Options.withDefault(20),
  Options.withDescription("How many recent entries to print.")
)
const follow = Options.boolean("follow").pipe(
  Options.withAlias("f"),
  Options.withDescription("Keep printing new entries of a live run until it ends, then its outcome.")
)

/** The largest `n` such that entries 1…n have all been read (log files are written in batches). */
const contiguous = (entries: ReadonlyArray<LogEntry>): number => {
  let n = 0
  for (const entry of entries) {
    if (entry.n === n + 1) n++
    else if (entry.n > n + 1) break
  }
  return n
}

export const tail = Command.make("tail", { id: runId, agent, lines, follow, json }, (options) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, options.id)
    const entries = Runs.readLog(home, run.id)
    const only = Option.getOrUndefined(options.agent)
    if (only !== undefined) {
      const agents = [...new Set(entries.flatMap((entry) => (entry.agent === undefined ? [] : [entry.agent])))]
      if (!agents.includes(only)) return yield* new AgentNotFound({ run: shortId(run.id), agent: only, available: agents })
    }
    const shows = (entry: LogEntry) => only === undefined || entry.agent === only || entry.event._tag === "RunEnded"
    let last: LogEntry | undefined
    const seen = new Set(entries.map((entry) => entry.n))
    const print = (entry: LogEntry) => {
      last = entry
      seen.add(entry.n)
      return Console.log(options.json ? Terminal.json(entry) : Format.entryLine(entry))
    }
    const recent = entries.filter(shows)
    yield* Effect.forEach(options.lines > 0 ? recent.slice(-options.lines) : [], print, { discard: true })
    if (!options.follow) return

    let outcome: string | undefined
    if (run.live === undefined) {
      outcome = Runs.outcomeOf(entries)
    } else {
      const followed = yield* ControlClient.connect(run.live).pipe(
        Effect.flatMap((client) =>
          client.follow(contiguous(entries)).pipe(
            Stream.runForEach((event) => {
              if (event._tag === "Ended") return Effect.sync(() => void (outcome = event.outcome))
              return seen.has(event.entry.n) || !shows(event.entry) ? Effect.void : print(event.entry)
            })
          )
        ),
        Effect.either
      )
      if (outcome === undefined) {
        // The run ended without telling us (or just before we connected): its log has the rest.
        const exited = yield* Runs.waitForExit(run.live.pid, 5000)
        if (!exited && Either.isLeft(followed)) return yield* followed.left
        yield* Effect.forEach(Runs.readLog(home, run.id).filter((entry) => !seen.has(entry.n) && shows(entry)), print, {
          discard: true
        })
        outcome = Runs.outcome(home, run.id)
      }
    }
    if (!options.json && last?.event._tag !== "RunEnded") yield* Console.log(`run ${shortId(run.id)} ended: ${Format.oneLine(outcome ?? "?")}`)
  }).pipe(Effect.scoped)
).pipe(
  Command.withDescription("Print a run's recent log entries (all agents, or --agent); -f follows a live run until it ends.")
)
