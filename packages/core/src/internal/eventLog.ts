/**
 * An append-only, replayable log: late subscribers first get what was already
 * appended, then everything appended later, with nothing missed or doubled.
 */
import { Effect, Option, PubSub, Stream } from "effect"

export interface EventLog<A> {
  readonly append: (item: A) => Effect.Effect<number>
  /** Number of items appended so far. */
  readonly size: Effect.Effect<number>
  readonly items: Effect.Effect<ReadonlyArray<A>>
  /** Items with index ≥ `from` (0-based), then live items, until `end`. */
  readonly stream: (from?: number) => Stream.Stream<A>
  /** No more items: open streams end after the last one. Idempotent. */
  readonly end: Effect.Effect<void>
  readonly ended: Effect.Effect<boolean>
}

type Signal<A> = { readonly index: number; readonly item: Option.Option<A> }

export const make = <A>(options: { readonly capacity?: number } = {}): Effect.Effect<EventLog<A>> =>
  Effect.gen(function* () {
    const capacity = options.capacity
    const buffer: Array<A> = []
    let dropped = 0
    let closed = false
    const hub = yield* PubSub.unbounded<Signal<A>>()

    const append = (item: A) =>
      Effect.suspend(() => {
        if (closed) return Effect.succeed(dropped + buffer.length)
        buffer.push(item)
        const index = dropped + buffer.length - 1
        if (capacity !== undefined && buffer.length > capacity) {
          buffer.shift()
          dropped++
        }
        return Effect.as(PubSub.publish(hub, { index, item: Option.some(item) }), index + 1)
      })

    const end = Effect.suspend(() => {
      if (closed) return Effect.void
      closed = true
      return Effect.asVoid(PubSub.publish(hub, { index: dropped + buffer.length, item: Option.none() }))
    })

    const stream = (from = 0): Stream.Stream<A> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const subscription = yield* PubSub.subscribe(hub)
          const start = Math.max(from, dropped)
          const backlog = buffer.slice(start - dropped)
          const next = dropped + buffer.length
          const past = Stream.fromIterable(backlog)
          if (closed) return past
          const live = Stream.fromQueue(subscription).pipe(
            Stream.filter((signal) => signal.index >= Math.max(next, from)),
            Stream.takeWhile((signal) => Option.isSome(signal.item)),
            Stream.map((signal) => (signal.item as Option.Some<A>).value)
          )
          return Stream.concat(past, live)
        })
      )

    return {
      append,
      size: Effect.sync(() => dropped + buffer.length),
      items: Effect.sync(() => buffer.slice()),
      stream,
      end,
      ended: Effect.sync(() => closed)
    }
  })
