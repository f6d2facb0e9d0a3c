/**
 * What `ramure budget <agent|process> +<amount>` adds to a budget: `+0.50usd`
 * or `+$0.50` (dollars; quoted in a shell), `+20turns`, `+5000tokens` (total), `+5000input`, `+5000output`,
 * `+30s` / `+5m` / `+1h` (time); a bare `+0.50` raises the limit the budget
 * ran out of, or its only limit.
 */
import { type BudgetAmounts, BudgetKind } from "@ramure/core/RunEvent"
import type { BudgetStatus } from "@ramure/core/RunStatus"
import { Either } from "effect"

const units: ReadonlyArray<readonly [RegExp, BudgetKind, number]> = [
  [/^(?:usd|dollars?)$/, "cost", 1],
  [/^(?:turns?)$/, "turns", 1],
  [/^(?:tokens?|total)$/, "totalTokens", 1],
  [/^(?:in|input)$/, "inputTokens", 1],
  [/^(?:out|output)$/, "outputTokens", 1],
  [/^ms$/, "time", 1],
  [/^s$/, "time", 1000],
  [/^m$/, "time", 60_000],
  [/^h$/, "time", 3_600_000]
]

const usage = "give the raise as +<amount>: +0.50usd (or '+$0.50'), +20turns, +5000tokens, +5000input, +5000output, +30s, +5m, +1h"

/** The amounts `text` adds to `budget`, or why it cannot be read. */
export const parse = (text: string, budget: BudgetStatus): Either.Either<BudgetAmounts, string> => {
  const match = /^\+\s*(\$)?\s*(\d+(?:\.\d+)?|\.\d+)\s*(\$)?\s*([a-z]*)$/i.exec(text.trim())
  if (match === null) return Either.left(`"${text}" is not a raise; ${usage}`)
  const [, dollar, number, trailingDollar, unit] = match
  const value = Number(number)
  if (!(value > 0)) return Either.left(`a raise must be more than 0 (got "${text}")`)
  if (dollar !== undefined || trailingDollar !== undefined) {
    return unit === "" ? Either.right({ cost: value }) : Either.left(`"${text}": dollars take no unit; ${usage}`)
  }
  if (unit !== "") {
    const found = units.find(([pattern]) => pattern.test(unit!.toLowerCase()))
    if (found === undefined) return Either.left(`"${unit}" is not a unit; ${usage}`)
    const [, kind, scale] = found
    return Either.right({ [kind]: kind === "cost" ? value : Math.round(value * scale) })
  }
  const limited = BudgetKind.literals.filter((kind) => budget.limits[kind] !== undefined)
  const kind = budget.exceeded?.kind ?? (limited.length === 1 ? limited[0] : undefined)
  if (kind === undefined) return Either.left(`the budget limits ${limited.join(", ")}: say which with a unit; ${usage}`)
  if (kind === "time") return Either.left(`say how long: +30s, +5m, +1h`)
  return Either.right({ [kind]: kind === "cost" ? value : Math.round(value) })
}
