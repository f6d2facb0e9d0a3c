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
