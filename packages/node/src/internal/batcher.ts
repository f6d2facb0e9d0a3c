/**
 * Requests from many fibers served by one worker in batches: whatever was
 * asked while the previous batch ran is served by the next one. Used to run
 * one tmux client for many agents (a pane listing, a session kill) instead of
 * one each.
 *
 * @internal
 */
import { Deferred, Effect, Fiber, Queue, type Scope } from "effect"

type Pending<R, A, E> = readonly [R, Deferred.Deferred<A, E>]

/**
 * `serve(requests)` answers a batch (one answer for all of it). Requests made
 * after the scope closed, or still queued when it closes, are served directly.
 */
export const make = <R, A, E>(
  serve: (requests: ReadonlyArray<R>) => Effect.Effect<A, E>
): Effect.Effect<(request: R) => Effect.Effect<A, E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Pending<R, A, E>>()
    let closed = false
    const answer = (batch: ReadonlyArray<Pending<R, A, E>>) =>
      Effect.exit(serve(batch.map(([request]) => request))).pipe(
        Effect.flatMap((exit) => Effect.forEach(batch, ([, deferred]) => Deferred.done(deferred, exit), { discard: true })),
        Effect.uninterruptible
      )
    const worker = yield* Queue.take(queue).pipe(
      Effect.flatMap((first) => Effect.map(Queue.takeAll(queue), (rest) => [first, ...rest])),
      Effect.flatMap(answer),
      Effect.forever,
      Effect.forkDaemon
    )
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true
        yield* Fiber.interrupt(worker)
        const left = yield* Queue.takeAll(queue)
        if (left.length > 0) yield* answer([...left])
      })
    )
    return (request: R) =>
      closed
        ? serve([request])
        : Effect.flatMap(Deferred.make<A, E>(), (deferred) =>
          Effect.zipRight(Queue.offer(queue, [request, deferred]), Deferred.await(deferred)))
  })
