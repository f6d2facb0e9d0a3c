/** Arguments and options several verbs share. */
import { Args, Options } from "@effect/cli"

export const runId = Args.text({ name: "id" }).pipe(
  Args.withDescription("Execution id of the run, or any unique prefix of it; optional when exactly one run is live."),
  Args.optional
)

export const agent = Options.text("agent").pipe(
  Options.withDescription("The agent (default: the run's only agent)."),
  Options.optional
)

export const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of text."))
