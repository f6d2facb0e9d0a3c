/**
 * Running a ramure program as the main of a Node process:
 * `program.pipe(Effect.provide(Ramure.layer()), Ramure.runMain)`.
 *
 * It is `NodeRuntime.runMain` with a teardown that tells the user how the
 * program ended the way each outcome deserves. A *failure* — a typed, expected
 * error such as `ProcessTimeout`, `ProcessCancelled` after `ramure stop`,
 * `AgentStartError` or `LogWriteFailed` — is its tag and message on stderr,
 * without a stack trace: nothing in the program is broken. A *defect* (a bug:
 * a thrown exception, `Effect.die`) keeps Effect's full report, stack and
 * spans. The exit code is 0 on success, 1 on a failure or defect, and
 * 130 / 143 / 129 after SIGINT / SIGTERM / SIGHUP (set by the run itself).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as PlatformRuntime from "@effect/platform/Runtime"
import { Cause, Chunk, type Effect, Exit } from "effect"
import { describe } from "@ramure/core/Errors"

export interface RunMainOptions {
  /** Keep Effect's default logger instead of the pretty one (as `NodeRuntime.runMain`). */
  readonly disablePrettyLogger?: boolean
}

/**
 * What to tell the user about a program that ended with `cause`: nothing for
 * an interruption, one line per failure, Effect's full report for a defect.
 */
export const report = (cause: Cause.Cause<unknown>): string | undefined => {
  if (Cause.isInterruptedOnly(cause)) return undefined
  if (!Chunk.isEmpty(Cause.defects(cause))) return Cause.pretty(cause, { renderErrorCause: true })
  return Chunk.toReadonlyArray(Cause.failures(cause)).map((error) => describe(error)).join("\n")
}

/** The teardown of `runMain`: report the outcome on stderr, then exit with its code. */
export const teardown: PlatformRuntime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit)) return onExit(0)
  const text = report(exit.cause)
  if (text !== undefined) process.stderr.write(`${text}\n`)
  onExit(Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
}

/** Run `effect` as the program's main (see the module's comment). */
export const runMain = <E, A>(effect: Effect.Effect<A, E>, options: RunMainOptions = {}): void =>
  NodeRuntime.runMain(effect, { ...options, disableErrorReporting: true, teardown })
