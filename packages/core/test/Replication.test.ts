/**
 * An agent's replication log keeps in memory only what an agent may soon ask
 * for again; everything else is read back from the run's log, so a replay
 * from any point is whole and in order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import * as CallIds from "../src/internal/callIds.js"
import * as Replication from "../src/internal/replication.js"
import * as LogSink from "../src/LogSink.js"
import { RunLog } from "../src/RunLog.js"
import * as RunLogModule from "../src/RunLog.js"

const runLog = RunLogModule.layer.pipe(Layer.provide(LogSink.layerMemory))

/** Record a message for agent `a` the way an agent session does: logged and appended in one step. */
const deliver = (log: RunLogModule.RunLogService, replication: Replication.ReplicationLog, text: string) =>
  Effect.sync(() => {
    const entry = log.unsafeLog({ process: "main", agent: "a" }, { _tag: "MessageDelivered", text })
    return replication.unsafeAppend(entry.n, { _tag: "UserMessage", text })
  })

const texts = (entries: ReadonlyArray<Replication.Replicated>) =>
  entries.map((entry) => (entry.body._tag === "UserMessage" ? entry.body.text : entry.body._tag))

/** Everything `forEach(after)` yields until `count` entries have come. */
const collect = (replication: Replication.ReplicationLog, after: number, count: number) =>
  Effect.gen(function* () {
    const seen: Array<Replication.Replicated> = []
    yield* replication.forEach(after, (entry) =>
      Effect.suspend(() => {
        seen.push(entry)
        return seen.length === count ? Effect.interrupt : Effect.void
      })).pipe(Effect.catchAllCause(() => Effect.void))
    return seen
  })

describe("replication log", () => {
  it.effect("keeps at most its limits in memory however much is appended; older entries come back from the run's log", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const replication = yield* Replication.make("a", log, { maxEntries: 100, maxBytes: 1024 * 1024 })
      // Other agents' and the run's entries are interleaved in the run's log.
      for (let i = 1; i <= 5_000; i++) {
        yield* deliver(log, replication, `m${i}`)
        if (i % 7 === 0) log.unsafeLog({ process: "main", agent: "b" }, { _tag: "MessageDelivered", text: "other" })
      }
      expect(yield* replication.size).toBe(5_000)
      expect(replication.firstInMemory()).toBe(4_901)
      const all = yield* collect(replication, 0, 5_000)
      expect(all.map((entry) => entry.seq)).toEqual(Array.from({ length: 5_000 }, (_, i) => i + 1))
      expect(texts(all)).toEqual(Array.from({ length: 5_000 }, (_, i) => `m${i + 1}`))
      expect(texts(yield* collect(replication, 4_000, 1_000))[0]).toBe("m4001")
    }).pipe(Effect.provide(runLog)))

  it.effect("bytes count too: a few large entries fill the memory it keeps", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const replication = yield* Replication.make("a", log, { maxEntries: 1_000, maxBytes: 64 * 1024 })
      for (let i = 1; i <= 100; i++) yield* deliver(log, replication, `${i} ${"x".repeat(10_000)}`)
      expect(100 - replication.firstInMemory() + 1).toBeLessThanOrEqual(7)
      expect(texts(yield* collect(replication, 0, 100)).map((text) => text.split(" ")[0])).toEqual(
        Array.from({ length: 100 }, (_, i) => String(i + 1))
      )
    }).pipe(Effect.provide(runLog)))

  it.effect("what the agent acknowledged leaves memory; a replay from before it still has it", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const replication = yield* Replication.make("a", log)
      for (let i = 1; i <= 50; i++) yield* deliver(log, replication, `m${i}`)
      expect(replication.firstInMemory()).toBe(1)
      replication.acknowledge(40)
      expect(replication.firstInMemory()).toBe(41)
      expect(texts(yield* collect(replication, 10, 40))).toEqual(Array.from({ length: 40 }, (_, i) => `m${i + 11}`))
    }).pipe(Effect.provide(runLog)))

  it.effect("a replay goes on with live entries, none missed or doubled while older ones are read back", () =>
    Effect.gen(function* () {
      const log = yield* RunLog
      const replication = yield* Replication.make("a", log, { maxEntries: 10 })
      for (let i = 1; i <= 100; i++) yield* deliver(log, replication, `m${i}`)
      const reader = yield* Effect.fork(collect(replication, 0, 200))
      for (let i = 101; i <= 200; i++) {
        yield* deliver(log, replication, `m${i}`)
        if (i % 10 === 0) yield* Effect.yieldNow()
      }
      const seen = yield* Fiber.join(reader)
      expect(texts(seen)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i + 1}`))
    }).pipe(Effect.provide(runLog)))
})

describe("call ids", () => {
  it("a call is run once: a duplicate in flight or recently finished is recognised; only the last finished ids are kept", () => {
    const calls = CallIds.make(3)
    expect(calls.claim("c1")).toBe(true)
    expect(calls.claim("c1")).toBe(false)
    calls.finish("c1")
    expect(calls.claim("c1")).toBe(false)
    for (const id of ["c2", "c3", "c4"]) {
      expect(calls.claim(id)).toBe(true)
      calls.finish(id)
    }
    // c1 is the oldest of four finished calls: forgotten.
    expect(calls.claim("c1")).toBe(true)
    expect(calls.claim("c2")).toBe(false)
  })
})
