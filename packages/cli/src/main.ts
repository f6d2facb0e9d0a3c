/**
 * The `ramure` CLI: watch and steer runs from another terminal. User errors
 * are one line on stderr and a non-zero exit code, never a stack trace.
 */
import { Command, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Option } from "effect"
import packageJson from "../package.json" with { type: "json" }
import { budget } from "./commands/budget.js"
import { connect, ssh } from "./commands/connect.js"
import { gc } from "./commands/gc.js"
import { ls } from "./commands/ls.js"
import { resume } from "./commands/resume.js"
import { call, send } from "./commands/send.js"
import { status } from "./commands/status.js"
import { stop } from "./commands/stop.js"
import { tail } from "./commands/tail.js"
import { web } from "./commands/web.js"
import * as Terminal from "./Terminal.js"

/** What a verb prints may come from a run: it reaches the terminal harmless (@effect/cli's help keeps its styling). */
const safe = <Name extends string, R, E, A>(verb: Command.Command<Name, R, E, A>) =>
  Command.transformHandler(verb, (handler) => Terminal.safely(handler))

const ramure = Command.make("ramure").pipe(
  Command.withDescription("Watch and steer ramure runs (RAMURE_HOME, default ~/.ramure)."),
  Command.withSubcommands([
    safe(ls), safe(status), safe(tail), safe(send), safe(call), safe(budget), safe(stop), safe(resume), safe(connect), safe(ssh), safe(web), safe(gc)
  ])
)

const cli = Command.run(ramure, { name: "ramure", version: packageJson.version })

/**
 * `ramure: <text>` on one line: no colours, no line breaks (also for
 * @effect/cli's own messages), and what came from a run made visible.
 */
const errorLine = (args: ReadonlyArray<unknown>): string => {
  const text = Terminal.visible(args.map(String).join(" ").replace(/\u001b\[[0-9;]*m/g, "")).split("\n").map((line) => line.trim())
    .filter((line) => line.length > 0).join(" ")
  return text.startsWith("ramure: ") ? text : `ramure: ${text}`
}

const program = Effect.gen(function* () {
  const console = yield* Effect.console
  const oneLine: Console.Console = {
    ...console,
    error: (...args: ReadonlyArray<unknown>) => console.error(errorLine(args)),
    unsafe: { ...console.unsafe, error: (...args: ReadonlyArray<unknown>) => console.unsafe.error(errorLine(args)) }
  }
  return yield* cli(process.argv).pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = Cause.failureOption(cause)
      // @effect/cli has already printed its validation errors.
      if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) return Effect.failCause(cause)
      const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
      const message = error instanceof Error ? error.message : String(error)
      return Effect.zipRight(Console.error(Option.isSome(failure) ? message : `internal error: ${message}`), Effect.failCause(cause))
    }),
    Effect.withConsole(oneLine)
  )
})

program.pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain({ disableErrorReporting: true }))
