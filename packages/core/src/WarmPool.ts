/**
 * A keyed pool of resources started ahead of need and handed out once each.
 *
 * Like `effect/Pool` it is scoped, sized and refilled in the background; unlike
 * it, an item never comes back: `take` moves the item — and the scope that
 * owns its resources — to the taker, whose scope then releases it, and the
 * pool starts a replacement. An idle item that dies is dropped and replaced,
 * never handed out.
 *
 * Background refills start at most `concurrency` items at once, so filling
 * the pool does not crowd out running work; an item started because someone
 * is already waiting for it is not limited that way.
 *
 * Forked work is made interruptible explicitly: it is often forked from
 * `take`, whose uninterruptible region a fork would otherwise inherit.
 */
import { type Cause, Deferred, type Duration, Effect, ExecutionStrategy, Exit, Option, Schedule, Scope } from "effect"

export interface Options<A, E> {
  /** Keys kept warm from the start; any other key gets items only when asked for one. */
  readonly keys: ReadonlyArray<string>
  /** How many ready items to keep for each warm key. */
  readonly size: number
  /** Refill once ready + starting items of a warm key drop below this (default: `size`). */
  readonly minIdle?: number
  /** How many background starts may run at once, over all keys (default 1). */
  readonly concurrency?: number
  /**
   * How long a background start waits before it begins (default 0): room for
   * the taker of the item it replaces to get going first. Cut short when a
   * taker starts waiting.
   */
  readonly backgroundDelay?: Duration.DurationInput
  /** Start an item; its resources live in the provided scope. */
  readonly start: (key: string) => Effect.Effect<A, E, Scope.Scope>
  /** Completes when an item dies (an idle one is then dropped and replaced). */
  readonly died: (item: A) => Effect.Effect<unknown>
  /** Whether an item can still be handed out. */
  readonly isAlive: (item: A) => Effect.Effect<boolean>
  /** Told about idle items that died (and were dropped). */
  readonly onDied?: (item: A) => Effect.Effect<void>
  /** Told about background starts that failed (they are retried after a growing pause). */
  readonly onStartFailure?: (key: string, cause: Cause.Cause<E>) => Effect.Effect<void>
}

export interface Stats {
  readonly idle: number
  readonly starting: number
  readonly waiting: number
}

export interface WarmPool<A, E> {
  /**
   * An item for `key`: a ready one at once, else the next one to start. From
   * now on it belongs to the caller's scope.
   */
  readonly take: (key: string) => Effect.Effect<A, E, Scope.Scope>
  /** Close one idle item whose key is not `except`, to free what it holds; false if there is none. */
  readonly evictIdle: (except?: string) => Effect.Effect<boolean>
  readonly stats: (key: string) => Effect.Effect<Stats>
}

interface Item<A> {
  readonly value: A
  readonly scope: Scope.CloseableScope
}

interface KeyState<A, E> {
  readonly idle: Array<Item<A>>
  readonly waiters: Array<Deferred.Deferred<Item<A>, E>>
  starting: number
  /** Consecutive failed starts; background refills pause 2^n × 500 ms (up to 30 s) after them, then try one at a time. */
  failures: number
  pausing: boolean
}

/** The pause before the next background start of a key whose last `failures` starts failed. */
const retryDelay = (failures: number): number => Math.min(30_000, 500 * 2 ** Math.max(0, failures - 1))

export const make = <A, E>(options: Options<A, E>): Effect.Effect<WarmPool<A, E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const poolScope = yield* Effect.scope
    const warm = new Set(options.keys)
    const minIdle = Math.min(options.minIdle ?? options.size, options.size)
    const concurrency = Math.max(1, options.concurrency ?? 1)
    const states = new Map<string, KeyState<A, E>>()
    let backgroundStarts = 0
    let closed = false
    // Runs before the items' scopes (children of this scope) close: nothing new starts during shutdown.
    yield* Effect.addFinalizer(() => Effect.sync(() => void (closed = true)))

    const stateOf = (key: string): KeyState<A, E> => {
      let state = states.get(key)
      if (state === undefined) states.set(key, (state = { idle: [], waiters: [], starting: 0, failures: 0, pausing: false }))
      return state
    }

    const close = (item: Item<A>) => Scope.close(item.scope, Exit.void)

    /** Hand a new item to the oldest waiter, or keep it idle (and watch it). */
    const offer = (key: string, item: Item<A>): Effect.Effect<void> =>
      Effect.gen(function* () {
        const state = stateOf(key)
        for (let waiter = state.waiters.shift(); waiter !== undefined; waiter = state.waiters.shift()) {
          if (yield* Deferred.succeed(waiter, item)) return
        }
        state.idle.push(item)
        yield* options.died(item.value).pipe(
          Effect.zipRight(Effect.suspend(() => {
            const index = state.idle.indexOf(item)
            if (index < 0) return Effect.void
            state.idle.splice(index, 1)
            return Effect.zipRight(
              options.onDied === undefined ? close(item) : Effect.zipRight(options.onDied(item.value), close(item)),
              kick(key)
            )
          })),
          Effect.interruptible,
          Effect.forkIn(item.scope)
        )
      })

    const startOne = (key: string, background: boolean): Effect.Effect<void> =>
      Effect.gen(function* () {
        const state = stateOf(key)
        if (background && options.backgroundDelay !== undefined) {
          // Cut short when someone starts waiting for an item: the delay is for quiet times.
          yield* Effect.sleep("25 millis").pipe(
            Effect.repeat({
              schedule: Schedule.spaced("25 millis").pipe(Schedule.upTo(options.backgroundDelay)),
              until: () => state.waiters.length > 0
            })
          )
        }
        const scope = yield* Scope.fork(poolScope, ExecutionStrategy.sequential)
        const exit = yield* options.start(key).pipe(Scope.extend(scope), Effect.exit)
        state.starting--
        if (background) backgroundStarts--
        if (Exit.isSuccess(exit)) {
          state.failures = 0
          yield* offer(key, { value: exit.value, scope })
        } else {
          yield* Scope.close(scope, exit)
          // Cut short by the pool's own shutdown: not a failure.
          if (closed) return
          state.failures++
          const waiter = state.waiters.shift()
          if (waiter !== undefined) yield* Deferred.failCause(waiter, exit.cause)
          else if (options.onStartFailure !== undefined) yield* options.onStartFailure(key, exit.cause)
          if (!state.pausing) {
            state.pausing = true
            yield* Effect.sleep(retryDelay(state.failures)).pipe(
              Effect.zipRight(Effect.suspend(() => {
                state.pausing = false
                return kick(key)
              })),
              Effect.interruptible,
              Effect.forkIn(poolScope)
            )
          }
        }
        yield* kick(key)
      }).pipe(Effect.interruptible, Effect.forkIn(poolScope), Effect.asVoid)

    /** Start what is missing: one item per waiter not yet covered, then background refills. */
    const kick = (key: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (closed) return Effect.void
        const state = stateOf(key)
        const starts: Array<Effect.Effect<void>> = []
        const begin = (background: boolean) => {
          state.starting++
          if (background) backgroundStarts++
          starts.push(startOne(key, background))
        }
        while (state.idle.length + state.starting < state.waiters.length) begin(false)
        if (warm.has(key) && !state.pausing && state.idle.length + state.starting < minIdle) {
          while (
            state.idle.length + state.starting < options.size && backgroundStarts < concurrency &&
            (state.failures === 0 || state.starting === 0)
          ) begin(true)
        }
        return Effect.all(starts, { discard: true })
      })

    const take = (key: string): Effect.Effect<A, E, Scope.Scope> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const state = stateOf(key)
          let item: Item<A> | undefined
          for (let candidate = state.idle.shift(); candidate !== undefined; candidate = state.idle.shift()) {
            if (yield* options.isAlive(candidate.value)) {
              item = candidate
              break
            }
            yield* close(candidate)
          }
          if (item === undefined) {
            const waiter = yield* Deferred.make<Item<A>, E>()
            state.waiters.push(waiter)
            yield* kick(key)
            item = yield* restore(Deferred.await(waiter)).pipe(
              Effect.onInterrupt(() =>
                Effect.gen(function* () {
                  const index = state.waiters.indexOf(waiter)
                  if (index >= 0) state.waiters.splice(index, 1)
                  // Handed over just as the taker gave up: keep it for the next one.
                  const handed = yield* Deferred.poll(waiter)
                  if (Option.isSome(handed)) {
                    const exit = yield* Effect.exit(handed.value)
                    if (Exit.isSuccess(exit)) yield* offer(key, exit.value)
                  }
                })
              )
            )
          }
          const taken = item
          yield* Effect.addFinalizer((exit) => Scope.close(taken.scope, exit))
          yield* kick(key)
          return taken.value
        })
      )

    const evictIdle = (except?: string) =>
      Effect.suspend(() => {
        for (const [key, state] of states) {
          if (key === except || state.idle.length === 0) continue
          return Effect.as(close(state.idle.shift()!), true)
        }
        return Effect.succeed(false)
      })

    const stats = (key: string) =>
      Effect.sync((): Stats => {
        const state = stateOf(key)
        return { idle: state.idle.length, starting: state.starting, waiting: state.waiters.length }
      })

    yield* Effect.forEach(options.keys, kick, { discard: true })
    return { take, evictIdle, stats }
  })
