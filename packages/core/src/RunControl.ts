/**
 * What the run offers its controllers (the `ramure` CLI, a web view): a way
 * to ask it to stop, and the endpoints of its live processes by path. A
 * process registers itself for as long as it runs, so a call to a finished
 * process is an error, never a call into a dead scope.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Context, Deferred, Effect, Layer, Schema, type Scope } from "effect"
import {
  AgentNotLive,
  EndpointFailed,
  EndpointNotFound,
  type EndpointError,
  MessageTooLarge,
  ProcessEnded,
  ProcessNotFound
} from "./Errors.js"
import { NoBudget } from "./Budget.js"
import { BudgetAmounts, LogEntry } from "./RunEvent.js"
import * as RunStatus from "./RunStatus.js"

/** A live process as the control channel sees it. */
export interface ProcessEndpoints {
  readonly names: Effect.Effect<ReadonlyArray<string>>
  readonly call: (endpoint: string, args: unknown, caller: string) => Effect.Effect<unknown, EndpointError>
}

export class RunControl extends Context.Tag("@ramure/core/RunControl")<
  RunControl,
  {
    /** Completes with the reason once the run is asked to stop. */
    readonly stopRequested: Effect.Effect<string>
    readonly requestStop: (reason: string) => Effect.Effect<void>
    /** Make a process's endpoints callable until the scope closes. */
    readonly register: (path: string, process: ProcessEndpoints) => Effect.Effect<void, never, Scope.Scope>
    /** Call an endpoint of the process at `path` (default: the root process). */
    readonly call: (
      path: string | undefined,
      endpoint: string,
      args: unknown,
      caller: string
    ) => Effect.Effect<unknown, EndpointError | ProcessNotFound>
  }
>() {}

export const layer: Layer.Layer<RunControl> = Layer.effect(
  RunControl,
  Effect.gen(function* () {
    const stop = yield* Deferred.make<string>()
    const processes = new Map<string, ProcessEndpoints>()
    /** The first top-level process: what `ramure call` reaches without a path. */
    let root: string | undefined
    return {
      stopRequested: Deferred.await(stop),
      requestStop: (reason) => Effect.asVoid(Deferred.succeed(stop, reason)),
      register: (path, process) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            processes.set(path, process)
            if (root === undefined && !path.includes("/")) root = path
          }),
          () => Effect.sync(() => void processes.delete(path))
        ),
      call: (path, endpoint, args, caller) =>
        Effect.suspend((): Effect.Effect<unknown, EndpointError | ProcessNotFound> => {
          const target = path ?? root
          const process = target === undefined ? undefined : processes.get(target)
          if (process === undefined) {
            return Effect.fail(new ProcessNotFound({ process: target ?? "(root)", available: [...processes.keys()] }))
          }
          // The value goes out as JSON: one JSON cannot carry is a failure, so the call still gets its answer.
          return Effect.flatMap(process.call(endpoint, args, caller), (value) => {
            try {
              JSON.stringify(value)
              return Effect.succeed(value)
            } catch (error) {
              const reason = `the result cannot be sent: ${error instanceof Error ? error.message : String(error)}`
              return Effect.fail(new EndpointFailed({ process: target!, endpoint, reason }))
            }
          })
        })
    }
  })
)

// ---------------------------------------------------------------------------
// The control channel (`/control`): what the `ramure` CLI and other controllers ask of a live run.

/** No live agent has this id. */
export class UnknownAgent extends Schema.TaggedError<UnknownAgent>()("UnknownAgent", {
  agent: Schema.String,
  live: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no live agent "${this.agent}" (live: ${this.live.join(", ") || "none"})`
  }
}

export class ControlRpcs extends RpcGroup.make(
  /** The run's status (the fold of its log). */
  Rpc.make("Status", { success: RunStatus.RunStatus }),
  /** Deliver a user message to a live agent. */
  Rpc.make("Send", {
    payload: { agent: Schema.String, text: Schema.String },
    error: Schema.Union(UnknownAgent, AgentNotLive, MessageTooLarge)
  }),
  /** Call an endpoint of a live process (default: the root process); the value is JSON. */
  Rpc.make("Call", {
    payload: { process: Schema.optional(Schema.String), endpoint: Schema.String, args: Schema.Unknown },
    success: Schema.Unknown,
    error: Schema.Union(EndpointNotFound, EndpointFailed, ProcessEnded, ProcessNotFound)
  }),
  /**
   * Raise the budget of a live agent (by id) or process (by path): `by` is
   * added to its limits; its paused agents go on if it has room again. The
   * limits it has now.
   */
  Rpc.make("Budget", {
    payload: { target: Schema.String, by: BudgetAmounts },
    success: BudgetAmounts,
    error: NoBudget
  }),
  /** Ask the run to stop: its root process is cancelled and every scope closes. */
  Rpc.make("Stop", { payload: { reason: Schema.optional(Schema.String) } }),
  /** The run's log entries numbered above `after`, then live ones, until `RunEnded`. */
  Rpc.make("Follow", { payload: { after: Schema.optional(Schema.Number) }, success: LogEntry, stream: true })
) {}
