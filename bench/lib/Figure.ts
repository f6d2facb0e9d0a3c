/**
 * What a benchmark figure produces: named metrics, each a list of samples
 * from repeated runs, with an optional target judged on the median.
 */
import type { Effect } from "effect"

export type Size = "full" | "smoke"

export interface Target {
  readonly op: "<=" | "<" | ">=" | ">"
  readonly value: number
}

export interface Metric {
  readonly name: string
  readonly unit: string
  /** One value per repetition. */
  readonly samples: ReadonlyArray<number>
  readonly target?: Target
  /** Digits after the decimal point when printed (default: chosen from the magnitude). */
  readonly digits?: number
}

export interface FigureResult {
  readonly id: number
  readonly title: string
  /** What is compared with what, and how it was measured. */
  readonly method: string
  readonly metrics: ReadonlyArray<Metric>
  /** Exact counts that a smoke test can check (e.g. log lines on disk vs entries written). */
  readonly counts?: Readonly<Record<string, number>>
  /** Findings: what limits the figure, caveats. */
  readonly notes?: ReadonlyArray<string>
  /** Set when the figure could not run here (missing dependency); metrics are then empty. */
  readonly skipped?: string
}

export type Figure = (size: Size) => Effect.Effect<FigureResult, unknown>

// ---------------------------------------------------------------------------
// Statistics

export interface Summary {
  readonly n: number
  readonly median: number
  readonly low: number
  readonly high: number
  /** "min–max" for fewer than 10 samples, else "p10–p90". */
  readonly spread: "min–max" | "p10–p90"
}

const quantile = (sorted: ReadonlyArray<number>, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const position = (sorted.length - 1) * q
  const lower = Math.floor(position)
  const upper = Math.ceil(position)
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower)
}

export const summarize = (samples: ReadonlyArray<number>): Summary => {
  const sorted = [...samples].sort((a, b) => a - b)
  const wide = sorted.length >= 10
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    low: wide ? quantile(sorted, 0.1) : sorted[0] ?? Number.NaN,
    high: wide ? quantile(sorted, 0.9) : sorted.at(-1) ?? Number.NaN,
    spread: wide ? "p10–p90" : "min–max"
  }
}

export const meets = (target: Target, value: number): boolean => {
  switch (target.op) {
    case "<=":
      return value <= target.value
    case "<":
      return value < target.value
    case ">=":
      return value >= target.value
    case ">":
      return value > target.value
  }
}

const digitsFor = (value: number): number => {
  const magnitude = Math.abs(value)
  if (magnitude >= 1000) return 0
  if (magnitude >= 100) return 1
  if (magnitude >= 10) return 1
  if (magnitude >= 1) return 2
  return 3
}

export const formatNumber = (value: number, digits?: number): string => {
  if (!Number.isFinite(value)) return String(value)
  const d = digits ?? digitsFor(value)
  return value.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })
}

export const formatTarget = (target: Target, unit: string): string =>
  `${target.op.replace("<=", "≤").replace(">=", "≥")} ${formatNumber(target.value, Number.isInteger(target.value) ? 0 : undefined)}${unit === "" ? "" : ` ${unit}`}`

// ---------------------------------------------------------------------------
// Measuring

/** Milliseconds on the monotonic clock (`performance.now()`). */
export const now = (): number => performance.now()

/** Run `count` rounds of `steps` in alternating order (a, b, a, b … then b, a …) so drift hits both alike. */
export const interleaved = <A>(count: number, steps: ReadonlyArray<A>): ReadonlyArray<A> => {
  const order: Array<A> = []
  for (let i = 0; i < count; i++) order.push(...(i % 2 === 0 ? steps : [...steps].reverse()))
  return order
}
