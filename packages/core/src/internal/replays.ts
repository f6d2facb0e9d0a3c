/**
 * The calls that taken-over agents had made and the run had answered before
 * it was resumed: their handlers run again, one at a time in the order the
 * calls were made (across agents), while the program catches up with its
 * journal — so that what the process keeps in memory (a counter, results
 * gathered so far) is what it was. What a replayed handler does through
 * ramure is taken from the journal (a message is not sent again, a step not
 * run again), and its answer is not sent: the agent has it. A call whose tool
 * the program has not given again by the time it has caught up is not
 * replayed. Calls made after the resume, by any agent, wait for the replays.
 *
 * @internal
 */
import { Deferred, Effect, FiberId, Option } from "effect"
import type { AnsweredCall } from "../Journal.js"

/** How an agent's session runs a replayed call of its tool `tool`, if that tool is the process's. */
export type Lookup = (tool: string) => Option.Option<(call: AnsweredCall) => Effect.Effect<unknown, unknown>>

export interface Replays {
  /** The session of `agent` exists: its tools are looked up with `lookup`. */
  readonly attach: (agent: string, lookup: Lookup) => void
  /** The program gave `agent` the tool `tool` (again). */
  readonly given: (agent: string, tool: string) => void
  /** Every answered call has been replayed (or skipped). */
  readonly done: Effect.Effect<void>
  /** Replay the calls; `caughtUp` completes when the program has done again what its journal has. */
  readonly run: (caughtUp: Effect.Effect<void>) => Effect.Effect<void>
}

export const make = (calls: ReadonlyArray<AnsweredCall>): Replays => {
  const finished = Deferred.unsafeMake<void>(FiberId.none)
  if (calls.length === 0) Deferred.unsafeDone(finished, Effect.void)
  const lookups = new Map<string, Lookup>()
  const given = new Map<string, Deferred.Deferred<void>>()
  const givenOnce = (agent: string, tool: string) => {
    const key = `${agent}\u0000${tool}`
    let deferred = given.get(key)
    if (deferred === undefined) given.set(key, (deferred = Deferred.unsafeMake<void>(FiberId.none)))
    return deferred
  }
  return {
    attach: (agent, lookup) => void lookups.set(agent, lookup),
    given: (agent, tool) => Deferred.unsafeDone(givenOnce(agent, tool), Effect.void),
    done: Deferred.await(finished),
    run: (caughtUp) =>
      Effect.forEach(calls, (call) =>
        Effect.gen(function* () {
          yield* Deferred.await(givenOnce(call.agent, call.tool)).pipe(Effect.raceFirst(caughtUp))
          const handler = Option.flatMap(Option.fromNullable(lookups.get(call.agent)), (lookup) => lookup(call.tool))
          if (Option.isSome(handler)) yield* Effect.ignore(handler.value(call))
        }), { discard: true }).pipe(
          Effect.ensuring(Deferred.succeed(finished, undefined))
        )
  }
}

/** A fresh run's: nothing to replay. */
export const none: Replays = make([])
