/**
 * What the run offers its controllers (the `ramure` CLI, a web view): a way
 * to ask it to stop, and the endpoints of its live processes by path. A
 * process registers itself for as long as it runs, so a call to a finished
 * process is an error, never a call into a dead scope.
 */
import { Context, Deferred, Effect, Layer, type Scope } from "effect"
import { ProcessNotFound, type EndpointError } from "./Errors.js"

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
          return process.call(endpoint, args, caller)
        })
    }
  })
)
