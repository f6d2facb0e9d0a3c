/**
 * The run's limits on agents: how many may be starting at once (starting pi
 * is heavy) and how many may be live.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import * as os from "node:os"

export interface Options {
  /**
   * How many agents may be starting at once (default: the number of CPU cores,
   * at least 2); others wait their turn. Starting pi is CPU-bound: more at once
   * only delays the first ones without bringing the last one sooner.
   */
  readonly maxStartingAgents?: number
  /** How many agents may be live at once (default unlimited); `Agent.make` waits for a slot. */
  readonly maxLiveAgents?: number
}

export class RunLimits extends Context.Tag("@ramure/core/RunLimits")<
  RunLimits,
  {
    /** Run `effect` holding one of the places for starting agents. */
    readonly withStartPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    /**
     * Hold a place under the limit on live agents until the scope closes.
     * While it waits, `evict` (if given) is asked every 100 ms to stop an idle
     * pre-started agent, whose place the run's live agents need more.
     */
    readonly holdLiveSlot: (evict?: Effect.Effect<boolean>) => Effect.Effect<void, never, Scope.Scope>
  }
>() {}

/** Starting agents at once: one per core (at least 2). */
export const defaultMaxStartingAgents = (): number => Math.max(2, os.availableParallelism())

export const layer = (options: Options = {}): Layer.Layer<RunLimits> =>
  Layer.effect(
    RunLimits,
    Effect.gen(function* () {
      const starting = yield* Effect.makeSemaphore(options.maxStartingAgents ?? defaultMaxStartingAgents())
      const live = yield* Effect.makeSemaphore(options.maxLiveAgents ?? Number.MAX_SAFE_INTEGER)
      return {
        withStartPermit: starting.withPermits(1),
        holdLiveSlot: (evict) =>
          Effect.acquireRelease(
            Effect.interruptible(
              evict === undefined
                ? live.take(1)
                : Effect.raceFirst(live.take(1), evict.pipe(Effect.delay("100 millis"), Effect.forever))
            ),
            () => live.release(1)
          )
      }
    })
  )
