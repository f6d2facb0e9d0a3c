import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope, TestClock } from "effect"
import * as WarmPool from "../src/WarmPool.js"

/** Items that record their life: started, released, killed (dead while idle). */
const harness = Effect.gen(function* () {
  let counter = 0
  const started: Array<string> = []
  const released: Array<string> = []
  const deaths = new Map<string, Deferred.Deferred<void>>()
  /** Starts that have not finished yet (a gate decides when they do). */
  let inFlight = 0
  let mostInFlight = 0
  const gate = { open: true, waiting: [] as Array<Deferred.Deferred<void>> }
  let failNext: string | undefined
  const start = (key: string) =>
    Effect.gen(function* () {
      const id = `${key}#${++counter}`
      inFlight++
      mostInFlight = Math.max(mostInFlight, inFlight)
      if (!gate.open) {
        const go = yield* Deferred.make<void>()
        gate.waiting.push(go)
        yield* Deferred.await(go)
      }
      yield* Effect.sleep("10 millis")
      inFlight--
      if (failNext !== undefined) {
        const reason = failNext
        failNext = undefined
        return yield* Effect.fail(reason)
      }
      started.push(id)
      deaths.set(id, yield* Deferred.make<void>())
      yield* Effect.addFinalizer(() => Effect.sync(() => released.push(id)))
      return id
    })
  const pool = (options: Partial<WarmPool.Options<string, string>> & { readonly keys: ReadonlyArray<string>; readonly size: number }) =>
    WarmPool.make<string, string>({
      start,
      died: (id) => Deferred.await(deaths.get(id)!),
      isAlive: (id) => Effect.map(Deferred.isDone(deaths.get(id)!), (dead) => !dead),
      ...options
    })
  return {
    pool,
    started,
    released,
    kill: (id: string) => Deferred.succeed(deaths.get(id)!, undefined),
    inFlight: () => mostInFlight,
    closeGate: () => void (gate.open = false),
    openGate: Effect.suspend(() => {
      gate.open = true
      return Effect.forEach(gate.waiting.splice(0), (go) => Deferred.succeed(go, undefined), { discard: true })
    }),
    failNext: (reason: string) => void (failNext = reason)
  }
})

/** Let the pool's background fibers run (the test clock drives their sleeps). */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) {
    yield* TestClock.adjust("10 millis")
    yield* Effect.yieldNow()
  }
})

describe("WarmPool", () => {
  it.scoped("fills to size, hands each item out once and refills; the taker's scope releases it", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const pool = yield* h.pool({ keys: ["m"], size: 2 })
      yield* settle
      expect(h.started).toEqual(["m#1", "m#2"])
      expect(yield* pool.stats("m")).toEqual({ idle: 2, starting: 0, waiting: 0 })

      const scope = yield* Scope.make()
      const first = yield* pool.take("m").pipe(Scope.extend(scope))
      const second = yield* pool.take("m").pipe(Scope.extend(scope))
      expect([first, second]).toEqual(["m#1", "m#2"])
      yield* settle
      // Replacements, never the same items again.
      expect(h.started).toEqual(["m#1", "m#2", "m#3", "m#4"])
      expect(h.released).toEqual([])
      yield* Scope.close(scope, Exit.void)
      expect(h.released.sort()).toEqual(["m#1", "m#2"])
      const third = yield* Effect.scoped(pool.take("m"))
      expect(third).toBe("m#3")
    }))

  it.scoped("an idle item that dies is dropped and replaced, never handed out", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const pool = yield* h.pool({ keys: ["m"], size: 1 })
      yield* settle
      yield* h.kill("m#1")
      yield* settle
      expect(h.released).toEqual(["m#1"])
      expect(yield* Effect.scoped(pool.take("m"))).toBe("m#2")
    }))

  it.scoped("a dead item found at take time is skipped", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const pool = yield* h.pool({ keys: ["m"], size: 2 })
      yield* settle
      // Dead, but its watcher has not run yet: `take` must notice by itself.
      yield* h.kill("m#1")
      expect(yield* Effect.scoped(pool.take("m"))).toBe("m#2")
    }))

  it.scoped("background refills start at most `concurrency` at once; waiting takers are not held back", () =>
    Effect.gen(function* () {
      const h = yield* harness
      h.closeGate()
      const pool = yield* h.pool({ keys: ["m"], size: 4, concurrency: 1 })
      yield* settle
      expect(yield* pool.stats("m")).toEqual({ idle: 0, starting: 1, waiting: 0 })
      // Three takers: two more starts right away, on top of the background one.
      const takers = yield* Effect.forkAll([1, 2, 3].map(() => Effect.scoped(pool.take("m"))))
      yield* settle
      expect((yield* pool.stats("m")).starting).toBe(3)
      yield* h.openGate
      yield* settle
      expect((yield* Fiber.join(takers)).sort()).toEqual(["m#1", "m#2", "m#3"])
    }))

  it.scoped("a failed start fails the taker waiting for it; keys that are not warm start only on demand", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const pool = yield* h.pool({ keys: ["m"], size: 1 })
      yield* settle
      expect(yield* pool.stats("other")).toEqual({ idle: 0, starting: 0, waiting: 0 })
      h.failNext("no such model")
      const failed = yield* Effect.scoped(pool.take("other")).pipe(Effect.flip, Effect.fork)
      yield* settle
      expect(yield* Fiber.join(failed)).toBe("no such model")
      const ok = yield* Effect.scoped(pool.take("other")).pipe(Effect.fork)
      yield* settle
      expect(yield* Fiber.join(ok)).toBe("other#3")
      // Nothing kept warm for it afterwards.
      expect(yield* pool.stats("other")).toEqual({ idle: 0, starting: 0, waiting: 0 })
    }))

  it.scoped("a failed background start is retried after a pause", () =>
    Effect.gen(function* () {
      const h = yield* harness
      h.failNext("pi crashed")
      const failures: Array<string> = []
      const pool = yield* h.pool({
        keys: ["m"],
        size: 1,
        onStartFailure: (key) => Effect.sync(() => void failures.push(key))
      })
      yield* settle
      expect(failures).toEqual(["m"])
      expect(yield* pool.stats("m")).toEqual({ idle: 0, starting: 0, waiting: 0 })
      yield* TestClock.adjust("500 millis")
      yield* settle
      expect(yield* pool.stats("m")).toEqual({ idle: 1, starting: 0, waiting: 0 })
      expect(h.started).toEqual(["m#2"])
    }))

  it.scoped("a taker interrupted while waiting leaves the item for the next one", () =>
    Effect.gen(function* () {
      const h = yield* harness
      h.closeGate()
      const pool = yield* h.pool({ keys: [], size: 0 })
      const waiting = yield* Effect.scoped(pool.take("m")).pipe(Effect.fork)
      yield* settle
      yield* Fiber.interrupt(waiting)
      yield* h.openGate
      yield* settle
      expect(yield* pool.stats("m")).toEqual({ idle: 1, starting: 0, waiting: 0 })
      expect(yield* Effect.scoped(pool.take("m"))).toBe("m#1")
    }))

  it.scoped("a background start waits `backgroundDelay`, unless someone is waiting for the item", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const pool = yield* h.pool({ keys: ["m"], size: 1, backgroundDelay: "10 seconds" })
      yield* settle
      expect(h.started).toEqual([])
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(h.started).toEqual(["m#1"])
      // Taken: its replacement would wait 10 s, but a second taker cuts that short.
      yield* Effect.scoped(pool.take("m"))
      const next = yield* Effect.scoped(pool.take("m")).pipe(Effect.fork)
      yield* settle
      expect(yield* Fiber.join(next)).toBe("m#2")
    }))

  it.scoped("evictIdle closes an idle item of another key", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const pool = yield* h.pool({ keys: ["a"], size: 1 })
      yield* settle
      expect(yield* pool.evictIdle("a")).toBe(false)
      expect(yield* pool.evictIdle("b")).toBe(true)
      expect(h.released).toEqual(["a#1"])
    }))

  it.scoped("closing the pool releases idle items and starts nothing more", () =>
    Effect.gen(function* () {
      const h = yield* harness
      const scope = yield* Scope.make()
      yield* h.pool({ keys: ["m"], size: 2 }).pipe(Scope.extend(scope))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      yield* settle
      expect(h.released.sort()).toEqual(["m#1", "m#2"])
      expect(h.started).toEqual(["m#1", "m#2"])
    }))
})
