/**
 * What a model is told about a ramure tool, through each provider API pi
 * speaks to the scripted model: real pi, real extension, the requests as
 * they arrive at the model.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Effect } from "effect"
import { expectPlanSchema, Person, Plan } from "../../core/test/schemas.js"
import { expectToolResults, finish, finishTool, piRun, tempHome } from "./helpers.js"

const apis: ReadonlyArray<ScriptedModel.Api> = ["openai-completions", "anthropic-messages"]

describe.each(apis)("a tool's parameters through pi's %s provider", (api) => {
  it.live("reach the model whole: types, required fields, enums, nested objects and arrays, descriptions; extra fields pass", () => {
    const received: Array<unknown> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const worker = yield* Agent.make("worker")
        yield* worker.on("plan", { description: "File a plan", parameters: Plan }, (plan) =>
          Effect.sync(() => {
            received.push(plan)
            return `planned ${plan.title} for ${plan.owner.name}`
          }))
        yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
        yield* worker.send("File the plan, then finish.")
        return yield* Process.wait()
      }))
    const call = {
      title: "fix login",
      priority: 1,
      kind: "bug",
      owner: { name: "Ada", age: 36, team: "core" },
      steps: [{ text: "reproduce", done: true, why: "first" }],
      confidence: 0.9
    }
    return Effect.gen(function* () {
      const server = yield* ScriptedModel.make({
        scripts: {
          worker: [
            { toolCalls: [{ name: "plan", arguments: call }] },
            { expect: expectToolResults((r) => r[0] === "planned fix login for Ada"), toolCalls: [finish("filed")] },
            { text: "(done)" }
          ]
        }
      })
      const home = yield* tempHome
      const result = yield* main().pipe(Effect.provide(piRun(server, "local", home, { api })))
      expect(yield* server.failures).toEqual([])
      expect(result).toBe("filed")
      const [first] = yield* server.requests("worker")
      expect(first!.api).toBe(api)
      expectPlanSchema(first!.tools.find((tool) => tool.name === "plan")!.parameters, expect)
      // The extra fields the model added were let through by pi, and left out by ramure's decoding.
      expect(received).toEqual([new Person({ name: "Ada", age: 36 })].map((owner) => ({
        title: "fix login",
        priority: 1,
        kind: "bug",
        owner,
        steps: [{ text: "reproduce", done: true }]
      })))
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer))
  })
})
