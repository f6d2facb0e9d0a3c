/**
 * The programs the run started (agents' pis), by pid: what a forced exit
 * (a second Ctrl-C) kills when there is no time left for scopes to close.
 */
import { Context, Effect, Layer, type Scope } from "effect"

export class ChildProcesses extends Context.Tag("@ramure/core/ChildProcesses")<
  ChildProcesses,
  {
    /** Remember `pid` until the scope closes. */
    readonly track: (pid: number) => Effect.Effect<void, never, Scope.Scope>
    /** The pids tracked now, as a plain call for signal handlers. */
    readonly unsafeSnapshot: () => ReadonlyArray<number>
  }
>() {}

export const layer: Layer.Layer<ChildProcesses> = Layer.sync(ChildProcesses, () => {
  const pids = new Set<number>()
  return {
    track: (pid) =>
      Effect.acquireRelease(Effect.sync(() => void pids.add(pid)), () => Effect.sync(() => void pids.delete(pid))),
    unsafeSnapshot: () => [...pids]
  }
})
