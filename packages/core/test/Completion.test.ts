import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import * as Agent from "../src/Agent.js"
import { AgentSessions } from "../src/AgentSessions.js"
import { InvalidCompletion, ProcessFailed } from "../src/Errors.js"
import * as Process from "../src/Process.js"
import { scripted } from "./helpers.js"

class Rejected extends Schema.TaggedError<Rejected>()("Rejected", { why: Schema.String }) {}
class Other extends Schema.TaggedError<Other>()("Other", { why: Schema.String }) {}

/** A process completed (from inside, as a tool handler would) with `complete`, typed by its declared Schemas. */
const completedWith = (complete: Effect.Effect<void, never, Process.CurrentProcess>) =>
  Process.make("main", () => Effect.zipRight(Effect.fork(complete), Process.wait()), {
    success: Schema.Number,
    failure: Rejected
  })

describe("Typed completion", () => {
  it.live("a process that declares success has that type, and done with another value fails with InvalidCompletion", () =>
    Effect.gen(function* () {
      const number: number = yield* completedWith(Process.done(42))()
      expect(number).toBe(42)
      const error = yield* Effect.flip(completedWith(Process.done("x"))())
      expect(error).toBeInstanceOf(InvalidCompletion)
      expect(error.message).toContain("process main completed with a value its Schema does not accept")
      expect(error.message).toContain(`Expected number, actual "x"`)
      // A body's own value is checked as well.
      const returned = Process.make("main", () => Effect.succeed("not a number" as unknown), { success: Schema.Number })
      expect(yield* Effect.flip(returned())).toBeInstanceOf(InvalidCompletion)
    }).pipe(Effect.provide(scripted({}))))

  it.live("wait takes no type argument: its value is unknown until a Schema says what it is", () =>
    Effect.gen(function* () {
      const untyped = Process.make("main", () =>
        Effect.gen(function* () {
          yield* Effect.fork(Process.done("x"))
          // @ts-expect-error: wait() is not a cast
          const value: number = yield* Process.wait()
          return value
        }))
      expect(yield* untyped()).toBe("x")
    }).pipe(Effect.provide(scripted({}))))

  it.live("fail keeps an error of the declared failure type; a text or any other error is a ProcessFailed", () =>
    Effect.gen(function* () {
      const declared = yield* Effect.flip(completedWith(Process.fail(new Rejected({ why: "too slow" })))())
      expect(declared).toEqual(new Rejected({ why: "too slow" }))
      if (declared._tag === "Rejected") expect(declared.why).toBe("too slow")

      const text = yield* Effect.flip(completedWith(Process.fail("gave up"))())
      expect(text).toBeInstanceOf(ProcessFailed)
      expect(text.message).toBe("process main failed: gave up")

      const other = yield* Effect.flip(completedWith(Process.fail(new Other({ why: "no" })))())
      expect(other).toBeInstanceOf(ProcessFailed)
      const failed = other as ProcessFailed
      expect(failed.reason).toBe(`Other: { "why": "no" }`)
      expect(failed.error).toBeInstanceOf(Other)
    }).pipe(Effect.provide(scripted({}))))

  it.live("a spawned child's declared error reaches its parent's await, typed", () => {
    const child = Process.make("child", () => Effect.zipRight(Process.fail(new Rejected({ why: "nope" })), Process.wait()), {
      failure: Rejected
    })
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const handle = yield* Process.spawn(child)
        return yield* handle.await.pipe(Effect.catchTag("Rejected", (error) => Effect.succeed(`caught: ${error.why}`)))
      }))
    return main().pipe(Effect.map((result) => expect(result).toBe("caught: nope")), Effect.provide(scripted({})))
  })
})

describe("A process's Scope", () => {
  it.live("what the body acquires lives until the process ends, and is released after its agents", () => {
    const log: Array<string> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const sessions = yield* AgentSessions
        yield* Effect.acquireRelease(Effect.sync(() => log.push("acquired")), () =>
          Effect.flatMap(sessions.ids, (live) => Effect.sync(() => log.push(`released with agents: [${live.join(", ")}]`))))
        yield* Agent.make("worker")
        log.push("body done")
        return "ok"
      }))
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe("ok")
        expect(log).toEqual(["acquired", "body done", "released with agents: []"])
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("a failing process releases what its body acquired too", () => {
    const log: Array<string> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        yield* Effect.acquireRelease(Effect.void, (_, exit) => Effect.sync(() => log.push(Exit.isFailure(exit) ? "released on failure" : "released")))
        yield* Process.fail("broken")
        return yield* Process.wait()
      }))
    return Effect.flip(main()).pipe(
      Effect.map((error) => {
        expect(error).toBeInstanceOf(ProcessFailed)
        expect(log).toEqual(["released on failure"])
      }),
      Effect.provide(scripted({}))
    )
  })
})
