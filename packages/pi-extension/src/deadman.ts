/**
 * The dead-man switch of an agent whose run became unreachable (the
 * orchestrator died, was killed, or stopped answering): the agent freezes —
 * the model request or tool in progress may finish, but no new request goes
 * to the model and no new tool starts — while its client keeps trying to
 * reconnect. A run that comes back within the timeout (the same one, or a
 * resumed one at the address the agent's address file now names) finds the
 * agent where it was, and the agent reports how long it was paused. When the
 * timeout passes first, the agent stops: no unsupervised edits, no
 * unsupervised spending.
 */
import { Deferred, Duration, Effect, FiberHandle, Scope } from "effect"

/** What the agent held back while its run was unreachable. */
export interface Pause {
  readonly durationMs: number
  readonly heldRequests: number
  readonly heldTools: number
}

export interface Deadman {
  /** The agent's link to its run went up (synced) or down; downs before the first up do not count. */
  readonly link: (up: boolean) => Effect.Effect<void>
  /**
   * Resolves at once while the run is reachable; otherwise when it is back
   * (never, if the timeout passes first). What waits is counted in the pause.
   */
  readonly hold: (what: "request" | "tool") => Promise<void> | undefined
}

interface Frozen {
  readonly since: number
  readonly resumed: Deferred.Deferred<void>
  heldRequests: number
  heldTools: number
}

/**
 * A switch fed with the link's changes (`link`) for as long as the scope
 * lasts. `onResumed` reports each pause once the run is back; `onTimeout`
 * runs when the run stays unreachable for `timeout` and should stop the agent.
 * Before the first sync the start-up's own timeout applies, not this one.
 */
export const make = (options: {
  readonly timeout: Duration.Duration
  readonly onResumed: (pause: Pause) => Effect.Effect<void>
  readonly onTimeout: Effect.Effect<void>
}): Effect.Effect<Deadman, never, Scope.Scope> =>
  Effect.gen(function* () {
    let frozen: Frozen | undefined
    let armed = false
    const timer = yield* FiberHandle.make()

    const freeze = Effect.gen(function* () {
      if (frozen !== undefined) return
      frozen = { since: Date.now(), resumed: yield* Deferred.make<void>(), heldRequests: 0, heldTools: 0 }
      yield* FiberHandle.run(timer, Effect.zipRight(Effect.sleep(options.timeout), options.onTimeout))
    })
    const thaw = Effect.gen(function* () {
      const pause = frozen
      if (pause === undefined) return
      frozen = undefined
      yield* FiberHandle.clear(timer)
      yield* Deferred.succeed(pause.resumed, undefined)
      yield* options.onResumed({
        durationMs: Date.now() - pause.since,
        heldRequests: pause.heldRequests,
        heldTools: pause.heldTools
      })
    })
    return {
      link: (up) =>
        Effect.suspend(() => {
          armed ||= up
          return !armed ? Effect.void : up ? thaw : freeze
        }),
      hold: (what) => {
        const pause = frozen
        if (pause === undefined) return undefined
        if (what === "request") pause.heldRequests++
        else pause.heldTools++
        return Effect.runPromise(Deferred.await(pause.resumed))
      }
    }
  })
