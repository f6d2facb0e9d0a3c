import { describe as group, expect, it } from "@effect/vitest"
import type { LogEntry, RunEvent } from "@ramure/core/RunEvent"
import { describe } from "../src/Format.js"

const entry = (event: RunEvent): LogEntry => ({ n: 1, ts: new Date().toISOString(), process: "main", agent: "w", event })

group("what `ramure tail` says about an agent's events", () => {
  it("a pause says how long the run was unreachable and what the agent held back", () => {
    expect(describe(entry({ _tag: "AgentPaused", durationMs: 12_345, heldRequests: 1, heldTools: 0 }))).toBe(
      "resumed after its run was unreachable for 12.3 s (held 1 model request, 0 tools)"
    )
    expect(describe(entry({ _tag: "AgentPaused", durationMs: 800, heldRequests: 2, heldTools: 1 }))).toBe(
      "resumed after its run was unreachable for 0.8 s (held 2 model requests, 1 tool)"
    )
  })

  it("an event the agent could not send says which and why", () => {
    expect(describe(entry({ _tag: "EventDropped", event: "MessageEnded", reason: "it is 20 bytes, over the run's limit" }))).toBe(
      "could not report a MessageEnded event: it is 20 bytes, over the run's limit"
    )
  })
})
