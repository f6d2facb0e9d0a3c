/**
 * A run as a program on this host sees it: its control channel (`/control`,
 * opened by a secret that only the registry entry holds), its start and end
 * in the log, its live-run registry entry, what is left of dead runs, and the
 * signals that stop it.
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit, FiberSet, Layer, Option, Predicate, Schema, Tracer } from "effect"
import * as fs from "node:fs"
import type { Budgets } from "@ramure/core/Budget"
import { AgentSessions } from "@ramure/core/AgentSessions"
import { ChildProcesses } from "@ramure/core/ChildProcesses"
import { describe } from "@ramure/core/Errors"
import * as Protocol from "@ramure/protocol/Protocol"
import * as Registry from "../Registry.js"
import { Run } from "@ramure/core/Run"
import { RunControl } from "@ramure/core/RunControl"
import type { RunOutcome } from "@ramure/core/RunEvent"
import type { Journal } from "@ramure/core/Journal"
import { RunInfo } from "@ramure/core/RunInfo"
import { RunLog } from "@ramure/core/RunLog"
import { makeSecret, RunRoutes } from "@ramure/core/RunRoutes"
import * as Control from "./control.js"
import * as Invocation from "./invocation.js"
import * as Orphans from "../Orphans.js"
import * as ResumeReport from "./resumeReport.js"

export interface Options {
  /** Write the live-run registry entry (default true). */
  readonly register?: boolean
  /**
   * SIGINT, SIGTERM and SIGHUP stop the run (its root process is cancelled,
   * every scope closes) and the program then exits 130, 143 or 129; a second
   * signal kills the run's agents at once and exits. An uncaught exception or
   * unhandled rejection stops the run the same way. Default true.
   */
  readonly handleSignals?: boolean
  /** A one-line description of the run, shown by `ramure ls` and `status`. */
  readonly summary?: string
  /**
   * Keep the run's agents for a resume: once its orchestrator is gone, they
   * are left alone this long after its last heartbeat — the start-up cleanup
   * of other runs and `ramure gc` do not remove their sessions, processes and
   * worktrees meanwhile, and `ramure ls` shows the run as resumable until
   * then. Match it to how long the agents wait themselves (pi's
   * `unreachableTimeout`; `Ramure.layer` does). Default: none (as `0`), and
   * what a dead run left is removed by the next run at once.
   */
  readonly resumableFor?: Duration.DurationInput
}

export class RunStartError extends Schema.TaggedError<RunStartError>()("RunStartError", {
  message: Schema.String
}) {}

/** How a run ended; a run stopped by `ramure stop` (or a cancelled root process) is `cancelled`. */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): { readonly outcome: RunOutcome; readonly error?: string } => {
  if (Exit.isSuccess(exit)) return { outcome: "done" }
  if (Cause.isInterruptedOnly(exit.cause)) return { outcome: "interrupted" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && Predicate.isTagged(failure.value, "ProcessCancelled")) return { outcome: "cancelled" }
  return { outcome: "failed", error: describe(Option.isSome(failure) ? failure.value : Cause.squash(exit.cause)) }
}

const exitCodes: Readonly<Record<string, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 }

export const layer = (
  options: Options = {}
): Layer.Layer<
  never,
  RunStartError,
  RunInfo | RunLog | RunRoutes | Run | RunControl | AgentSessions | Budgets | ChildProcesses | Journal
> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const info = yield* RunInfo
      const runLog = yield* RunLog
      const routes = yield* RunRoutes
      const { url } = yield* Run
      const control = yield* Control.make
      const token = makeSecret()
      yield* routes.register(Protocol.controlPath, { secret: token, serve: control.serve })
      /** Set when an error outside Effect stopped the run: the run failed, whatever its root process says. */
      let crash: string | undefined
      // Added after the control route, so it runs while followers can still be served: they see `RunEnded`.
      yield* Effect.addFinalizer((exit) =>
        Effect.zipRight(
          runLog.log({ process: "" }, {
            _tag: "RunEnded",
            ...(crash === undefined ? outcomeOf(exit) : { outcome: "failed" as const, error: crash })
          }),
          control.drain
        )
      )
      // The run's span, when its traces are exported (see `NodeTracing`).
      const trace = Option.match(yield* Effect.serviceOption(Tracer.ParentSpan), {
        onNone: () => ({}),
        onSome: (span) => ({ traceId: span.traceId })
      })
      yield* runLog.log(
        { process: "" },
        info.resumed ? { _tag: "RunResumed", pid: process.pid, url, ...trace } : {
          _tag: "RunStarted",
          executionId: info.executionId,
          program: info.program,
          pid: process.pid,
          url,
          ...(options.summary === undefined ? {} : { summary: options.summary }),
          invocation: Invocation.current(),
          ...trace
        }
      )

      yield* ResumeReport.report
      if (options.register === false) return
      yield* Orphans.collectAtStart(
        info.home,
        (event) => runLog.log({ process: "" }, event),
        info.resumed ? info.executionId : undefined
      )
      const file = yield* Registry.register(info.home, {
        execution_id: info.executionId,
        pid: process.pid,
        pid_started: Registry.currentStart(),
        server_url: url,
        token,
        program: info.program,
        started_at: new Date().toISOString(),
        // Zero keeps nothing: what the run leaves is cleaned up at once.
        ...(options.resumableFor === undefined || Duration.toMillis(options.resumableFor) <= 0
          ? {}
          : { resumable_for_ms: Duration.toMillis(options.resumableFor) })
      }).pipe(Effect.mapError((error) => new RunStartError({ message: error.message })))
      if (options.handleSignals !== false) yield* handleSignals(file, (error) => void (crash ??= error))
    })
  )

/**
 * First SIGINT/SIGTERM/SIGHUP (or an uncaught exception): stop the run
 * gracefully (the root process is cancelled and every scope closes), then
 * exit with the signal's conventional code. Second: kill the run's agents
 * and tmux sessions synchronously, remove the registry entry, exit at once.
 */
const handleSignals = (registryFile: string, crashed: (error: string) => void) =>
  Effect.gen(function* () {
    const control = yield* RunControl
    const children = yield* ChildProcesses
    const { executionId } = yield* RunInfo
    const run = yield* FiberSet.makeRuntime<never>()
    let exitCode: number | undefined
    let received = 0
    const stop = (reason: string, code: number) => {
      received++
      if (received === 1) {
        exitCode = code
        run(control.requestStop(reason))
        return
      }
      for (const pid of children.unsafeSnapshot()) Orphans.killProcessSync(pid)
      Orphans.killRunSync(executionId)
      fs.rmSync(registryFile, { force: true })
      process.exit(code)
    }
    const onSignal = (signal: NodeJS.Signals) => stop(`received ${signal}`, exitCodes[signal] ?? 1)
    const onCrash = (error: unknown) => {
      process.stderr.write(`ramure: uncaught ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
      const text = `uncaught ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`
      crashed(text)
      stop(`the orchestrator hit an error outside Effect (${text})`, 1)
    }
    // A stopped run exits with the code of what stopped it, whoever calls `process.exit`.
    const onExit = () => {
      if (exitCode !== undefined) process.exitCode = exitCode
    }
    const signals: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM", "SIGHUP"]
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (const signal of signals) process.on(signal, onSignal)
        process.on("uncaughtException", onCrash)
        process.on("unhandledRejection", onCrash)
        process.on("exit", onExit)
      }),
      () =>
        Effect.sync(() => {
          for (const signal of signals) process.removeListener(signal, onSignal)
          process.removeListener("uncaughtException", onCrash)
          process.removeListener("unhandledRejection", onCrash)
          // Kept until the process exits when a signal stopped the run.
          if (exitCode === undefined) process.removeListener("exit", onExit)
        })
    )
  })
