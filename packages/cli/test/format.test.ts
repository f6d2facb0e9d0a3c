import { describe as group, expect, it } from "@effect/vitest"
import { describe } from "../src/Format.js"

group("what `ramure tail` says about an agent's events", () => {
  it("a pause says how long the run was unreachable and what the agent held back", () => {
    const entry = (event: object) => ({ ts: new Date().toISOString(), n: 1, type: "event", process: "main", agent: "w", data: { event } })
    expect(describe(entry({ _tag: "paused", durationMs: 12_345, heldRequests: 1, heldTools: 0 }))).toBe(
      "resumed after its run was unreachable for 12.3 s (held 1 model request, 0 tools)"
    )
    expect(describe(entry({ _tag: "paused", durationMs: 800, heldRequests: 2, heldTools: 1 }))).toBe(
      "resumed after its run was unreachable for 0.8 s (held 2 model requests, 1 tool)"
    )
  })
})
