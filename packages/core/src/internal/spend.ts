/**
 * What one model answer spends, in the kinds a budget counts (shared by the
 * run's budgets and the status fold, so both count alike).
 *
 * @internal
 */
import type * as Protocol from "@ramure/protocol/Protocol"

export interface Spend {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly totalTokens: number
  readonly cost: number
  readonly turns: number
}

export const zero: Spend = { inputTokens: 0, outputTokens: 0, totalTokens: 0, cost: 0, turns: 0 }

/** One model answer (a turn): its prompt tokens count cache reads and writes too. */
export const ofAnswer = (usage: Protocol.Usage | undefined): Spend => {
  if (usage === undefined) return { ...zero, turns: 1 }
  const input = usage.input + (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0)
  return { inputTokens: input, outputTokens: usage.output, totalTokens: input + usage.output, cost: usage.cost, turns: 1 }
}

export const add = (a: Spend, b: Spend): Spend => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens,
  totalTokens: a.totalTokens + b.totalTokens,
  cost: a.cost + b.cost,
  turns: a.turns + b.turns
})
