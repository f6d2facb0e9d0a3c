import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as path from "node:path"
import { built, eventually, ramure, readJsonl, startRun, tempHome } from "./helpers.js"

layer(built, { timeout: "180 seconds", excludeTestServices: true })("ramure budget", (it) => {
  it.effect("a paused reviewer loop shows its budget in status, is raised from the CLI, goes on, and ls shows the run's cost", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const run = yield* startRun(home, [], {}, "budget-run.ts")
      const log = path.join(home, "logs", run.id, "reviewer.jsonl")
      // $0.20 a turn: the third passes $0.50, and the reviewer waits, paused.
      yield* eventually("the budget to run out", Effect.sync(() =>
        readJsonl(log).find((entry) => entry.event._tag === "BudgetExceeded")))

      const status = (yield* ramure(home, ["status"])).stdout
      expect(status).toMatch(/budgets\n\s+BUDGET\s+SPENT \/ LIMIT\s+ON EXCEEDED\s+STATE/)
      expect(status).toMatch(/agent reviewer\s+cost \$0\.6000\/\$0\.5000\s+pause\s+exceeded: cost \(paused\)/)
      expect(status).toMatch(/review\s+running\s+for \S+\s+\$0\.6000, 3 turns/)
      expect(status).toContain("3 model turns")

      // Mistakes are one clear line each, and change nothing.
      const unknown = yield* ramure(home, ["budget", "nobody", "+1"])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr.trim()).toBe(`ramure: no live budget of "nobody" (budgets: reviewer)`)
      const noLimit = yield* ramure(home, ["budget", "reviewer", "+5turns"])
      expect(noLimit.stderr.trim()).toBe("ramure: cannot change the budget of agent reviewer: it has no turns limit (its budget limits cost)")
      const notRaise = yield* ramure(home, ["budget", "reviewer", "5"])
      expect(notRaise.stderr.trim()).toMatch(/^ramure: "5" is not a raise; give the raise as \+<amount>: \+0\.50usd /)
      const badUnit = yield* ramure(home, ["budget", "reviewer", "+5parsecs"])
      expect(badUnit.stderr.trim()).toMatch(/^ramure: "parsecs" is not a unit; /)

      // In dollars ("+$0.50" is the same, quoted in a shell), with the run's id.
      const raised = yield* ramure(home, ["budget", run.id.slice(0, 8), "reviewer", "+0.50usd"])
      expect(raised.stderr).toBe("")
      expect(raised.stdout.trim()).toBe("raised the budget of agent reviewer: now cost $1.0000")
      expect(yield* run.process.exited).toBe(0)
      expect(run.process.output().stdout).toContain("approved: looks good")

      const entries = readJsonl(log)
      expect(entries.filter((e) => e.event._tag === "MessageEnded")).toHaveLength(4)
      expect(entries.find((e) => e.event._tag === "BudgetRaised")?.event).toEqual({
        _tag: "BudgetRaised",
        by: { cost: 0.5 },
        limits: { cost: 1 },
        caller: "cli"
      })
      const tail = (yield* ramure(home, ["tail", run.id.slice(0, 8), "--agent", "reviewer"])).stdout
      expect(tail).toContain("budget exceeded: cost $0.6000 of $0.5000 — paused until it is raised")
      expect(tail).toContain("budget raised by cost $0.5000 (cli): now cost $1.0000")

      const listed = JSON.parse((yield* ramure(home, ["ls", "--all", "--json"])).stdout)
      expect(listed).toEqual([expect.objectContaining({ id: run.id, cost: expect.closeTo(0.8, 6) })])
      expect((yield* ramure(home, ["ls", "--all"])).stdout).toMatch(/budget-fixture\s.*\s1\s+\$0\.8000\s+done/)
    }).pipe(Effect.scoped))
})
