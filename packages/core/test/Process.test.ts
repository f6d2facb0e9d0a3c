import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Exit, Fiber, Layer, Schema, Stream, TestClock } from "effect"
import * as Agent from "../src/Agent.js"
import * as Machine from "../src/Machine.js"
import { AgentCrashed, ProcessCancelled, ProcessFailed, ProcessTimeout } from "../src/Errors.js"
import * as Process from "../src/Process.js"
import { AgentSessions } from "../src/AgentSessions.js"
import { RunLog } from "../src/RunLog.js"
import * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import type { Script } from "@ramure/testing/ScriptedAgents"
import * as Ramure from "ramure/Ramure"
import { AgentLauncher } from "../src/AgentLauncher.js"
import { scripted, tempHome } from "./helpers.js"

const Done = Schema.Struct({ value: Schema.String })

/** A script that calls `tool` with `args` once it has the tool. */
const callOnce = (tool: string, args: unknown): Script => (driver) =>
  Effect.zipRight(driver.waitForTool(tool), driver.call(tool, args))

/** Released agents leave no session behind and say so in their events. */
const expectReleased = (agents: ReadonlyArray<Agent.Agent>) =>
  Effect.gen(function* () {
    const live = yield* (yield* AgentSessions).ids
    for (const agent of agents) {
      expect(live).not.toContain(agent.id)
      const events = yield* Stream.runCollect(agent.events)
      expect(Chunk.toArray(events).at(-1)).toEqual({ _tag: "AgentReleased" })
    }
    const status = yield* (yield* RunLog).status
    for (const agent of agents) expect(status.agents.find((a) => a.id === agent.id)?.state).toBe("done")
  })

describe("Process completion", () => {
  it.live("done completes the process with the value and releases its agents", () => {
    let created: Array<Agent.Agent> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const a = yield* Agent.make("a")
        created.push(a)
        yield* a.on("finish", { description: "", parameters: Done }, ({ value }) => Process.done(value))
        return yield* Process.wait()
      })
    )
    return Effect.gen(function* () {
      expect(yield* main()).toBe("42")
      yield* expectReleased(created)
    }).pipe(Effect.provide(scripted({ a: callOnce("finish", { value: "42" }) })))
  })

  it.live("fail fails the process with ProcessFailed", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const a = yield* Agent.make("a")
        yield* a.on("give_up", { description: "", parameters: Schema.Struct({ why: Schema.String }) }, ({ why }) =>
          Process.fail(why))
        return yield* Process.wait()
      })
    )
    return Effect.gen(function* () {
      const error = yield* Effect.flip(main())
      expect(error).toBeInstanceOf(ProcessFailed)
      expect(error).toMatchObject({ process: "main", reason: "too hard" })
    }).pipe(Effect.provide(scripted({ a: callOnce("give_up", { why: "too hard" }) })))
  })

  it.live("a body that returns completes the process without done", () =>
    Process.make("main", () => Effect.succeed(7))().pipe(
      Effect.map((value) => expect(value).toBe(7)),
      Effect.provide(scripted({}))
    ))

  it.live("a timeout fails with ProcessTimeout and every agent is released", () => {
    const created: Array<Agent.Agent> = []
    const main = Process.make(
      "slow",
      () =>
        Effect.gen(function* () {
          created.push(...(yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })))
          return yield* Process.wait()
        }),
      { timeout: "300 millis" }
    )
    return Effect.gen(function* () {
      const error = yield* Effect.flip(main())
      expect(error).toBeInstanceOf(ProcessTimeout)
      expect(created).toHaveLength(2)
      yield* expectReleased(created)
      const status = yield* (yield* RunLog).status
      expect(status.processes[0]).toMatchObject({ path: "slow", state: "timeout" })
    }).pipe(Effect.provide(scripted({})))
  })

  it.effect("the timeout fires on the clock, not on wall time (TestClock)", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Process.make("hour", () => Effect.never, { timeout: "1 hour" })())
      yield* TestClock.adjust("59 minutes")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 minute")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toMatchObject({ _tag: "ProcessTimeout", process: "hour", timeout: "1h" })
    }).pipe(Effect.provide(scripted({}))))

  it.live("interrupting a process releases every agent", () => {
    const created: Array<Agent.Agent> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        created.push(yield* Agent.make("a"), yield* Agent.make("b"))
        return yield* Effect.never
      })
    )
    return Effect.gen(function* () {
      const fiber = yield* Effect.fork(main())
      while (created.length < 2) yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(fiber)
      yield* expectReleased(created)
      const status = yield* (yield* RunLog).status
      expect(status.processes[0]!.state).toBe("cancelled")
    }).pipe(Effect.provide(scripted({})))
  })

  it.live("a crashing agent fails its process with AgentCrashed", () =>
    Process.make("main", () => Effect.zipRight(Agent.make("flaky"), Process.wait()))().pipe(
      Effect.flip,
      Effect.map((error) => {
        expect(error).toBeInstanceOf(AgentCrashed)
        expect((error as AgentCrashed).output).toContain("lost my mind")
      }),
      Effect.provide(scripted({ flaky: () => Effect.fail("lost my mind") }))
    ))
})

describe("Nested processes", () => {
  it.live("a child called inline shares the runtime and gets a nested path", () => {
    const child = Process.make("child", (n: number) =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("helper")
        return { n: n * 2, agent: agent.id, path: yield* Process.path }
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const first = yield* child(21)
        const second = yield* child(1)
        return [first, second]
      }))
    return Effect.gen(function* () {
      const [first, second] = yield* main()
      expect(first).toEqual({ n: 42, agent: "helper", path: "main/child" })
      // Agent ids are never reused within a run (the log and the journal tell agents apart by id).
      expect(second).toEqual({ n: 2, agent: "helper-2", path: "main/child-2" })
      const status = yield* (yield* RunLog).status
      expect(status.processes.map((p) => p.path)).toEqual(["main", "main/child", "main/child-2"])
      expect(status.processes.every((p) => p.state === "done")).toBe(true)
    }).pipe(Effect.provide(scripted({})))
  })

  it.live("fan-out: many agents work concurrently with Effect.all", () => {
    const worker = Process.make("worker", (i: number) =>
      Effect.gen(function* () {
        const agent = yield* Agent.make(`w${i}`)
        yield* agent.on("report", { description: "", parameters: Schema.Struct({ square: Schema.Number }) }, ({ square }) =>
          Process.done(square))
        yield* agent.send(String(i))
        return yield* Process.wait()
      }))
    const main = Process.make("main", () =>
      Effect.all(Array.from({ length: 8 }, (_, i) => worker(i)), { concurrency: "unbounded" }))
    const squarer: Script = (driver) =>
      Effect.gen(function* () {
        const n = Number(yield* driver.nextMessage)
        yield* driver.waitForTool("report")
        yield* driver.call("report", { square: n * n })
      })
    return main().pipe(
      Effect.map((squares) => expect(squares).toEqual([0, 1, 4, 9, 16, 25, 36, 49])),
      Effect.provide(scripted(() => squarer))
    )
  })
})

describe("spawn", () => {
  const attempt = Process.make("attempt", (n: number) =>
    Effect.gen(function* () {
      yield* Process.emit("trying", { n })
      const agent = yield* Agent.make("solver")
      yield* agent.on("result", { description: "", parameters: Schema.Struct({ ok: Schema.Boolean }) }, ({ ok }) =>
        ok ? Process.done(`solved on attempt ${n}`) : Process.fail(`attempt ${n} failed`))
      yield* agent.send(String(n))
      return yield* Process.wait()
    }))
  const solver: Script = (driver) =>
    Effect.gen(function* () {
      const n = Number(yield* driver.nextMessage)
      yield* driver.waitForTool("result")
      yield* driver.call("result", { ok: n >= 2 })
    })

  it.live("events stream started, custom events, done; a failed child can be retried", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const tags: Array<Array<string>> = []
        for (let n = 1; ; n++) {
          const handle = yield* Process.spawn(attempt, n)
          const events = Chunk.toArray(yield* Stream.runCollect(handle.events))
          tags.push(events.map((e) => (e._tag === "event" ? `event:${e.type}` : e._tag)))
          const exit = yield* Effect.exit(handle.await)
          if (Exit.isSuccess(exit)) return { result: exit.value, tags }
          expect(Exit.isFailure(exit) && exit.cause.toString()).toContain("attempt 1 failed")
        }
      }))
    return main().pipe(
      Effect.map(({ result, tags }) => {
        expect(result).toBe("solved on attempt 2")
        expect(tags).toEqual([
          ["started", "event:trying", "agent", "failed"],
          ["started", "event:trying", "agent", "done"]
        ])
      }),
      Effect.provide(scripted(() => solver))
    )
  })

  it.live("a spawned child is interrupted when its parent ends, and cancel ends it", () => {
    const forever = Process.make("forever", () => Effect.zipRight(Agent.make("idle"), Effect.never))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const kept = yield* Process.spawn(forever)
        const cancelled = yield* Process.spawn(forever)
        while ((yield* cancelled.agents).size === 0) yield* Effect.sleep("10 millis")
        yield* cancelled.cancel
        const error = yield* Effect.flip(cancelled.await)
        expect(error).toBeInstanceOf(ProcessCancelled)
        while ((yield* kept.agents).size === 0) yield* Effect.sleep("10 millis")
        return kept
      }))
    return Effect.gen(function* () {
      const kept = yield* main()
      const last = Chunk.toArray(yield* Stream.runCollect(kept.events)).at(-1)
      expect(last?._tag).toBe("cancelled")
      expect(yield* (yield* AgentSessions).ids).toHaveLength(0)
    }).pipe(Effect.provide(scripted({})))
  })
})

describe("expose, call and attach", () => {
  const pool = Process.make("pool", () =>
    Effect.gen(function* () {
      const Args = Schema.Struct({ a: Schema.Number, b: Schema.Number })
      yield* Process.expose("add", { description: "Add", parameters: Args }, ({ a, b }) => Effect.succeed(a + b))
      yield* Process.expose("mul", { description: "Multiply", parameters: Args }, ({ a, b }) => Effect.succeed(a * b))
      yield* Process.expose("finish", { description: "Finish the pool", parameters: Schema.Struct({}) }, () =>
        Effect.zipRight(Process.emit("finishing"), Process.done("pool finished")))
      return yield* Process.wait()
    }))

  it.live("call runs endpoints in the child; done inside an endpoint completes the child", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const child = yield* Process.spawn(pool)
        while ((yield* child.endpoints).length < 3) yield* Effect.sleep("5 millis")
        const sum = yield* child.call("add", { a: 2, b: 3 })
        const invalid = yield* Effect.flip(child.call("add", { a: "x" }))
        const missing = yield* Effect.flip(child.call("div", { a: 1, b: 2 }, { timeout: "50 millis" }))
        yield* child.call("finish")
        return { sum, invalid: invalid.message, missing: missing.message, result: yield* child.await }
      }))
    return main().pipe(
      Effect.map(({ invalid, missing, result, sum }) => {
        expect(sum).toBe(5)
        expect(invalid).toContain("invalid arguments")
        expect(missing).toContain('no endpoint "div"')
        expect(result).toBe("pool finished")
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("attach gives an agent the child's endpoints as tools (also those exposed later), filtered by only, renamed by prefix", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const dispatcher = yield* Agent.make("dispatcher")
        const child = yield* Process.spawn(pool)
        // Attached before the child has exposed anything: its endpoints arrive as they are exposed.
        yield* child.attach(dispatcher, { only: ["add", "finish"], prefix: "pool_" })
        yield* dispatcher.on("report", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
          Process.done(text))
        return yield* Process.wait()
      }), { success: Schema.String })
    return main().pipe(
      Effect.map((report) => expect(JSON.parse(report)).toEqual({ tools: ["pool_add", "pool_finish", "report"], sum: "7" })),
      Effect.provide(
        scripted({
          dispatcher: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("report")
              yield* driver.waitForTool("pool_finish")
              const sum = yield* driver.call("pool_add", { a: 3, b: 4 })
              const tools = [...driver.tools().keys()].sort()
              yield* driver.call("pool_finish", {})
              yield* driver.call("report", { text: JSON.stringify({ tools, sum: sum.text }) })
            })
        })
      )
    )
  })
})

describe("connect", () => {
  const pair = (direction: Agent.Direction) =>
    Process.make("main", () =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })
        yield* Agent.connect(a, b, { direction })
        for (const agent of [a, b]) {
          yield* agent.on("report", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
            Process.done(`${agent.id}: ${text}`))
        }
        return yield* Process.wait()
      }))
  const tools: Record<string, Array<string>> = {}
  const recordTools = (name: string, then?: Script): Script => (driver) =>
    Effect.gen(function* () {
      yield* driver.waitForTool("report")
      tools[name] = [...driver.tools().keys()].sort()
      if (then) yield* then(driver)
    })

  it.live("both directions: each side can message the other, the receiver sees the sender", () =>
    pair("both")().pipe(
      Effect.map((result) => {
        expect(result).toBe("b: got [From: a] hello b")
        expect(tools.a).toEqual(["download_file", "message", "report", "send_file"])
        expect(tools.b).toEqual(["download_file", "message", "report", "send_file"])
      }),
      Effect.provide(
        scripted({
          a: recordTools("a", (driver) => Effect.asVoid(driver.call("message", { to: "b", text: "hello b" }))),
          b: recordTools("b", (driver) =>
            Effect.flatMap(driver.nextMessage, (text) => driver.call("report", { text: `got ${text}` })))
        })
      )
    ))

  it.live("one way: the receiver has no tool to answer or to reach the sender's files, and messaging a non-peer is an error result", () =>
    pair("a->b")().pipe(
      Effect.map((result) => {
        expect(result).toBe("a: not connected")
        expect(tools.a).toEqual(["download_file", "message", "report", "send_file"])
        expect(tools.b).toEqual(["report"])
      }),
      Effect.provide(
        scripted({
          a: recordTools("a", (driver) =>
            Effect.gen(function* () {
              const wrong = yield* driver.call("message", { to: "a", text: "me?" })
              expect(wrong).toMatchObject({ isError: true })
              expect(wrong.text).toContain('not connected to "a"')
              yield* driver.call("report", { text: "not connected" })
            })),
          b: recordTools("b")
        })
      )
    ))

  it.live("send_file copies a file between the agents' machines", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")])
        yield* a.exec("mkdir -p src && echo 'export const x = 1' > src/x.ts")
        yield* Agent.connect(a, b, { direction: "a->b" })
        yield* b.on("report", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
          Effect.flatMap(b.exec("cat review/x.ts"), (copied) => Process.done({ message: text, copied: copied.stdout })))
        return yield* Process.wait()
      }), { success: Schema.Struct({ message: Schema.String, copied: Schema.String }) })
    return main().pipe(
      Effect.map(({ copied, message }) => {
        expect(message).toBe("[From: a] sent you a file: review/x.ts")
        expect(copied).toBe("export const x = 1\n")
      }),
      Effect.provide(
        scripted({
          a: (driver) =>
            Effect.zipRight(driver.waitForTool("send_file"), driver.call("send_file", { to: "b", path: "src/x.ts", dest: "review/x.ts" })),
          b: (driver) =>
            Effect.gen(function* () {
              const text = yield* driver.nextMessage
              yield* driver.waitForTool("report")
              yield* driver.call("report", { text })
            })
        })
      )
    )
  })
})

describe("tools added after start", () => {
  it.live("a tool registered while the agent runs becomes callable", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("a")
        const ready = yield* Deferred.make<void>()
        yield* agent.on("ready", { description: "", parameters: Schema.Struct({}) }, () => Deferred.succeed(ready, undefined))
        yield* Deferred.await(ready)
        yield* agent.on("late", { description: "added later", parameters: Schema.Struct({ x: Schema.Number }) }, ({ x }) =>
          Process.done(x))
        return yield* Process.wait()
      }))
    return main().pipe(
      Effect.map((x) => expect(x).toBe(9)),
      Effect.provide(
        scripted({
          a: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("ready")
              expect(driver.tools().has("late")).toBe(false)
              yield* driver.call("ready", {})
              yield* driver.waitForTool("late")
              yield* driver.call("late", { x: 9 })
            })
        })
      )
    )
  })
})

describe("Concurrency limits", () => {
  it.live("maxLiveAgents caps how many agents are live at once; the rest wait their turn", () => {
    const worker = Process.make("worker", (i: number) =>
      Effect.gen(function* () {
        const agent = yield* Agent.make(`w${i}`)
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({}) }, () => Process.done(i))
        return yield* Process.wait()
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const sessions = yield* AgentSessions
        let peak = 0
        const sampler = yield* Effect.fork(
          Effect.forever(Effect.zipRight(
            Effect.map(sessions.ids, (ids) => void (peak = Math.max(peak, ids.length))),
            Effect.sleep("2 millis")
          ))
        )
        const results = yield* Effect.all(Array.from({ length: 6 }, (_, i) => worker(i)), { concurrency: "unbounded" })
        yield* Fiber.interrupt(sampler)
        return { results, peak }
      }))
    return main().pipe(
      Effect.map(({ peak, results }) => {
        expect(results).toEqual([0, 1, 2, 3, 4, 5])
        expect(peak).toBe(2)
      }),
      Effect.provide(
        scripted(() => (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("finish")
            yield* Effect.sleep("30 millis")
            yield* driver.call("finish", {})
          }), { maxLiveAgents: 2 })
      )
    )
  })
})

/**
 * Scripted agents whose launcher counts the launches in flight: each waits
 * until `together` of them are in flight at once, so a run that lets fewer
 * start at once never gets there (and the test times out).
 */
const countedLaunches = (options: { readonly lightStart: boolean; readonly together: number; readonly maxStartingAgents: number }) =>
  Effect.gen(function* () {
    const all = yield* Deferred.make<void>()
    let inFlight = 0
    let peak = 0
    const launcher = Layer.effect(
      AgentLauncher,
      Effect.map(AgentLauncher, (scripted) => ({
        lightStart: options.lightStart,
        launch: (spec: Parameters<typeof scripted.launch>[0]) =>
          Effect.acquireUseRelease(
            Effect.sync(() => {
              peak = Math.max(peak, ++inFlight)
              if (inFlight >= options.together) Deferred.unsafeDone(all, Exit.void)
            }),
            () => Effect.zipRight(Deferred.await(all), scripted.launch(spec)),
            () => Effect.sync(() => void inFlight--)
          )
      }))
    ).pipe(Layer.provide(ScriptedAgents.layer(() => (driver) => driver.waitForTool("never"))))
    const layer = Ramure.make({ home: tempHome(), program: "test", maxStartingAgents: options.maxStartingAgents, launcher })
    return { layer, peak: () => peak }
  })

describe("Start limits", () => {
  const startSix = Process.make("main", () =>
    Effect.forEach(Array.from({ length: 6 }, (_, i) => `w${i}`), (name) => Agent.make(name), { concurrency: "unbounded" }))

  it.live("maxStartingAgents paces the starts of a launcher whose agents start heavy (pi): never more at once", () =>
    Effect.gen(function* () {
      const { layer, peak } = yield* countedLaunches({ lightStart: false, together: 2, maxStartingAgents: 2 })
      const agents = yield* startSix().pipe(Effect.provide(layer))
      expect(agents).toHaveLength(6)
      expect(peak()).toBe(2)
    }))

  it.live("agents of a launcher whose starts are light (scripted drivers) start all at once, whatever maxStartingAgents", () =>
    Effect.gen(function* () {
      const { layer, peak } = yield* countedLaunches({ lightStart: true, together: 6, maxStartingAgents: 2 })
      const agents = yield* startSix().pipe(Effect.provide(layer))
      expect(agents).toHaveLength(6)
      expect(peak()).toBe(6)
    }))
})

describe("Machines", () => {
  it.live("a standalone machine is shared by the agents given it", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const shared = yield* Machine.make({ name: "shared" })
        const a = yield* Agent.make("a", { machine: shared })
        const b = yield* Agent.make("b", { machine: shared })
        yield* a.exec("echo from-a > note.txt")
        const read = yield* b.exec("cat note.txt; pwd")
        return { read: read.stdout, cwd: shared.cwd, same: a.machine === b.machine }
      }))
    return main().pipe(
      Effect.map(({ cwd, read, same }) => {
        expect(same).toBe(true)
        expect(read).toBe(`from-a\n${cwd}\n`)
      }),
      Effect.provide(scripted({}))
    )
  })
})
