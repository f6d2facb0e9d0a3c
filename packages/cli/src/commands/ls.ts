/** `ramure ls`: live runs, and with `--all` finished ones. */
import { Command, Options } from "@effect/cli"
import { shortId } from "@ramure/core/RunInfo"
import { Console, Effect } from "effect"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Terminal from "../Terminal.js"
import { json } from "./shared.js"

const all = Options.boolean("all").pipe(
  Options.withAlias("a"),
  Options.withDescription("Also list finished runs, with their outcome.")
)

export const ls = Command.make("ls", { all, json }, ({ all, json }) =>
  Effect.gen(function* () {
    const rows = yield* Runs.list(yield* Runs.home, { all })
    if (json) return yield* Console.log(Terminal.json(rows, 2))
    if (rows.length === 0) return yield* Console.log(all ? "no runs" : "no live runs (--all lists finished ones)")
    yield* Console.log(
      Format.table([
        ["ID", "PROGRAM", "PID", "STARTED", "AGE", "AGENTS", "COST", "STATE", "SUMMARY"],
        ...rows.map((row) => [
          shortId(row.id),
          row.program,
          String(row.pid ?? "-"),
          Format.dateTime(row.startedAt),
          Format.age(row.startedAt),
          String(row.agents),
          `$${row.cost.toFixed(4)}`,
          row.live ? "live" : row.outcome ?? "?",
          row.summary === undefined ? "" : Format.oneLine(row.summary, 60)
        ])
      ])
    )
  })
).pipe(
  Command.withDescription(
    "List live runs (id, program, pid, start, age, agents, total cost) and interrupted ones whose agents wait for `ramure resume`; " +
      "--all adds finished runs."
  )
)
