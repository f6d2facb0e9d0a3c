import { describe, expect, it } from "@effect/vitest"
import { rewritePrompt } from "../src/identity.js"
import { messageEvent, truncate } from "../src/events.js"

describe("pi extension helpers", () => {
  it("rewrites a pooled pi's start-up prompt into the one pi builds for the agent", () => {
    const date = new Date()
    const today = `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`
    const identity = { agentId: "w", cwd: "/runs/w", startCwd: "/runs/.pool", systemPrompt: "Be brief." }
    const startUp = "You are pi.\n\nGuidelines:\n- x\nCurrent date: 2020-01-01\nCurrent working directory: /runs/.pool"
    expect(rewritePrompt(startUp, identity)).toBe(
      `You are pi.\n\nGuidelines:\n- x\n\nBe brief.\nCurrent date: ${today}\nCurrent working directory: /runs/w`
    )
    expect(rewritePrompt(startUp, { ...identity, systemPrompt: undefined })).toBe(
      `You are pi.\n\nGuidelines:\n- x\nCurrent date: ${today}\nCurrent working directory: /runs/w`
    )
    // Anything else — a user message, an already rewritten prompt — stays as it is.
    expect(rewritePrompt("Current working directory: /runs/.pool is where?", identity)).toBe(
      "Current working directory: /runs/.pool is where?"
    )
    const rewritten = rewritePrompt(startUp, identity)
    expect(rewritePrompt(rewritten, identity)).toBe(rewritten)
  })

  it("truncates to a byte cap without cutting a character", () => {
    expect(truncate("hello", 10)).toEqual({ text: "hello", truncated: false })
    expect(truncate("hello", 3)).toEqual({ text: "hel", truncated: true })
    // "é" is two bytes, "€" three.
    expect(truncate("aé€", 2)).toEqual({ text: "a", truncated: true })
    expect(truncate("aé€", 5)).toEqual({ text: "aé", truncated: true })
    expect(truncate("aé€", 6)).toEqual({ text: "aé€", truncated: false })
  })

  it("forwards assistant text, tool call names, usage and the model that answered, never thinking", () => {
    const message = {
      role: "assistant",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      content: [
        { type: "thinking", thinking: "secret reasoning" },
        { type: "text", text: "Let me look." },
        { type: "toolCall", id: "c1", name: "bash", arguments: { command: "ls" } }
      ],
      usage: { input: 10, output: 5, cacheRead: 2, cacheWrite: 0, totalTokens: 17, cost: { total: 0.25 } }
    }
    expect(messageEvent(message, 100)).toEqual({
      _tag: "MessageEnded",
      role: "assistant",
      text: "Let me look.",
      toolCalls: ["bash"],
      model: "anthropic/claude-sonnet-4-5",
      usage: { input: 10, output: 5, cacheRead: 2, cacheWrite: 0, cost: 0.25 }
    })
    expect(messageEvent(message, 3)).toMatchObject({ text: "Let", truncated: true })
  })

  it("an answer aborted before the model reported its usage carries none (unknown, not zero); one aborted after keeps it", () => {
    const zeros = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, totalTokens: 0, cost: { total: 0 } }
    const aborted = { role: "assistant", content: [], stopReason: "aborted", usage: zeros }
    expect(messageEvent(aborted, 100)).toEqual({ _tag: "MessageEnded", role: "assistant", text: "" })
    const measured = { ...aborted, usage: { ...zeros, input: 40, totalTokens: 40 } }
    expect(messageEvent(measured, 100)).toMatchObject({ usage: { input: 40, output: 0 } })
    expect(messageEvent({ ...aborted, stopReason: "stop" }, 100)).toMatchObject({ usage: { input: 0, output: 0 } })
  })

  it("forwards user text (string or parts) and nothing for other roles", () => {
    expect(messageEvent({ role: "user", content: "hi" }, 100)).toEqual({ _tag: "MessageEnded", role: "user", text: "hi" })
    expect(messageEvent({ role: "user", content: [{ type: "text", text: "a" }, { type: "image" }] }, 100)).toMatchObject({
      text: "a"
    })
    expect(messageEvent({ role: "toolResult", content: [] }, 100)).toBeUndefined()
    expect(messageEvent({ role: "custom", content: "x" }, 100)).toBeUndefined()
  })
})
