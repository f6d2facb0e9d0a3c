/**
 * The calls a taken-over agent had made and the run had answered before the
 * run was resumed: their handlers run again, oldest first, while the program
 * catches up with its journal — so that what the process keeps in memory
 * (a counter, a list of results) is what it was. What a replayed handler does
 * through ramure is taken from the journal (a message is not sent again, a
 * step not run again), and its answer is not sent: the agent has it. A call
 * whose tool the program has not given again by the time it has caught up is
 * not replayed. Calls made after the resume wait for the replays.
 *
 * @internal
 */
import { Deferred, Effect, FiberId, Option } from "effect"
import type { AnsweredCall } from "../Journal.js"

export interface Replays {
  /** The program gave the tool `name` (again). */
  readonly given: (name: string) => void
  /** Every answered call has been replayed (or skipped). */
  readonly done: Effect.Effect<void>
  /**
   * Replay the calls, one at a time: `lookup` finds a tool's handler once it
   * is given; `caughtUp` completes when the program has done again what its
   * journal has (a tool not given by then is not waited for).
   */
  readonly run: (
    lookup: (tool: string) => Option.Option<(call: AnsweredCall) => Effect.Effect<unknown, unknown>>,
    caughtUp: Effect.Effect<void>
  ) => Effect.Effect<void>
}

export const make = (calls: ReadonlyArray<AnsweredCall>): Replays => {
  const finished = Deferred.unsafeMake<void>(FiberId.none)
  if (calls.length === 0) Deferred.unsafeDone(finished, Effect.void)
  const given = new Map<string, Deferred.Deferred<void>>()
  const givenOnce = (name: string) => {
    let deferred = given.get(name)
    if (deferred === undefined) given.set(name, (deferred = Deferred.unsafeMake<void>(FiberId.none)))
    return deferred
  }
  return {
    given: (name) => Deferred.unsafeDone(givenOnce(name), Effect.void),
    done: Deferred.await(finished),
    run: (lookup, caughtUp) =>
      Effect.forEach(calls, (call) =>
        Effect.gen(function* () {
          yield* Deferred.await(givenOnce(call.tool)).pipe(Effect.raceFirst(caughtUp))
          const handler = lookup(call.tool)
          if (Option.isSome(handler)) yield* Effect.ignore(handler.value(call))
        }), { discard: true }).pipe(
          Effect.ensuring(Deferred.succeed(finished, undefined))
        )
  }
}
