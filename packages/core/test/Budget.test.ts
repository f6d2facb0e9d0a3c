import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Option, Ref, Schema, Stream } from "effect"
import * as Agent from "../src/Agent.js"
import * as Budget from "../src/Budget.js"
import { BudgetExceeded } from "../src/Errors.js"
import * as Process from "../src/Process.js"
import type { LogEntry } from "../src/RunEvent.js"
import { RunLog } from "../src/RunLog.js"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import { scripted, tempHome } from "./helpers.js"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/** A model that never stops: one turn after another, each spending `usage`, until the run stops it. */
const forever = (usage: { readonly input?: number; readonly output?: number; readonly cost?: number }): ScriptedAgents.Script =>
  (driver) =>
    Effect.gen(function* () {
      while ((yield* driver.turn({ text: "again", usage })) === "done") {
        // A model that keeps calling tools: nothing ever ends its loop but its budget.
      }
    })

/** The run's log so far. */
const history = Effect.flatMap(RunLog, (log) => log.history())

const answersOf = (entries: ReadonlyArray<LogEntry>, agent: string) =>
  entries.filter((e) => e.agent === agent && e.event._tag === "MessageEnded" && e.event.role === "assistant")

/** An agent `worker` under `budget` that spends `usage` per turn, forever. */
const runaway = (budget: Budget.Options) =>
  Process.make("main", () =>
    Effect.gen(function* () {
      yield* Agent.make("worker", { budget })
      return yield* Process.wait()
    }))

describe("Budgets", () => {
  const cases: ReadonlyArray<readonly [string, Budget.Options, { input?: number; output?: number; cost?: number }, number, number]> = [
    // [name, budget, usage per turn, spend per turn of that kind, limit]
    ["input tokens", { inputTokens: 1000 }, { input: 300, output: 10 }, 300, 1000],
    ["output tokens", { outputTokens: 100 }, { input: 5, output: 30 }, 30, 100],
    ["total tokens", { totalTokens: 1000 }, { input: 230, output: 70 }, 300, 1000],
    ["cost", { cost: 0.5 }, { input: 10, output: 10, cost: 0.15 }, 0.15, 0.5]
  ]
  for (const [name, budget, usage, perTurn, limit] of cases) {
    it.live(`a ${name} limit stops a model that never stops within one model turn, and fails its process with BudgetExceeded`, () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(runaway(budget)())
        expect(error).toBeInstanceOf(BudgetExceeded)
        const exceeded = error as BudgetExceeded
        expect(exceeded.agent).toBe("worker")
        expect(exceeded.limit).toBe(limit)
        // It ran out within one turn of the limit: past it, by less than one turn's spend.
        expect(exceeded.spent).toBeGreaterThan(limit)
        expect(exceeded.spent).toBeLessThanOrEqual(limit + perTurn)
        const entries = yield* history
        // Not one answer after the one that passed the limit.
        expect(answersOf(entries, "worker")).toHaveLength(Math.floor(limit / perTurn) + 1)
        const breach = entries.find((e) => e.event._tag === "BudgetExceeded")
        expect(breach?.event).toMatchObject({ _tag: "BudgetExceeded", limit, onExceeded: "fail" })
        expect(breach?.agent).toBe("worker")
        // The warning at 80 % came first.
        const warning = entries.findIndex((e) => e.event._tag === "BudgetWarning")
        expect(warning).toBeGreaterThanOrEqual(0)
        expect(warning).toBeLessThan(entries.indexOf(breach!))
      }).pipe(Effect.provide(scripted({ worker: forever(usage) }))))
  }

  it.live("a model turns limit lets exactly that many turns go to the model and refuses the next", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(runaway({ turns: 3 })())
      expect(error).toMatchObject({ _tag: "BudgetExceeded", kind: "turns", limit: 3, spent: 3 })
      expect(answersOf(yield* history, "worker")).toHaveLength(3)
    }).pipe(Effect.provide(scripted({ worker: forever({ input: 1 }) }))))

  it.live("a time limit stops an agent that is still spending when its time is up", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(runaway({ time: "300 millis" })())
      expect(error).toMatchObject({ _tag: "BudgetExceeded", kind: "time", limit: 300 })
      const entries = yield* history
      expect(entries.filter((e) => e.event._tag.startsWith("Budget")).map((e) => e.event)).toEqual([
        expect.objectContaining({ _tag: "BudgetSet", limits: { time: 300 } }),
        expect.objectContaining({ _tag: "BudgetWarning", kind: "time", limit: 300 }),
        expect.objectContaining({ _tag: "BudgetExceeded", kind: "time", limit: 300 })
      ])
      const breach = entries.findIndex((e) => e.event._tag === "BudgetExceeded")
      // At most the turn in progress ends after the breach; none starts.
      expect(answersOf(entries.slice(breach), "worker").length).toBeLessThanOrEqual(1)
    }).pipe(Effect.provide(scripted({
      worker: (driver) =>
        Effect.gen(function* () {
          while ((yield* driver.turn({ usage: { input: 1 } })) === "done") yield* Effect.sleep("20 millis")
        })
    }))))

  it.live("a process's budget covers its agents and its children's: a child without a budget stops when its parent's runs out", () => {
    const child = Process.make("child", () =>
      Effect.gen(function* () {
        yield* Agent.make("worker")
        return yield* Process.wait()
      }))
    const main = Process.make("main", () => child(), { budget: { cost: 1 } })
    return Effect.gen(function* () {
      const error = yield* Effect.flip(main())
      // The parent's budget ran out: the parent fails with it (its child is cancelled with it).
      expect(error).toMatchObject({ _tag: "BudgetExceeded", process: "main", kind: "cost", limit: 1 })
      expect((error as BudgetExceeded).agent).toBeUndefined()
      expect((error as BudgetExceeded).spent).toBeLessThanOrEqual(1.3)
      expect(answersOf(yield* history, "worker")).toHaveLength(4)
    }).pipe(Effect.provide(scripted({ worker: forever({ cost: 0.3 }) })))
  })

  it.live("a child's budget is carved out of what its parent has left, and what it spends counts against its parent", () => {
    const child = Process.make("child", () =>
      Effect.gen(function* () {
        yield* Agent.make("second")
        return yield* Process.wait()
      }), { budget: { cost: 5 } })
    const warmup = Process.make("warmup", () =>
      Effect.gen(function* () {
        const first = yield* Agent.make("first")
        yield* first.on("finish", { description: "done", parameters: Schema.Struct({}) }, () => Process.done("first done"))
        yield* first.send("go")
        return yield* Process.wait()
      }))
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        yield* warmup()
        // The parent has $1 - $0.70 left: the child asked for $5 and gets $0.30.
        return yield* Effect.either(child())
      }), { budget: { cost: 1, onExceeded: "pause" } })
    return Effect.gen(function* () {
      const result = yield* main()
      expect(result._tag).toBe("Left")
      const error = Option.getOrThrow(Option.fromNullable(result._tag === "Left" ? result.left : undefined))
      expect(error).toMatchObject({ _tag: "BudgetExceeded", process: "main/child", kind: "cost" })
      expect((error as BudgetExceeded).limit).toBeCloseTo(0.3)
      const entries = yield* history
      const set = entries.find((e) => e.process === "main/child" && e.event._tag === "BudgetSet")
      expect(set?.event).toMatchObject({ requested: { cost: 5 } })
      expect(set?.event._tag === "BudgetSet" && set.event.limits.cost).toBeCloseTo(0.3)
      // The child spent one $0.20 turn within its $0.30, then passed it with the next.
      expect(answersOf(entries, "second")).toHaveLength(2)
      const status = yield* (yield* RunLog).status
      const parent = status.budgets.find((b) => b.process === "main" && b.agent === undefined)
      expect(parent?.spent.cost).toBeCloseTo(1.1)
      expect(status.processes.find((p) => p.path === "main")?.spent.cost).toBeCloseTo(1.1)
    }).pipe(Effect.provide(scripted({
      first: (driver) =>
        Effect.gen(function* () {
          yield* driver.nextMessage
          for (let i = 0; i < 7; i++) yield* driver.turn({ usage: { cost: 0.1 } })
          yield* driver.waitForTool("finish")
          yield* driver.call("finish", {})
        }),
      second: forever({ cost: 0.2 })
    })))
  })

  it.live("a paused agent waits until its budget is raised from code, then goes on where it was", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const worker = yield* Agent.make("worker", { budget: { turns: 2, onExceeded: "pause" } })
        yield* worker.on("finish", { description: "done", parameters: Schema.Struct({ turns: Schema.Number }) }, ({ turns }) =>
          Process.done(turns))
        const breach = yield* Budget.exceeded
        const limits = yield* Budget.raise({ agent: worker.id }, { turns: 10 })
        expect(limits).toEqual({ turns: 12 })
        expect(breach).toMatchObject({ kind: "turns", limit: 2, spent: 2 })
        return yield* Process.wait()
      }))
    return Effect.gen(function* () {
      expect(yield* main()).toBe(5)
      const entries = yield* history
      const tags = entries.filter((e) => e.event._tag.startsWith("Budget")).map((e) => e.event._tag)
      expect(tags).toEqual(["BudgetSet", "BudgetWarning", "BudgetExceeded", "BudgetRaised"])
      const exceeded = entries.findIndex((e) => e.event._tag === "BudgetExceeded")
      const raised = entries.findIndex((e) => e.event._tag === "BudgetRaised")
      // Nothing went to the model while it was paused.
      expect(answersOf(entries.slice(exceeded, raised), "worker")).toHaveLength(0)
      expect(answersOf(entries, "worker")).toHaveLength(5)
    }).pipe(Effect.provide(scripted({
      worker: (driver) =>
        Effect.gen(function* () {
          for (let i = 0; i < 5; i++) expect(yield* driver.turn({ usage: { input: 10 } })).toBe("done")
          yield* driver.waitForTool("finish")
          yield* driver.call("finish", { turns: 5 })
        })
    })))
  })

  it.live("a paused time limit goes on when its time is raised, and a process's budget is raised by its path", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const worker = yield* Agent.make("worker")
        yield* worker.on("finish", { description: "done", parameters: Schema.Struct({}) }, () => Process.done("finished"))
        const breach = yield* Budget.exceeded
        expect(breach).toMatchObject({ process: "main", kind: "time", limit: 200 })
        expect(breach.agent).toBeUndefined()
        expect(yield* Budget.raise({ process: "main" }, { time: "10 minutes" })).toEqual({ time: 600_200 })
        return yield* Process.wait()
      }), { budget: { time: "200 millis", onExceeded: "pause" } })
    return Effect.gen(function* () {
      expect(yield* main()).toBe("finished")
      const entries = yield* history
      const raised = entries.find((e) => e.event._tag === "BudgetRaised")
      expect(raised).toMatchObject({ process: "main", event: { by: { time: 600_000 }, limits: { time: 600_200 }, caller: "main" } })
      expect(raised?.agent).toBeUndefined()
    }).pipe(Effect.provide(scripted({
      worker: (driver) =>
        Effect.gen(function* () {
          // Turns until the time is up and raised: the turn that asks once it is up waits for the raise.
          let turns = 0
          while (driver.budget().state === "open" && turns < 1000) {
            expect(yield* driver.turn({ usage: { input: 1 } })).toBe("done")
            turns++
            yield* Effect.sleep("10 millis")
          }
          expect(yield* driver.turn({ usage: { input: 1 } })).toBe("done")
          yield* driver.waitForTool("finish")
          yield* driver.call("finish", {})
        })
    })))
  })

  it.live("a process can give up on a paused budget instead of waiting for a raise", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        yield* Agent.make("worker", { budget: { cost: 0.25, onExceeded: "pause" } })
        const breach = yield* Budget.exceeded
        return yield* Process.fail(`gave up: ${breach.message}`).pipe(Effect.zipRight(Process.wait()))
      }))
    return Effect.gen(function* () {
      const exit = yield* Effect.exit(main())
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(exit)
      expect(error.message).toBe("process main failed: gave up: the budget of agent worker is exceeded: cost $0.3000 of $0.2500")
    }).pipe(Effect.provide(scripted({ worker: forever({ cost: 0.1 }) })))
  })

  it.live("raising a budget that is not live, or a limit it does not have, is a NoBudget that says why", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const worker = yield* Agent.make("worker", { budget: { turns: 5 } })
        const noLimit = yield* Effect.flip(Budget.raise({ agent: worker.id }, { cost: 1 }))
        const unknown = yield* Effect.flip(Budget.raise({ process: "nope" }, { cost: 1 }))
        const negative = yield* Effect.flip(Budget.raise({ agent: worker.id }, { turns: -1 }))
        return [noLimit.message, unknown.message, negative.message]
      }))
    return main().pipe(
      Effect.map((messages) =>
        expect(messages).toEqual([
          "cannot change the budget of agent worker: it has no cost limit (its budget limits turns)",
          "cannot change the budget of process nope: it is not live",
          "cannot change the budget of agent worker: a raise must be positive (turns: -1)"
        ])),
      Effect.provide(scripted({}))
    )
  })

  it.live("a turn asked for across dropped connections is answered, and the agent goes on", () =>
    Process.make("main", () =>
      Effect.gen(function* () {
        const worker = yield* Agent.make("worker", { budget: { turns: 100 } })
        yield* worker.on("finish", { description: "done", parameters: Schema.Struct({}) }, () => Process.done("finished"))
        return yield* Process.wait()
      }))().pipe(
        Effect.map((result) => expect(result).toBe("finished")),
        Effect.provide(scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              for (let i = 0; i < 5; i++) {
                // Sent, then the connection drops (its answer may be lost with it); then asked while disconnected.
                yield* driver.emit({ _tag: "TurnStarted" })
                yield* driver.dropConnection
                expect(yield* driver.turn({ usage: { input: 1 } })).toBe("done")
              }
              yield* driver.waitForTool("finish")
              yield* driver.call("finish", {})
            })
        }))
      ))

  it.live("a budget that is not one is a clear, typed error: InvalidArgument for an agent, ProcessFailed for a process", () =>
    Effect.gen(function* () {
      const agent = (budget: Budget.Options) =>
        Process.make("main", () => Effect.flip(Agent.make("worker", { budget })))()
      expect((yield* agent({ cost: -1 })).message).toBe("agent worker: the budget's cost must be a number of at least 0 (got -1)")
      expect((yield* agent({ turns: Number.NaN })).message).toBe("agent worker: the budget's turns must be a number of at least 0 (got NaN)")
      expect((yield* agent({ warnAt: 2 })).message).toBe("agent worker: the budget's warnAt must be a fraction in (0, 1] (got 2)")
      expect((yield* agent({ time: Duration.infinity })).message).toBe("agent worker: the budget's time must be a finite duration (got Infinity)")
      const process = yield* Effect.flip(Process.make("main", () => Process.wait(), { budget: { totalTokens: -5 } })())
      expect(process.message).toBe("process main failed: the budget's totalTokens must be a number of at least 0 (got -5)")
    }).pipe(Effect.provide(scripted({}))))

  it.live("an agent under no budget is told nothing and never waits for the run before a turn", () =>
    Process.make("main", () =>
      Effect.gen(function* () {
        const worker = yield* Agent.make("worker")
        yield* worker.on("finish", { description: "done", parameters: Schema.Struct({ limited: Schema.Boolean }) }, ({ limited }) =>
          Process.done(limited))
        return yield* Process.wait()
      }))().pipe(
        Effect.map((limited) => expect(limited).toBe(false)),
        Effect.provide(scripted({
          worker: (driver) =>
            Effect.gen(function* () {
              for (let i = 0; i < 3; i++) yield* driver.turn({ usage: { input: 1000 } })
              yield* driver.waitForTool("finish")
              yield* driver.call("finish", { limited: driver.budget().limited })
            })
        }))
      ))

  it.live("a turn an agent asks for once its process has its outcome is refused, even with budget left", () =>
    Effect.scoped(Effect.gen(function* () {
      const budgets = yield* Budget.Budgets
      const ended = yield* Ref.make(false)
      yield* budgets.process({ path: "main", parent: undefined, budget: { turns: 10 }, fail: () => Effect.void, ended: Ref.get(ended) })
      const gate = yield* budgets.agent({ id: "worker", process: "main", budget: undefined })
      const ask = gate.observe({ _tag: "TurnStarted" })
      expect(yield* ask).toEqual(Option.some({ _tag: "Budget", state: "open", answers: 1 }))
      // The tool call that ended the process was answered: pi, not yet shut down, would start its next turn.
      yield* Ref.set(ended, true)
      expect(yield* ask).toEqual(Option.some({ _tag: "Budget", state: "stopped", answers: 1, reason: "its process main has ended" }))
    })).pipe(Effect.provide(scripted({}))))

  it.live("a resumed run goes on with the budgets its log has: their limits, raises and spend", () => {
    const home = tempHome()
    const id = randomUUID()
    const directory = path.join(home, "logs", id)
    fs.mkdirSync(directory, { recursive: true })
    const ts = new Date().toISOString()
    const lines = (entries: ReadonlyArray<object>) => entries.map((e) => JSON.stringify({ ts, ...e })).join("\n") + "\n"
    fs.writeFileSync(path.join(directory, "_runtime.jsonl"), lines([
      { n: 1, process: "", event: { _tag: "RunStarted", executionId: id, program: "test", pid: 1, url: "ws://127.0.0.1:1" } },
      { n: 2, process: "main", event: { _tag: "ProcessStarted", name: "main" } },
      { n: 3, process: "main", event: { _tag: "BudgetSet", limits: { cost: 1 }, onExceeded: "fail", warnAt: 0.8 } },
      { n: 6, process: "main", event: { _tag: "BudgetRaised", by: { cost: 0.5 }, limits: { cost: 1.5 }, caller: "cli" } }
    ]))
    fs.writeFileSync(path.join(directory, "worker.jsonl"), lines([
      { n: 4, process: "main", agent: "worker", event: { _tag: "AgentCreated", name: "worker", machine: { id: "worker", kind: "local", cwd: home } } },
      { n: 5, process: "main", agent: "worker", event: { _tag: "MessageEnded", role: "assistant", text: "", usage: { input: 1, output: 1, cost: 0.6 } } }
    ]))
    return Effect.gen(function* () {
      // $0.60 spent of $1.50 (raised) before the resume: three more $0.30 turns use it up (a fresh $1 would allow four).
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          yield* Agent.make("worker")
          return yield* Process.wait()
        }), { budget: { cost: 1 } })
      const error = yield* Effect.flip(main())
      expect(error).toMatchObject({ _tag: "BudgetExceeded", process: "main", kind: "cost", limit: 1.5 })
      expect((error as BudgetExceeded).spent).toBeCloseTo(1.5)
      const entries = yield* history
      // Three turns after the resume (the one before it included: four); the fourth is refused.
      expect(answersOf(entries, "worker")).toHaveLength(4)
      expect(entries.filter((e) => e.event._tag === "BudgetSet")).toHaveLength(1)
    }).pipe(Effect.provide(scripted({ worker: forever({ cost: 0.3 }) }, { home, resume: id })))
  })

  it.live("the status shows each budget against what was spent beneath it", () =>
    Effect.gen(function* () {
      yield* Effect.flip(runaway({ cost: 0.5, turns: 100 })())
      const status = yield* (yield* RunLog).status
      const budget = status.budgets.find((b) => b.agent === "worker")
      expect(budget).toMatchObject({ process: "main", limits: { cost: 0.5, turns: 100 }, onExceeded: "fail" })
      expect(budget?.spent.turns).toBe(3)
      expect(budget?.spent.cost).toBeCloseTo(0.6)
      expect(budget?.exceeded).toMatchObject({ kind: "cost", limit: 0.5 })
      expect(budget?.warned).toEqual(["cost"])
      expect(status.totals.turns).toBe(3)
      expect(yield* Stream.runCount(Stream.fromIterable(status.budgets))).toBe(1)
    }).pipe(Effect.provide(scripted({ worker: forever({ cost: 0.2 }) }))))
})
