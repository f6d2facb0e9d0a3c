import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as Agent from "../src/Agent.js"
import { InvalidToolName, InvalidToolSchema, ToolError } from "../src/Errors.js"
import { toJsonSchema } from "../src/internal/tools.js"
import * as Process from "../src/Process.js"
import { scripted, withWorker } from "./helpers.js"
import { expectPlanSchema, Person, Plan } from "./schemas.js"

interface Tree {
  readonly label: string
  readonly children: ReadonlyArray<Tree>
}
const Tree: Schema.Schema<Tree> = Schema.Struct({
  label: Schema.String,
  children: Schema.Array(Schema.suspend((): Schema.Schema<Tree> => Tree))
}).annotations({ identifier: "Tree" })
const Anonymous: Schema.Schema<Tree> = Schema.Struct({
  label: Schema.String,
  children: Schema.Array(Schema.suspend((): Schema.Schema<Tree> => Anonymous))
})

const jsonOf = (schema: Schema.Schema<any, any, never>) => Either.getOrThrow(toJsonSchema("t", schema)) as any

const Finish = Schema.Struct({ result: Schema.String })

describe("Tool JSON Schemas", () => {
  it("are self-contained: integers, classes, nested objects and arrays are written out, with their descriptions", () => {
    const json = jsonOf(Plan)
    expect(JSON.stringify(json)).not.toContain("$defs")
    expectPlanSchema(json, expect)
  })

  it("a Class as the parameters is an object with its fields, not a reference", () => {
    const json = jsonOf(Person)
    expect(json).toMatchObject({ type: "object", required: ["name", "age"], properties: { age: { type: "integer" } } })
    expect(json.$ref).toBeUndefined()
  })

  it("allow extra fields, as the decoding ignores them", () => {
    const json = jsonOf(Plan)
    expect(json.additionalProperties).toBe(true)
    expect(json.properties.owner.additionalProperties).toBe(true)
    expect(json.properties.steps.items.additionalProperties).toBe(true)
  })

  it("a recursive Schema has none: a clear InvalidToolSchema, with or without an identifier", () => {
    for (const schema of [Tree, Anonymous, Schema.Struct({ tree: Tree })]) {
      const result = toJsonSchema("plant", schema)
      expect(Either.isLeft(result)).toBe(true)
      const error = Either.getLeft(result).pipe((e) => (e._tag === "Some" ? e.value : undefined))!
      expect(error).toBeInstanceOf(InvalidToolSchema)
      expect(error.message).toContain(`the parameters of "plant" cannot be described to a model`)
      expect(error.message).toContain("recursive")
    }
  })
})

describe("Agent tools", () => {
  it.live("a tool with a recursive Schema is refused when it is added (agent.on, expose), and the run goes on", () => {
    const main = withWorker((worker) =>
      Effect.gen(function* () {
        const onError = yield* Effect.flip(worker.on("plant", { description: "", parameters: Tree }, () => Effect.void))
        const exposeError = yield* Effect.flip(Process.expose("plant", { description: "", parameters: Anonymous }, () => Effect.void))
        yield* Process.done(`${onError._tag}: ${onError.message} / ${exposeError._tag}: ${exposeError.message}`)
      }))
    return main().pipe(
      Effect.map((result) => {
        expect(result).toContain(`InvalidToolSchema: the parameters of "plant" cannot be described to a model: it is recursive (Tree contains itself)`)
        expect(result).toContain("/ InvalidToolSchema:")
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("a call with extra fields reaches the handler, without them", () => {
    const seen: Array<unknown> = []
    const main = withWorker((worker) =>
      worker.on("add", { description: "", parameters: Schema.Struct({ a: Schema.Int, b: Schema.Int }) }, (args) =>
        Effect.sync(() => (seen.push(args), args.a + args.b))))
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe("3")
        expect(seen).toEqual([{ a: 1, b: 2 }])
      }),
      Effect.provide(scripted({
        worker: (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("add")
            const sum = yield* driver.call("add", { a: 1, b: 2, reasoning: "models add fields like this" })
            yield* driver.call("finish", { result: sum.text })
          })
      }))
    )
  })

  it.live("built-in tool names are reserved: agent.on and expose refuse them, and connect's tools stay ramure's", () => {
    const refused: Array<InvalidToolName | InvalidToolSchema> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")])
        for (const name of ["message", "send_file", "download_file"]) {
          refused.push(yield* Effect.flip(a.on(name, { description: "mine", parameters: Schema.Struct({}) }, () => Effect.succeed("mine"))))
        }
        refused.push(yield* Effect.flip(Process.expose("message", { description: "", parameters: Schema.Struct({}) }, () => Effect.void)))
        yield* Agent.connect(a, b)
        yield* b.on("report", { description: "", parameters: Finish }, ({ result }) => Process.done(result))
        return yield* Process.wait()
      }))
    return main().pipe(
      Effect.map((received) => {
        expect(refused).toHaveLength(4)
        for (const error of refused) {
          expect(error).toBeInstanceOf(InvalidToolName)
          expect(error.message).toContain("the name of one of ramure's built-in tools")
        }
        expect(received).toBe("[From: a] hi")
      }),
      Effect.provide(scripted({
        a: (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("message")
            expect(driver.tools().get("message")!.description).not.toBe("mine")
            expect(yield* driver.call("message", { to: "b", text: "hi" })).toEqual({ isError: false, text: "ok" })
          }),
        b: (driver) =>
          Effect.gen(function* () {
            const text = yield* driver.nextMessage
            yield* driver.waitForTool("report")
            yield* driver.call("report", { result: text })
          })
      }))
    )
  })

  it.live("a handler's failures reach the model in its own words, from agent.on and from an attached endpoint alike", () => {
    const notAnEffect = (() => "oops") as unknown as () => Effect.Effect<string>
    const handlers = {
      refuse: () => new ToolError({ message: "no way" }),
      crash: () => Effect.die(new TypeError("")),
      plain: notAnEffect
    }
    const Empty = Schema.Struct({})
    const child = Process.make("tools", () =>
      Effect.gen(function* () {
        for (const [name, handler] of Object.entries(handlers)) yield* Process.expose(name, { description: "", parameters: Empty }, handler)
        return yield* Effect.never
      }))
    const main = withWorker((worker) =>
      Effect.gen(function* () {
        for (const [name, handler] of Object.entries(handlers)) yield* worker.on(name, { description: "", parameters: Empty }, handler)
        const tools = yield* Process.spawn(child)
        yield* tools.attach(worker, { only: Object.keys(handlers), prefix: "ep_" })
      }))
    const results: Record<string, { isError: boolean; text: string }> = {}
    return main().pipe(
      Effect.map(() => {
        expect(results.refuse).toEqual({ isError: true, text: "no way" })
        expect(results.crash).toEqual({ isError: true, text: "tool handler crashed: TypeError" })
        expect(results.plain).toEqual({ isError: true, text: "tool handler crashed: the handler of plain did not return an Effect (got string)" })
        expect(results.ep_refuse).toEqual({ isError: true, text: "endpoint main/tools.refuse failed: no way" })
        expect(results.ep_crash).toEqual({ isError: true, text: "endpoint main/tools.crash failed: TypeError" })
        expect(results.ep_plain).toEqual({
          isError: true,
          text: "endpoint main/tools.plain failed: the handler of plain did not return an Effect (got string)"
        })
      }),
      Effect.provide(scripted({
        worker: (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("ep_plain")
            for (const name of ["refuse", "crash", "plain", "ep_refuse", "ep_crash", "ep_plain"]) {
              results[name] = yield* driver.call(name, {})
            }
            yield* driver.call("finish", { result: "done" })
          })
      }))
    )
  })
})
