/**
 * A resumed run replays its journal: what the log says a process already did
 * is returned again, not done again, and a program that no longer does what
 * its journal has is told so.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { ResumeDiverged } from "../src/Errors.js"
import * as Journal from "../src/Journal.js"
import * as Process from "../src/Process.js"
import type { LogEntry, RunEvent } from "../src/RunEvent.js"
import { RunLog } from "../src/RunLog.js"
import { scripted } from "./helpers.js"

/** A journal of these events, numbered in order. */
const journalOf = (events: ReadonlyArray<readonly [process: string, event: RunEvent]>, at = new Date()) =>
  Journal.make(events.map(([process, event], i): LogEntry => ({ n: i + 1, ts: at.toISOString(), process, event })))

const logged = Effect.flatMap(RunLog, (log) => log.history()).pipe(Effect.map((entries) => entries.map((e) => e.event._tag)))

describe("Journal", () => {
  it.live("a journaled step and emit are replayed, not done or logged again; what follows runs for real", () => {
    let runs = 0
    const inner = Process.make("inner", () =>
      Effect.gen(function* () {
        const first = yield* Process.step("first", Effect.sync(() => ++runs))
        yield* Process.emit("progress", { first })
        const second = yield* Process.step("second", Effect.sync(() => ++runs * 10))
        return [first, second]
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const handle = yield* Process.spawn(inner)
        return { result: yield* handle.await, events: Chunk.toArray(yield* Stream.runCollect(handle.events)) }
      }))
    const journal = journalOf([
      ["main", { _tag: "ProcessStarted", name: "main" }],
      ["main/inner", { _tag: "ProcessStarted", name: "inner", parent: "main" }],
      ["main/inner", { _tag: "StepCompleted", name: "first", ok: true, value: 7 }],
      ["main/inner", { _tag: "ProcessEmitted", type: "progress", data: { first: 7 } }]
    ])
    return Effect.gen(function* () {
      const { events, result } = yield* main()
      expect(result).toEqual([7, 10])
      expect(runs).toBe(1)
      // Seen again by whoever watches the process, though not logged again.
      expect(events).toContainEqual({ _tag: "event", type: "progress", data: { first: 7 } })
      const tags = yield* logged
      expect(tags.filter((t) => t === "ProcessStarted")).toHaveLength(0)
      expect(tags.filter((t) => t === "ProcessEmitted")).toHaveLength(0)
      expect(tags.filter((t) => t === "StepCompleted")).toHaveLength(1)
    }).pipe(Effect.provideService(Journal.Journal, journal), Effect.provide(scripted({})))
  })

  it.live("a step journaled as failed fails again as StepFailed with what it said", () => {
    const main = Process.make("main", () => Process.step("risky", Effect.succeed("never")))
    const journal = journalOf([
      ["main", { _tag: "ProcessStarted", name: "main" }],
      ["main", { _tag: "StepCompleted", name: "risky", ok: false, error: "disk on fire" }]
    ])
    return Effect.gen(function* () {
      const error = yield* Effect.flip(main())
      expect(error).toBeInstanceOf(Process.StepFailed)
      expect(error.message).toBe("step risky of process main failed: disk on fire")
    }).pipe(Effect.provideService(Journal.Journal, journal), Effect.provide(scripted({})))
  })

  it.live("a child that had ended returns its journaled value without running", () => {
    let ran = false
    const child = Process.make("child", () => Effect.sync(() => (ran = true)).pipe(Effect.as("fresh")))
    const main = Process.make("main", () => child())
    const journal = journalOf([
      ["main", { _tag: "ProcessStarted", name: "main" }],
      ["main/child", { _tag: "ProcessStarted", name: "child", parent: "main" }],
      ["main/child", { _tag: "ProcessEnded", outcome: "done", value: "journaled" }]
    ])
    return Effect.gen(function* () {
      expect(yield* main()).toBe("journaled")
      expect(ran).toBe(false)
    }).pipe(Effect.provideService(Journal.Journal, journal), Effect.provide(scripted({})))
  })

  it.live("a program that no longer does what its journal has fails with ResumeDiverged", () => {
    const main = Process.make("main", () => Process.emit("something-else"))
    const journal = journalOf([
      ["main", { _tag: "ProcessStarted", name: "main" }],
      ["main", { _tag: "ProcessEmitted", type: "submitted" }]
    ])
    return Effect.gen(function* () {
      const error = yield* Effect.flip(main())
      expect(error).toBeInstanceOf(ResumeDiverged)
      expect(error.message).toBe(
        "the resumed program diverged from its journal in process main: the journal has emit submitted; " +
          "the program did emit something-else instead"
      )
    }).pipe(Effect.provideService(Journal.Journal, journal), Effect.provide(scripted({})))
  })

  it.live("operations started together match their journal in any order", () => {
    const main = Process.make("main", () =>
      Effect.all([Process.emit("a"), Process.emit("b")], { concurrency: "unbounded" }))
    const journal = journalOf([
      ["main", { _tag: "ProcessStarted", name: "main" }],
      ["main", { _tag: "ProcessEmitted", type: "b" }],
      ["main", { _tag: "ProcessEmitted", type: "a" }]
    ])
    return Effect.gen(function* () {
      yield* main()
      expect((yield* logged).filter((t) => t === "ProcessEmitted")).toHaveLength(0)
    }).pipe(Effect.provideService(Journal.Journal, journal), Effect.provide(scripted({})))
  })

  it.live("a resumed process's timeout counts from its first start, not from the resume", () => {
    const main = Process.make("main", () => Effect.never, { timeout: "1 minute" })
    const anHourAgo = new Date(Date.now() - 3_600_000)
    const journal = journalOf([["main", { _tag: "ProcessStarted", name: "main" }]], anHourAgo)
    return Effect.gen(function* () {
      const error = yield* Effect.flip(main())
      expect(error).toMatchObject({ _tag: "ProcessTimeout", process: "main", timeout: "1m" })
    }).pipe(Effect.provideService(Journal.Journal, journal), Effect.provide(scripted({})))
  })
})
