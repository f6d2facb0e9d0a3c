/** `ramure ls`: live runs, and with `--all` finished ones. */
import { Command, Options } from "@effect/cli"
import { RUNTIME_FILE } from "@ramure/core/LogSink"
import { logsDirectory, shortId } from "@ramure/core/RunInfo"
import { Console, Effect } from "effect"
import * as path from "node:path"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Terminal from "../Terminal.js"
import { json } from "./shared.js"

interface Row {
  readonly id: string
  readonly program: string
  readonly pid: number | undefined
  readonly startedAt: string | undefined
  readonly live: boolean
  readonly outcome: string | undefined
  readonly agents: number
  /** The run's one-line description, when its program gave one. */
  readonly summary: string | undefined
}

/** What the run's own log says of its start. */
const started = (home: string, id: string) => {
  const entries = Runs.readLogFile(path.join(logsDirectory(home, id), RUNTIME_FILE))
  const entry = entries.find((e) => e.event._tag === "RunStarted")
  return { entries, entry, event: entry?.event._tag === "RunStarted" ? entry.event : undefined }
}

const all = Options.boolean("all").pipe(
  Options.withAlias("a"),
  Options.withDescription("Also list finished runs, with their outcome.")
)

export const ls = Command.make("ls", { all, json }, ({ all, json }) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const live = yield* Runs.live(home)
    const rows: Array<Row> = live.map((entry) => ({
      id: entry.execution_id,
      program: entry.program,
      pid: entry.pid,
      startedAt: entry.started_at,
      live: true,
      outcome: undefined,
      agents: Runs.agentCount(home, entry.execution_id),
      summary: started(home, entry.execution_id).event?.summary
    }))
    for (const { entry, until } of yield* Runs.interrupted(home)) {
      rows.push({
        id: entry.execution_id,
        program: entry.program,
        pid: entry.pid,
        startedAt: entry.started_at,
        live: false,
        outcome: `interrupted, resumable: its agents wait until ${Format.time(new Date(until).toISOString())}`,
        agents: Runs.agentCount(home, entry.execution_id),
        summary: started(home, entry.execution_id).event?.summary
      })
    }
    if (all) {
      const liveIds = new Set(rows.map((row) => row.id))
      for (const id of Runs.logged(home)) {
        if (liveIds.has(id)) continue
        const { entries, entry, event } = started(home, id)
        rows.push({
          id,
          program: event?.program ?? "?",
          pid: event?.pid,
          startedAt: entry?.ts,
          live: false,
          outcome: Runs.outcomeOf(entries),
          agents: Runs.agentCount(home, id),
          summary: event?.summary
        })
      }
      rows.sort((a, b) => (a.startedAt ?? "").localeCompare(b.startedAt ?? ""))
    }
    if (json) return yield* Console.log(Terminal.json(rows, 2))
    if (rows.length === 0) return yield* Console.log(all ? "no runs" : "no live runs (--all lists finished ones)")
    yield* Console.log(
      Format.table([
        ["ID", "PROGRAM", "PID", "STARTED", "AGE", "AGENTS", "STATE", "SUMMARY"],
        ...rows.map((row) => [
          shortId(row.id),
          row.program,
          String(row.pid ?? "-"),
          Format.dateTime(row.startedAt),
          Format.age(row.startedAt),
          String(row.agents),
          row.live ? "live" : row.outcome ?? "?",
          row.summary === undefined ? "" : Format.oneLine(row.summary, 60)
        ])
      ])
    )
  })
).pipe(
  Command.withDescription(
    "List live runs (id, program, pid, start, age, agents) and interrupted ones whose agents wait for `ramure resume`; " +
      "--all adds finished runs."
  )
)
