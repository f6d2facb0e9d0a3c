/** `ramure resume <id>`: run the program of a run whose orchestrator died again, as the same run. */
import { Args, Command as Cli } from "@effect/cli"
import * as Command from "@effect/platform/Command"
import type { LogEntry } from "@ramure/core/RunEvent"
import { shortId } from "@ramure/core/RunInfo"
import { Console, Effect, Option } from "effect"
import { HostError, UsageError } from "../Errors.js"
import * as Runs from "../Runs.js"

const id = Args.text({ name: "id" }).pipe(Args.withDescription("Execution id of the run (or any unique prefix of it)."))

/** Where the run stands: how it was started, and whether it has ended since it last started or resumed. */
const standing = (entries: ReadonlyArray<LogEntry>) => {
  let invocation: Extract<LogEntry["event"], { _tag: "RunStarted" }>["invocation"]
  let program = "?"
  let ended: string | undefined
  for (const { event } of entries) {
    if (event._tag === "RunStarted") {
      invocation = event.invocation
      program = event.program
      ended = undefined
    } else if (event._tag === "RunResumed") ended = undefined
    else if (event._tag === "RunEnded") ended = event.outcome
  }
  return { invocation, program, ended }
}

export const resume = Cli.make("resume", { id }, ({ id }) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    // A killed run left its registry entry: resuming it is what cleans that up.
    const run = yield* Runs.resolve(home, Option.some(id), { reportStale: false })
    const short = shortId(run.id)
    if (run.live !== undefined) {
      return yield* new UsageError({ reason: `run ${short} is live (pid ${run.live.pid}): there is nothing to resume` })
    }
    const { ended, invocation, program } = standing(Runs.readLog(home, run.id))
    if (ended !== undefined) return yield* new UsageError({ reason: `run ${short} ended (${ended}): there is nothing to resume` })
    if (invocation === undefined) {
      return yield* new UsageError({ reason: `run ${short} did not record how its program was started, so it cannot be resumed` })
    }
    const missing = invocation.redacted.filter((name) => process.env[name] === undefined)
    const secrets = Object.fromEntries(invocation.redacted.flatMap((name) => {
      const value = process.env[name]
      return value === undefined ? [] : [[name, value]]
    }))
    yield* Console.error(
      `ramure: resuming run ${short} (${program}): ${[invocation.execPath, ...invocation.execArgv, ...invocation.argv].join(" ")}` +
        (missing.length > 0 ? `\nramure: not set here, so not passed on: ${missing.join(", ")}` : "")
    )
    const code = yield* Command.make(invocation.execPath, ...invocation.execArgv, ...invocation.argv).pipe(
      Command.workingDirectory(invocation.cwd),
      // Exactly the recorded environment (with the secrets taken from here), not this shell's.
      Command.env({ ...invocation.env, ...secrets, RAMURE_HOME: home, RAMURE_RESUME: run.id }, { extendEnv: false }),
      Command.stdin("inherit"),
      Command.stdout("inherit"),
      Command.stderr("inherit"),
      Command.exitCode,
      Effect.mapError((error) => new HostError({ reason: `cannot start ${invocation.execPath}: ${error.message}` }))
    )
    if (code !== 0) process.exitCode = code
  })
).pipe(
  Cli.withDescription(
    "Resume a run whose orchestrator died (killed, crashed, terminal closed): its program is started again — same " +
      "command, directory and environment (secrets from this shell) — as the same run, which re-adopts its live " +
      "agents and replays what already happened from its log."
  )
)
