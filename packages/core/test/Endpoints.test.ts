import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schema, Stream } from "effect"
import * as Agent from "../src/Agent.js"
import { EndpointNotFound, InvalidToolName, ProcessEnded } from "../src/Errors.js"
import * as Process from "../src/Process.js"
import { RunLog } from "../src/RunLog.js"
import type { RunEvent } from "../src/RunEvent.js"
import { scripted } from "./helpers.js"

const Empty = Schema.Struct({})
const Text = Schema.Struct({ text: Schema.String })

/** A child that exposes `ping` once `gate` opens, then runs until cancelled (or `stop` is called). */
const pinger = Process.make("pinger", (gate: Deferred.Deferred<void>) =>
  Effect.gen(function* () {
    yield* Deferred.await(gate)
    yield* Process.expose("ping", { description: "Answer pong", parameters: Empty }, () => Effect.succeed("pong"))
    yield* Process.expose("stop", { description: "End the child", parameters: Empty }, () => Process.done("stopped"))
    return yield* Process.wait()
  }))

/** What the run logged about `agent`. */
const eventsOf = (agent: string) =>
  Effect.flatMap(RunLog, (runLog) => Effect.map(runLog.history({ agent }), (entries) => entries.map((e) => e.event)))

describe("Calling a child's endpoints", () => {
  it.live("a call made before the child exposes the endpoint waits for it", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const child = yield* Process.spawn(pinger, gate)
        const call = yield* Effect.fork(child.call("ping"))
        // The call is under way before the child has exposed anything.
        expect(yield* child.endpoints).toEqual([])
        yield* Deferred.succeed(gate, undefined)
        return yield* Fiber.join(call)
      }))
    return main().pipe(Effect.map((answer) => expect(answer).toBe("pong")), Effect.provide(scripted({})))
  })

  it.live("waiting ends with EndpointNotFound after the timeout, and with ProcessEnded when the child ends first", () => {
    const quitter = Process.make("quitter", (gate: Deferred.Deferred<void>) => Deferred.await(gate))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const child = yield* Process.spawn(pinger, gate)
        const late = yield* Effect.flip(child.call("ping", {}, { timeout: "30 millis" }))
        const quitterGate = yield* Deferred.make<void>()
        const short = yield* Process.spawn(quitter, quitterGate)
        const waiting = yield* Effect.fork(Effect.flip(short.call("ping")))
        yield* Deferred.succeed(quitterGate, undefined)
        return { late, ended: yield* Fiber.join(waiting) }
      }))
    return main().pipe(
      Effect.map(({ ended, late }) => {
        expect(late).toBeInstanceOf(EndpointNotFound)
        expect(late.message).toBe(`process main/pinger has no endpoint "ping": it was not exposed within 30ms (endpoints: none)`)
        expect(ended).toBeInstanceOf(ProcessEnded)
        expect(ended.message).toBe("process main/quitter has ended: its endpoints can no longer be called")
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("calls and attach on a finished child fail with ProcessEnded and run no handler", () => {
    let handled = 0
    const once = Process.make("once", () =>
      Effect.gen(function* () {
        yield* Process.expose("count", { description: "", parameters: Empty }, () => Effect.sync(() => ++handled))
        yield* Process.expose("stop", { description: "", parameters: Empty }, () => Process.done("stopped"))
        return yield* Process.wait()
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("worker")
        const child = yield* Process.spawn(once)
        expect(yield* child.call("count")).toBe(1)
        yield* child.call("stop")
        expect(yield* child.await).toBe("stopped")
        return {
          call: yield* Effect.flip(child.call("count")),
          attach: yield* Effect.flip(child.attach(agent))
        }
      }))
    return main().pipe(
      Effect.map(({ attach, call }) => {
        expect(call).toBeInstanceOf(ProcessEnded)
        expect(attach).toBeInstanceOf(ProcessEnded)
        expect(handled).toBe(1)
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("a handle's call is attributed to the calling process, an attached tool's to the agent", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        yield* Deferred.succeed(gate, undefined)
        const child = yield* Process.spawn(pinger, gate)
        yield* child.call("ping")
        const agent = yield* Agent.make("worker")
        yield* child.attach(agent, { only: ["ping"] })
        yield* agent.on("finish", { description: "", parameters: Text }, ({ text }) => Process.done(text))
        return yield* Process.wait()
      }))
    return Effect.gen(function* () {
      expect(yield* main()).toBe("pong")
      const entries = yield* (yield* RunLog).history()
      const callers = (tag: "EndpointCalled" | "EndpointReturned") =>
        entries.flatMap((e) => (e.event._tag === tag ? [`${e.process}.${e.event.name} by ${e.event.caller}`] : []))
      expect(callers("EndpointCalled")).toEqual(["main/pinger.ping by main", "main/pinger.ping by agent:worker"])
      expect(callers("EndpointReturned")).toEqual(callers("EndpointCalled"))
    }).pipe(Effect.provide(scripted({
      worker: (driver) =>
        Effect.gen(function* () {
          yield* driver.waitForTool("finish")
          yield* driver.waitForTool("ping")
          const answer = yield* driver.call("ping", {})
          yield* driver.call("finish", { text: answer.text })
        })
    })))
  })
})

describe("Attaching a child's endpoints", () => {
  it.live("the tools a child gave an agent are taken away when the child ends; calling one then is an error, not its handler", () => {
    let handled = 0
    const short = Process.make("short", (gate: Deferred.Deferred<void>) =>
      Effect.gen(function* () {
        yield* Process.expose("work", { description: "Do work", parameters: Empty }, () => Effect.sync(() => ++handled))
        yield* Deferred.await(gate)
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("worker")
        const gate = yield* Deferred.make<void>()
        const child = yield* Process.spawn(short, gate)
        yield* child.attach(agent, { only: ["work"] })
        yield* agent.on("finish", { description: "", parameters: Text }, ({ text }) => Process.done(text))
        yield* agent.on("end_child", { description: "", parameters: Empty }, () =>
          Effect.zipRight(Deferred.succeed(gate, undefined), Effect.asVoid(child.await)))
        return yield* Process.wait()
      }))
    return Effect.gen(function* () {
      const result = yield* main()
      expect(JSON.parse(result as string)).toEqual({ first: "1", tools: ["end_child", "finish"], later: true })
      expect(handled).toBe(1)
      const events = yield* eventsOf("worker")
      expect(events.filter((e): e is Extract<RunEvent, { _tag: "ToolRemoved" }> => e._tag === "ToolRemoved").map((e) => e.name))
        .toEqual(["work"])
    }).pipe(Effect.provide(scripted({
      worker: (driver) =>
        Effect.gen(function* () {
          yield* driver.waitForTool("end_child")
          const first = yield* driver.call("work", {})
          yield* driver.call("end_child", {})
          while (driver.tools().has("work")) yield* Effect.sleep("5 millis")
          const later = yield* driver.call("work", {})
          yield* driver.call("finish", {
            text: JSON.stringify({ first: first.text, tools: [...driver.tools().keys()].sort(), later: later.isError })
          })
        })
    })))
  })

  it.live("exposing an endpoint again changes what its attached tool calls, and what the model is told", () => {
    const versions = Process.make("versions", () =>
      Effect.gen(function* () {
        yield* Process.expose("version", { description: "Version one", parameters: Empty }, () => Effect.succeed("one"))
        yield* Process.expose("upgrade", { description: "", parameters: Empty }, () =>
          Effect.as(Process.expose("version", { description: "Version two", parameters: Text }, ({ text }) => Effect.succeed(`two ${text}`)), "upgraded"))
        return yield* Effect.never
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("worker")
        const child = yield* Process.spawn(versions)
        yield* child.attach(agent, { only: ["version", "upgrade"] })
        yield* agent.on("finish", { description: "", parameters: Text }, ({ text }) => Process.done(text))
        return yield* Process.wait()
      }))
    return main().pipe(
      Effect.map((result) => expect(JSON.parse(result as string)).toEqual(["one", "Version two", "two x"])),
      Effect.provide(scripted({
        worker: (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("finish")
            const before = yield* driver.call("version", { text: "x" })
            yield* driver.call("upgrade", {})
            while (driver.tools().get("version")?.description !== "Version two") yield* Effect.sleep("5 millis")
            const after = yield* driver.call("version", { text: "x" })
            yield* driver.call("finish", { text: JSON.stringify([before.text, driver.tools().get("version")!.description, after.text]) })
          })
      }))
    )
  })

  it.live("a prefix that makes invalid tool names is an InvalidToolName, and nothing is attached", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("worker")
        const gate = yield* Deferred.make<void>()
        yield* Deferred.succeed(gate, undefined)
        const child = yield* Process.spawn(pinger, gate)
        yield* child.call("ping")
        const errors = [
          yield* Effect.flip(child.attach(agent, { prefix: "pool." })),
          yield* Effect.flip(child.attach(agent, { prefix: "x".repeat(61) }))
        ]
        const events = yield* eventsOf(agent.id)
        return { errors, added: events.filter((e) => e._tag === "ToolAdded").length }
      }))
    return main().pipe(
      Effect.map(({ added, errors }) => {
        expect(errors[0]).toBeInstanceOf(InvalidToolName)
        expect(errors[0]!.message).toContain(`the prefix "pool." makes invalid tool names`)
        expect(errors[1]).toBeInstanceOf(InvalidToolName)
        expect(errors[1]!.message).toContain(`"${"x".repeat(61)}ping"`)
        expect(added).toBe(0)
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("attach with only fails with EndpointNotFound when the child ends without exposing them", () => {
    const partial = Process.make("partial", (gate: Deferred.Deferred<void>) =>
      Effect.gen(function* () {
        yield* Process.expose("add", { description: "", parameters: Empty }, () => Effect.succeed(1))
        yield* Deferred.await(gate)
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("worker")
        const gate = yield* Deferred.make<void>()
        const child = yield* Process.spawn(partial, gate)
        const attaching = yield* Effect.fork(Effect.flip(child.attach(agent, { only: ["add", "mul"] })))
        yield* Deferred.succeed(gate, undefined)
        return yield* Fiber.join(attaching)
      }))
    return main().pipe(
      Effect.map((error) => {
        expect(error).toBeInstanceOf(EndpointNotFound)
        expect(error.message).toBe(`process main/partial has no endpoint "mul": the process ended without exposing it (endpoints: add)`)
      }),
      Effect.provide(scripted({}))
    )
  })
})

describe("Messages between agents", () => {
  it.live("a message to a peer that has been released is an error result for the sender", () => {
    const helper = Process.make("helper", (peer: Agent.Agent) =>
      Effect.gen(function* () {
        const b = yield* Agent.make("b")
        yield* Agent.connect(peer, b, { direction: "a->b" })
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const a = yield* Agent.make("a")
        yield* helper(a)
        yield* a.on("finish", { description: "", parameters: Text }, ({ text }) => Process.done(text))
        return yield* Process.wait()
      }))
    return main().pipe(
      Effect.map((result) => expect(result).toBe(JSON.stringify({ isError: true, text: "agent b is no longer live (released)" }))),
      Effect.provide(scripted({
        a: (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("finish")
            const answer = yield* driver.call("message", { to: "b", text: "are you there?" })
            yield* driver.call("finish", { text: JSON.stringify(answer) })
          })
      }))
    )
  })
})

/** A child that emits `first`, then `second` once `gate` opens. */
const talker = (first: string, second: string) =>
  Process.make("talker", (gate: Deferred.Deferred<void>) =>
    Effect.gen(function* () {
      yield* Process.emit(first)
      yield* Deferred.await(gate)
      yield* Process.emit(second)
    }))

/** Run `process` as a spawned child and collect all its events once it has ended. */
const allEventsOf = <E>(process: Process.Process<[], void, E, never>) =>
  Process.make("root", () =>
    Effect.gen(function* () {
      const handle = yield* Process.spawn(process)
      yield* Effect.ignore(handle.await)
      return [...(yield* Stream.runCollect(handle.events))]
    }))()

/** Wait until `handle` has emitted its first custom event. */
const firstEvent = (handle: Process.ProcessHandle<unknown, unknown>) =>
  handle.events.pipe(Stream.filter((e) => e._tag === "event"), Stream.take(1), Stream.runDrain)

describe("Process events", () => {
  it.live("bubble forwards a child's events with its source: the innermost wins, null stays null, each child keeps its own, earlier events too", () => {
    const leaf = Process.make("leaf", (gate: Deferred.Deferred<void>) =>
      Effect.gen(function* () {
        yield* Process.emit("leaf-early", null)
        yield* Deferred.await(gate)
        yield* Process.emit("leaf-late", { n: 1 })
      }))
    const middle = Process.make("middle", (gate: Deferred.Deferred<void>) =>
      Effect.gen(function* () {
        const child = yield* Process.spawn(leaf, gate)
        yield* Process.bubble(child, { source: "leaf" })
        yield* Process.emit("middle", "m")
        yield* child.await
      }))
    const other = Process.make("other", () => Process.emit("other", 2))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const a = yield* Process.spawn(middle, gate)
        const b = yield* Process.spawn(other)
        yield* b.await
        yield* a.events.pipe(Stream.filter((e) => e._tag === "event" && e.type === "middle"), Stream.take(1), Stream.runDrain)
        // Bubbled late: what `a` and `b` did already is forwarded too.
        yield* Process.bubble(a, { source: "middle" })
        yield* Process.bubble(b)
        yield* Deferred.succeed(gate, undefined)
        yield* a.await
      }))
    return Effect.gen(function* () {
      const events = yield* allEventsOf(main)
      const forwarded = events.filter((e) => e.source !== undefined)
        .map((e) => `${e.source} ${e._tag === "event" ? `${e.type}=${JSON.stringify(e.data)}` : e._tag}`)
      expect(forwarded.sort()).toEqual([
        "leaf done",
        `leaf leaf-early=null`,
        `leaf leaf-late={"n":1}`,
        "leaf started",
        "middle done",
        `middle middle="m"`,
        "middle started",
        "other done",
        "other other=2",
        "other started"
      ])
      expect(events.find((e) => e._tag === "event" && e.type === "leaf-early")).toEqual({
        _tag: "event",
        type: "leaf-early",
        data: null,
        source: "leaf"
      })
      expect(events.filter((e) => e.source === undefined).map((e) => e._tag)).toEqual(["started", "done"])
    }).pipe(Effect.provide(scripted({})))
  })

  it.live("bubble's unsubscribe stops the forwarding, and running it twice is harmless", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const child = yield* Process.spawn(talker("before", "after"), gate)
        const stop = yield* Process.bubble(child, { source: "t" })
        yield* firstEvent(child)
        yield* stop
        yield* stop
        yield* Deferred.succeed(gate, undefined)
        yield* child.await
      }))
    return Effect.gen(function* () {
      const events = yield* allEventsOf(main)
      const forwarded = events.filter((e) => e.source === "t").map((e) => (e._tag === "event" ? e.type : e._tag))
      expect(forwarded).toEqual(["started", "before"])
    }).pipe(Effect.provide(scripted({})))
  })

  it.live("subscribe sees only the events after it, where events replays them all", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const child = yield* Process.spawn(talker("old", "new"), gate)
        yield* firstEvent(child)
        const live = yield* child.subscribe
        yield* Deferred.succeed(gate, undefined)
        const names = (events: Iterable<Process.ProcessEvent>) => [...events].map((e) => (e._tag === "event" ? e.type : e._tag))
        return { live: names(yield* Stream.runCollect(live)), all: names(yield* Stream.runCollect(child.events)) }
      }))
    return main().pipe(
      Effect.map(({ all, live }) => {
        expect(live).toEqual(["new", "done"])
        expect(all).toEqual(["started", "old", "new", "done"])
      }),
      Effect.provide(scripted({}))
    )
  })
})
