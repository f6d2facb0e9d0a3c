/**
 * Budgets as people read them (`ramure status`, `ramure web`, STATUS.md):
 * amounts in their units, and a budget against what was spent beneath it.
 * Types only from the rest of ramure: the web view's page loads it.
 */
import type * as RunEvent from "./RunEvent.js"
import type { BudgetStatus, RunStatus } from "./RunStatus.js"

export const kindNames: Record<RunEvent.BudgetKind, string> = {
  inputTokens: "input tokens",
  outputTokens: "output tokens",
  totalTokens: "tokens",
  cost: "cost",
  turns: "turns",
  time: "time"
}

/** An amount of a budget's kind: `$0.5000`, `30.0 s`, `1200`. */
export const budgetAmount = (kind: RunEvent.BudgetKind, n: number): string =>
  kind === "cost" ? `$${n.toFixed(4)}` : kind === "time" ? `${(n / 1000).toFixed(1)} s` : String(Math.round(n))

/** `cost $0.5000, turns 10`: the kinds of `amounts` that are set. */
export const budgetAmounts = (values: RunEvent.BudgetAmounts): string =>
  (Object.keys(kindNames) as Array<RunEvent.BudgetKind>)
    .flatMap((kind) => (values[kind] === undefined ? [] : [`${kindNames[kind]} ${budgetAmount(kind, values[kind]!)}`]))
    .join(", ")

/** One budget against its spend: `agent reviewer  cost $0.3100/$0.5000, turns 4/10  pause  exceeded: cost`. */
export const budgetRow = (budget: BudgetStatus, status: RunStatus, now = Date.now()): Array<string> => {
  const spentOf = (kind: RunEvent.BudgetKind): number =>
    kind === "time" ? (budget.until === undefined ? now : Date.parse(budget.until)) - Date.parse(budget.since) : budget.spent[kind]
  const limited = (Object.keys(kindNames) as Array<RunEvent.BudgetKind>).filter((kind) => budget.limits[kind] !== undefined)
  const ended = budget.until !== undefined ||
    (budget.agent === undefined
      ? status.processes.find((p) => p.path === budget.process)?.state !== "running"
      : status.agents.find((a) => a.id === budget.agent)?.state === "done")
  const state = budget.exceeded !== undefined
    ? `exceeded: ${kindNames[budget.exceeded.kind]}${budget.onExceeded === "pause" && !ended ? " (paused)" : ""}`
    : ended
    ? "ended"
    : budget.warned.length > 0
    ? `warned: ${budget.warned.map((kind) => kindNames[kind]).join(", ")}`
    : "ok"
  return [
    budget.agent === undefined ? `process ${budget.process}` : `agent ${budget.agent}`,
    limited.map((kind) => `${kindNames[kind]} ${budgetAmount(kind, spentOf(kind))}/${budgetAmount(kind, budget.limits[kind]!)}`)
      .join(", ") || "-",
    budget.onExceeded,
    state
  ]
}

