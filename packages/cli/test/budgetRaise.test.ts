import { describe, expect, it } from "@effect/vitest"
import type { BudgetStatus } from "@ramure/core/RunStatus"
import { Either } from "effect"
import * as BudgetRaise from "../src/BudgetRaise.js"

const budget = (limits: BudgetStatus["limits"], exceeded?: BudgetStatus["exceeded"]): BudgetStatus => ({
  process: "main",
  limits,
  onExceeded: "pause",
  warnAt: 0.8,
  since: new Date().toISOString(),
  spent: { inputTokens: 0, outputTokens: 0, totalTokens: 0, cost: 0, turns: 0 },
  warned: [],
  ...(exceeded === undefined ? {} : { exceeded })
})

const parse = (text: string, of: BudgetStatus) => Either.getOrElse(BudgetRaise.parse(text, of), (reason) => reason)

describe("ramure budget's amounts", () => {
  it("reads dollars, turns, tokens and durations, with their units", () => {
    const any = budget({ cost: 1, turns: 10, totalTokens: 1000, time: 60_000 })
    expect(parse("+$0.50", any)).toEqual({ cost: 0.5 })
    expect(parse("+0.50$", any)).toEqual({ cost: 0.5 })
    expect(parse("+0.25usd", any)).toEqual({ cost: 0.25 })
    expect(parse("+20turns", any)).toEqual({ turns: 20 })
    expect(parse("+1 turn", any)).toEqual({ turns: 1 })
    expect(parse("+5000tokens", any)).toEqual({ totalTokens: 5000 })
    expect(parse("+5000input", any)).toEqual({ inputTokens: 5000 })
    expect(parse("+5000out", any)).toEqual({ outputTokens: 5000 })
    expect(parse("+30s", any)).toEqual({ time: 30_000 })
    expect(parse("+1.5m", any)).toEqual({ time: 90_000 })
    expect(parse("+1h", any)).toEqual({ time: 3_600_000 })
  })

  it("a bare number raises the limit the budget ran out of, else its only one; otherwise it asks for a unit", () => {
    expect(parse("+0.5", budget({ cost: 1 }))).toEqual({ cost: 0.5 })
    expect(parse("+3", budget({ turns: 2, cost: 1 }, { kind: "turns", limit: 2, spent: 2 }))).toEqual({ turns: 3 })
    expect(parse("+3", budget({ turns: 2, cost: 1 }))).toMatch(/^the budget limits cost, turns: say which with a unit; /)
    expect(parse("+3", budget({ time: 1000 }))).toBe("say how long: +30s, +5m, +1h")
  })

  it("refuses what is not a raise, a zero, a unit it does not know, and dollars with a unit", () => {
    const any = budget({ cost: 1 })
    expect(parse("5", any)).toMatch(/^"5" is not a raise; /)
    expect(parse("-1", any)).toMatch(/^"-1" is not a raise; /)
    expect(parse("+0", any)).toBe(`a raise must be more than 0 (got "+0")`)
    expect(parse("+5parsecs", any)).toMatch(/^"parsecs" is not a unit; /)
    expect(parse("+$5turns", any)).toMatch(/^"\+\$5turns": dollars take no unit; /)
  })
})
