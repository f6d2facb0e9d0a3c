/**
 * An append-only, replayable log: late subscribers first get what was already
 * appended, then everything appended later, with nothing missed or doubled.
 */
import { Effect, Option, PubSub, Queue, Stream } from "effect"

export interface EventLog<A> {
  readonly append: (item: A) => Effect.Effect<number>
  /** `append`, as a plain call, for callers that must append in the same synchronous step as something else. */
  readonly unsafeAppend: (item: A) => number
  /** Number of items appended so far. */
  readonly size: Effect.Effect<number>
  readonly items: Effect.Effect<ReadonlyArray<A>>
  /** Items with index ≥ `from` (0-based), then live items, until `end`. */
  readonly stream: (from?: number) => Stream.Stream<A>
  /**
   * Call `f` on the items from `from` on — those appended already at once,
   * then each new one in the same synchronous step as its append — until the
   * returned function (idempotent) is called or the log ends. An `f` that
   * throws is not called again.
   */
  readonly unsafeSubscribe: (from: number, f: (item: A) => void) => () => void
  /** Run `f` on the items of `stream(from)`, in order: the same items, without a Stream's cost per item. */
  readonly forEach: <E, R>(from: number, f: (item: A) => Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>
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
    const listeners = new Set<(item: A) => void>()
    const call = (f: (item: A) => void, item: A): boolean => {
      try {
        f(item)
        return true
      } catch {
        listeners.delete(f)
        return false
      }
    }

    // Appending and publishing are one synchronous step: a fiber that yielded in between would let a
    // concurrent append publish first, and live readers would see the items out of log order.
    const unsafeAppend = (item: A): number => {
      if (closed) return dropped + buffer.length
      buffer.push(item)
      const index = dropped + buffer.length - 1
      if (capacity !== undefined && buffer.length > capacity) {
        buffer.shift()
        dropped++
      }
      hub.unsafeOffer({ index, item: Option.some(item) })
      for (const f of [...listeners]) call(f, item)
      return index + 1
    }
    const append = (item: A) => Effect.sync(() => unsafeAppend(item))

    const end = Effect.sync(() => {
      if (closed) return
      closed = true
      listeners.clear()
      hub.unsafeOffer({ index: dropped + buffer.length, item: Option.none() })
    })

    const unsafeSubscribe = (from: number, f: (item: A) => void): (() => void) => {
      const listener = (item: A) => f(item)
      for (const item of buffer.slice(Math.max(from, dropped) - dropped)) {
        if (!call(listener, item)) return () => {}
      }
      if (!closed) listeners.add(listener)
      return () => void listeners.delete(listener)
    }

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

    const forEach = <E, R>(from: number, f: (item: A) => Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
      Effect.scoped(
        Effect.gen(function* () {
          const subscription = yield* PubSub.subscribe(hub)
          const backlog = buffer.slice(Math.max(from, dropped) - dropped)
          const next = Math.max(dropped + buffer.length, from)
          const ended = closed
          for (const item of backlog) yield* f(item)
          if (ended) return
          while (true) {
            for (const signal of yield* Queue.takeBetween(subscription, 1, Number.MAX_SAFE_INTEGER)) {
              if (Option.isNone(signal.item)) return
              if (signal.index >= next) yield* f(signal.item.value)
            }
          }
        })
      )

    return {
      append,
      unsafeAppend,
      size: Effect.sync(() => dropped + buffer.length),
      items: Effect.sync(() => buffer.slice()),
      stream,
      unsafeSubscribe,
      forEach,
      end,
      ended: Effect.sync(() => closed)
    }
  })
