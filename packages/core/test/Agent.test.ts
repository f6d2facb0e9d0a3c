import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { ToolError } from "../src/Errors.js"
import { scripted, withWorker } from "./helpers.js"

describe("Agent tools", () => {
  it.live("a tool call round-trips with Schema-decoded arguments", () => {
    const seen: Array<unknown> = []
    const main = withWorker((worker) =>
      worker.on(
        "add",
        { description: "Add two numbers", parameters: Schema.Struct({ a: Schema.Number, b: Schema.NumberFromString }) },
        ({ a, b }) => Effect.sync(() => (seen.push({ a, b }), { sum: a + b }))
      )
    )
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe('{"isError":false,"text":"{\\"sum\\":5}"}')
        expect(seen).toEqual([{ a: 2, b: 3 }])
      }),
      Effect.provide(
        scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("add")
              expect(driver.tools().get("add")!.parameters).toMatchObject({ type: "object", required: ["a", "b"] })
              const result = yield* driver.call("add", { a: 2, b: "3" })
              yield* driver.call("finish", { result: JSON.stringify(result) })
            })
        })
      )
    )
  })

  it.live("invalid arguments, unknown tools and failing handlers become error results; the run continues", () => {
    const main = withWorker((worker) =>
      Effect.all([
        worker.on("strict", { description: "", parameters: Schema.Struct({ n: Schema.Int }) }, () => Effect.succeed("ok")),
        worker.on("refuse", { description: "", parameters: Schema.Struct({}) }, () => new ToolError({ message: "no way" })),
        worker.on("explode", { description: "", parameters: Schema.Struct({}) }, () => Effect.die(new Error("boom")))
      ])
    )
    const results: Array<{ isError: boolean; text: string }> = []
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe("still alive")
        expect(results.map((r) => r.isError)).toEqual([true, true, true, true, false])
        expect(results[0]!.text).toContain("invalid arguments for strict")
        expect(results[1]!.text).toContain('unknown tool "nope"')
        expect(results[2]!.text).toContain("no way")
        expect(results[3]!.text).toContain("boom")
        expect(results[4]!.text).toBe("ok")
      }),
      Effect.provide(
        scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("explode")
              results.push(yield* driver.call("strict", { n: 1.5 }))
              results.push(yield* driver.call("nope", {}))
              results.push(yield* driver.call("refuse", {}))
              results.push(yield* driver.call("explode", {}))
              results.push(yield* driver.call("strict", { n: 2 }))
              yield* driver.call("finish", { result: "still alive" })
            })
        })
      )
    )
  })
})

describe("every tool call gets exactly one answer", () => {
  const noArgs = { description: "", parameters: Schema.Struct({}) }

  it.live("a result too large for the agent's frames is an error result naming its size and the limit; the agent goes on", () => {
    const limit = 64 * 1024
    const main = withWorker((worker) =>
      Effect.all([
        worker.on("big", noArgs, () => Effect.succeed("x".repeat(100_000))),
        // 20,000 bytes, but 120,000 once JSON escapes them: it is the frame that must fit.
        worker.on("escaped", noArgs, () => Effect.succeed("\u0001".repeat(20_000))),
        worker.on("small", noArgs, () => Effect.succeed("fits"))
      ])
    )
    const results: Array<{ isError: boolean; text: string }> = []
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe("still alive")
        expect(results).toEqual([
          { isError: true, text: `the result of big is too large to send (100000 bytes; the limit is ${limit})` },
          { isError: true, text: `the result of escaped is too large to send (120002 bytes; the limit is ${limit})` },
          { isError: false, text: "fits" }
        ])
      }),
      Effect.provide(
        scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("small")
              for (const tool of ["big", "escaped", "small"]) results.push(yield* driver.call(tool, {}))
              yield* driver.call("finish", { result: "still alive" })
            })
        }, { maxMessageBytes: limit })
      )
    )
  })

  it.live("a handler that is interrupted answers with an error result saying so", () => {
    const main = withWorker((worker) =>
      Effect.all([worker.on("give-up", noArgs, () => Effect.interrupt), worker.on("fine", noArgs, () => Effect.succeed("ok"))])
    )
    const results: Array<{ isError: boolean; text: string }> = []
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe("still alive")
        expect(results).toEqual([{ isError: true, text: "the tool call was interrupted" }, { isError: false, text: "ok" }])
      }),
      Effect.provide(
        scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("fine")
              results.push(yield* driver.call("give-up", {}))
              results.push(yield* driver.call("fine", {}))
              yield* driver.call("finish", { result: "still alive" })
            })
        })
      )
    )
  })

  it.live("a handler that returns a function, a Symbol or a BigInt gets an error result naming it; the agent stays connected", () => {
    const main = withWorker((worker) =>
      Effect.all([
        worker.on("function", noArgs, () => Effect.succeed(() => "not data")),
        worker.on("symbol", noArgs, () => Effect.succeed(Symbol("not data"))),
        worker.on("bigint", noArgs, () => Effect.succeed(10n ** 30n)),
        worker.on("nested", noArgs, () => Effect.succeed({ total: 1n })),
        worker.on("fine", noArgs, () => Effect.succeed({ total: 1 }))
      ])
    )
    const results: Array<{ isError: boolean; text: string }> = []
    return main().pipe(
      Effect.map((result) => {
        expect(result).toBe("still alive")
        expect(results.map((r) => r.isError)).toEqual([true, true, true, true, false])
        expect(results[0]!.text).toBe("the handler returned a function, which cannot be sent")
        expect(results[1]!.text).toBe("the handler returned a symbol, which cannot be sent")
        expect(results[2]!.text).toContain("BigInt")
        expect(results[3]!.text).toContain("BigInt")
        expect(results[4]!.text).toBe('{"total":1}')
      }),
      Effect.provide(
        scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("fine")
              for (const tool of ["function", "symbol", "bigint", "nested", "fine"]) results.push(yield* driver.call(tool, {}))
              yield* driver.call("finish", { result: "still alive" })
            })
        })
      )
    )
  })
})
