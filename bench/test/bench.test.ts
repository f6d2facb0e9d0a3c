/**
 * Every figure at smoke size: it runs, cleans up, and produces sane numbers.
 * No timing assertions — the machine may be arbitrarily slow or busy.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { figures } from "../figures.js"
import type { FigureResult } from "../lib/Figure.js"
import { type Environment, markdown, merge, table } from "../lib/report.js"

/** Units that count events rather than measure them: zero is a sane value. */
const countUnits = new Set(["entries"])
/** A growth is a difference: any finite value is sane. */
const isDifference = (name: string) => name.includes("growth")

const expectSane = (result: FigureResult) => {
  expect(result.metrics.length).toBeGreaterThan(0)
  for (const metric of result.metrics) {
    expect(metric.samples.length, metric.name).toBeGreaterThan(0)
    for (const sample of metric.samples) {
      expect(Number.isFinite(sample), `${metric.name}: ${sample}`).toBe(true)
      if (isDifference(metric.name)) continue
      if (countUnits.has(metric.unit)) expect(sample, metric.name).toBeGreaterThanOrEqual(0)
      else expect(sample, metric.name).toBeGreaterThan(0)
    }
  }
}

// The figures are independent (own runs, homes, child processes): run them side by side.
describe.concurrent("benchmarks at smoke size", () => {
  for (const figure of figures) {
    it.live(`${figure.id}. ${figure.name} produces sane numbers`, () =>
      Effect.gen(function* () {
        const result = yield* figure.run("smoke")
        expect(result.id).toBe(figure.id)
        // Real-pi and CLI figures are skipped where pi, tmux or the CLI are missing.
        if (result.skipped !== undefined) return
        expectSane(result)
        if (figure.id === 6) {
          const counts = result.counts!
          expect(counts.entriesLogged).toBeGreaterThan(0)
          expect(counts.linesOnDisk).toBe(counts.entriesLogged)
          expect(counts.missing).toBe(0)
          expect(counts.doubled).toBe(0)
        }
        if (figure.id === 7) expect(result.counts!.agentsReported).toBe(10)
        if (figure.id === 9) expect(result.counts!.calls).toBe(4_000)
        // Every agent of the killed run was taken over, none started again.
        if (figure.id === 11) expect(result.counts).toEqual({ adopted: 2, restarted: 0 })
      }), 120_000)
  }
})

describe("report", () => {
  it("renders a table and BENCHMARKS.md from results", () => {
    const sample: FigureResult = {
      id: 1,
      title: "Example",
      method: "one sample",
      metrics: [{ name: "ratio", unit: "×", samples: [1.5, 2.5, 2], target: { op: "<=", value: 2 } }]
    }
    expect(table([sample])).toContain("2.00×")
    const md = markdown([sample, { id: 2, title: "Other", method: "", metrics: [], skipped: "pi is not installed" }], {
      cpu: "cpu",
      cores: 2,
      memoryGiB: 8,
      node: "v20",
      platform: "Linux",
      date: "2026-01-01",
      commit: undefined,
      loadBefore: [1, 1, 1],
      loadAfter: [1, 1, 1],
      durationS: 1,
      size: "smoke"
    })
    expect(md).toContain("| 1. Example | ratio | 2.00× | 1.50–2.50 (min–max) | 3 | ≤ 2× | yes |")
    expect(md).toContain("Skipped: pi is not installed.")
  })
})

describe("report merge", () => {
  const env = (date: string): Environment => ({
    cpu: "cpu",
    cores: 2,
    memoryGiB: 8,
    node: "v20",
    platform: "Linux",
    date,
    commit: undefined,
    loadBefore: [1, 1, 1],
    loadAfter: [2, 2, 2],
    durationS: 1,
    size: "full"
  })
  const figure = (id: number, value: number): FigureResult => ({
    id,
    title: `Figure ${id}`,
    method: `method ${id}`,
    metrics: [{ name: "m", unit: "ms", samples: [value] }],
    notes: [`note ${id}`]
  })

  it("figures measured again replace theirs; the others are kept; new ones go in figure order; the header says when", () => {
    const before = markdown([figure(1, 10), figure(2, 20), figure(4, 40)], env("first"))
    const after = merge(before, [figure(2, 21), figure(3, 30)], env("second"))
    expect(after).toContain("first")
    expect(after).toContain("- Figure 2 measured second, full size, load 1.0 / 1.0 / 1.0 → 2.0 / 2.0 / 2.0.")
    expect(after).toContain("- Figure 3 measured second")
    const summary = after.split("\n").filter((line) => /^\| \d\. /.test(line))
    expect(summary.map((line) => line.split(" | ").slice(0, 3).join(" | "))).toEqual([
      "| 1. Figure 1 | m | 10.0 ms",
      "| 2. Figure 2 | m | 21.0 ms",
      "| 3. Figure 3 | m | 30.0 ms",
      "| 4. Figure 4 | m | 40.0 ms"
    ])
    expect(after.match(/^## \d\. .*$/gm)).toEqual(["## 1. Figure 1", "## 2. Figure 2", "## 3. Figure 3", "## 4. Figure 4"])
    expect(after).toContain("| m | 21.0 ms |")
    expect(after).not.toContain("| m | 20.0 ms |")
    // Merging again replaces the line about figure 2, it does not add another.
    expect(merge(after, [figure(2, 22)], env("third")).match(/- Figure 2 measured/g)).toHaveLength(1)
  })
})
