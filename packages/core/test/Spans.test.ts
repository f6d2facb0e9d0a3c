/**
 * A trace shows a run: processes, agents' starts and releases, tool calls
 * and endpoint calls are spans, nested as they happen.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Schema, Tracer } from "effect"
import * as Agent from "../src/Agent.js"
import * as Process from "../src/Process.js"
import { scripted } from "./helpers.js"

interface Recorded {
  readonly name: string
  readonly parent: string | undefined
  readonly attributes: ReadonlyMap<string, unknown>
}

/** The default tracer, keeping every span it makes (name, parent's name, attributes). */
const recording = (spans: Array<Recorded>) =>
  Effect.map(Effect.tracer, (base) =>
    Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        const span = base.span(name, parent, context, links, startTime, kind, options)
        const parentName = Option.match(parent, { onNone: () => undefined, onSome: (p) => (p._tag === "Span" ? p.name : undefined) })
        spans.push({ name, parent: parentName, attributes: span.attributes })
        return span
      },
      context: base.context
    }))

describe("Spans", () => {
  it.live("a process run, an agent's start and release, a tool call and an endpoint call are spans, nested", () => {
    const spans: Array<Recorded> = []
    const child = Process.make("child", () =>
      Effect.gen(function* () {
        yield* Process.expose("echo", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
          Effect.succeed(text))
        return yield* Effect.never
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const handle = yield* Process.spawn(child)
        while ((yield* handle.endpoints).length === 0) yield* Effect.sleep("5 millis")
        const agent = yield* Agent.make("worker")
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
          Effect.zipRight(handle.call("echo", { text }), Process.done(text)))
        return yield* Process.wait()
      }))
    const run = main().pipe(
      Effect.provide(scripted({ worker: (driver) => Effect.zipRight(driver.waitForTool("finish"), driver.call("finish", { text: "hi" })) }))
    )
    // The tracer covers the run's own fibers (its server, its agents' connections) too.
    return Effect.flatMap(recording(spans), (tracer) => Effect.withTracer(run, tracer)).pipe(
      Effect.map((result) => {
        expect(result).toBe("hi")
        const named = (name: string) => spans.filter((span) => span.name === name)
        expect(named("Process.run").map((s) => s.attributes.get("process")).sort()).toEqual(["main", "main/child"])
        expect(named("Agent.make")[0]?.attributes.get("agent")).toBe("worker")
        const call = named("Agent.toolCall")[0]!
        expect(call.attributes.get("tool")).toBe("finish")
        expect(call.attributes.get("agent")).toBe("worker")
        const endpoint = named("Process.endpoint")[0]!
        expect(endpoint.attributes.get("endpoint")).toBe("echo")
        expect(endpoint.attributes.get("process")).toBe("main/child")
        // The endpoint was called from the tool call, and the tool call happened in the run of `main`.
        expect(endpoint.parent).toBe("Agent.toolCall")
        expect(named("Agent.release").map((s) => s.attributes.get("agent"))).toEqual(["worker"])
      })
    )
  })
})
