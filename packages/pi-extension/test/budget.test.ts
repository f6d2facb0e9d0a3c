/**
 * Budgets enforced by real pi agents (in tmux) against the scripted model,
 * which reports usage that pi prices: a model that keeps calling tools
 * forever is held before its next request once its budget runs out, goes on
 * when the budget is raised, and is stopped for good under a `fail` budget.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Budget from "@ramure/core/Budget"
import * as Process from "@ramure/core/Process"
import type { LogEntry } from "@ramure/core/RunEvent"
import { RunLog } from "@ramure/core/RunLog"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import * as Ramure from "ramure/Ramure"
import { Effect, Fiber, Schema } from "effect"
import { eventually, tempHome, turnsOf } from "./helpers.js"

/** A model that never stops: every answer calls `step` again, and reports 1000 tokens in and 100 out. */
const endless: ScriptedModel.EndlessScript = (turn) => ({
  toolCalls: [{ name: "step", arguments: { n: turn + 1 } }],
  usage: { input: 1000, output: 100 }
})

/** $100 per million input tokens and $1000 per million output: each answer costs $0.10 + $0.10. */
const cost = { input: 100, output: 1000 }

const history = Effect.flatMap(RunLog, (log) => log.history())

const count = (entries: ReadonlyArray<LogEntry>, agent: string, tag: string) =>
  entries.filter((e) => e.agent === agent && e.event._tag === tag).length

describe("budgets enforced by pi", () => {
  it.live("a runaway model is held at its limit and goes on when raised; a fail budget stops its agents, aborting the request in flight", () =>
    Effect.gen(function* () {
      const server = yield* ScriptedModel.make({
        // `slow` takes a minute to answer: its request is in flight when its process's budget runs out.
        scripts: { looper: endless, stopper: endless, fast: endless, slow: [{ text: "at last", delay: "60 seconds" }] }
      })
      const home = yield* tempHome
      const layer = Ramure.layer({
        home,
        program: "budget-test",
        provider: "tmux",
        register: false,
        model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
        modelsJson: (agent) => ScriptedModel.piModelsJson(server.baseUrl(agent), { cost })
      })

      /** Calls `step` until its fifth call; capped at $0.50, paused when it runs out. */
      const looping = Process.make("looping", () =>
        Effect.gen(function* () {
          const looper = yield* Agent.make("looper", { budget: { cost: 0.5, onExceeded: "pause" } })
          yield* looper.on("step", { description: "Do one more step", parameters: Schema.Struct({ n: Schema.Number }) }, ({ n }) =>
            n >= 5 ? Process.done(n) : Effect.succeed(`step ${n} done`))
          yield* looper.send("Keep stepping.")
          return yield* Process.wait()
        }), { success: Schema.Number })

      /** Never done; fails when its two model turns are spent. */
      const stopping = Process.make("stopping", () =>
        Effect.gen(function* () {
          const stopper = yield* Agent.make("stopper", { budget: { turns: 2 } })
          yield* stopper.on("step", { description: "Do one more step", parameters: Schema.Struct({ n: Schema.Number }) }, ({ n }) =>
            Effect.succeed(`step ${n} done`))
          yield* stopper.send("Keep stepping.")
          return yield* Process.wait()
        }))

      /** Two agents under two model turns: `fast` spends them while `slow`'s request is in flight. */
      const sharing = Process.make("sharing", () =>
        Effect.gen(function* () {
          const [slow, fast] = yield* Effect.all([Agent.make("slow"), Agent.make("fast")], { concurrency: 2 })
          yield* fast.on("step", { description: "Do one more step", parameters: Schema.Struct({ n: Schema.Number }) }, ({ n }) =>
            Effect.succeed(`step ${n} done`))
          yield* slow.send("Think hard.")
          yield* eventually(server.requests("slow"), (requests) => requests.length === 1)
          yield* fast.send("Keep stepping.")
          return yield* Process.wait()
        }), { budget: { turns: 2 } })

      const test = Effect.gen(function* () {
        // The process's budget runs out: both its agents stop, and the turn in progress is aborted.
        const shared = yield* Effect.flip(sharing())
        expect(shared).toMatchObject({ _tag: "BudgetExceeded", process: "sharing", kind: "turns", limit: 2 })
        expect(turnsOf(yield* server.requests("fast"))).toBe(2)
        expect(turnsOf(yield* server.requests("slow"))).toBe(1)
        const afterBreach = yield* Effect.map(history, (entries) =>
          entries.slice(entries.findIndex((e) => e.process === "sharing" && e.event._tag === "BudgetExceeded")))
        // pi ended its request (aborted) rather than wait a minute for the answer: it reported the aborted message.
        expect(afterBreach.some((e) => e.agent === "slow" && e.event._tag === "MessageEnded" && e.event.role === "assistant")).toBe(true)

        const looper = yield* Effect.fork(looping())
        const stopped = yield* Effect.flip(stopping())
        expect(stopped).toMatchObject({ _tag: "BudgetExceeded", agent: "stopper", kind: "turns", limit: 2, spent: 2 })
        // Its third turn asked, and was refused: two requests reached the model, and the log has two answers.
        expect(turnsOf(yield* server.requests("stopper"))).toBe(2)
        const answers = (yield* history).filter((e) =>
          e.agent === "stopper" && e.event._tag === "MessageEnded" && e.event.role === "assistant")
        expect(answers).toHaveLength(2)

        // $0.20 a turn: the third answer passes $0.50; the fourth turn asks and is held.
        const held = yield* eventually(history, (entries) => {
          const breach = entries.findIndex((e) => e.agent === "looper" && e.event._tag === "BudgetExceeded")
          return breach >= 0 && count(entries.slice(breach), "looper", "TurnStarted") >= 1
        })
        const breach = held.find((e) => e.agent === "looper" && e.event._tag === "BudgetExceeded")
        expect(breach?.event).toMatchObject({ kind: "cost", limit: 0.5, onExceeded: "pause" })
        expect((breach?.event as { spent: number }).spent).toBeCloseTo(0.6)
        expect(turnsOf(yield* server.requests("looper"))).toBe(3)
        expect(count(held, "looper", "BudgetWarning")).toBe(1)

        // Raised to $0.90: the held turn goes, and the next one passes the limit again, with the fifth step.
        expect(yield* Budget.raise({ agent: "looper" }, { cost: 0.4 })).toEqual({ cost: 0.9 })
        expect(yield* Fiber.join(looper)).toBe(5)
        expect(turnsOf(yield* server.requests("looper"))).toBe(5)

        const entries = yield* history
        expect(entries.filter((e) => e.event._tag === "BudgetRaised")).toHaveLength(1)
        const status = yield* (yield* RunLog).status
        const spent = status.budgets.find((b) => b.agent === "looper")?.spent
        expect(spent?.turns).toBe(5)
        expect(spent?.cost).toBeCloseTo(1.0)
        expect(spent?.inputTokens).toBe(5000)
        expect(yield* server.failures).toEqual([])
      })
      yield* test.pipe(Effect.provide(layer))
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), { timeout: 120_000 })
})
