import { describe, expect, it } from "@effect/vitest"
import { configFromEnv, messageEvent, truncate } from "../src/index.js"

describe("pi extension helpers", () => {
  it("reads its connection from the environment, and nothing without it", () => {
    expect(configFromEnv({})).toBeUndefined()
    expect(configFromEnv({ RAMURE_URL: "ws://127.0.0.1:1", RAMURE_AGENT_ID: "a" })).toBeUndefined()
    expect(
      configFromEnv({ RAMURE_URL: "ws://127.0.0.1:1", RAMURE_AGENT_ID: "a", RAMURE_TOKEN: "t", RAMURE_EXECUTION_ID: "e" })
    ).toEqual({ url: "ws://127.0.0.1:1", agentId: "a", token: "t", executionId: "e", textCap: 4000 })
    expect(configFromEnv({ RAMURE_URL: "u", RAMURE_AGENT_ID: "a", RAMURE_TOKEN: "t", RAMURE_TEXT_CAP: "10" })?.textCap).toBe(10)
    expect(configFromEnv({ RAMURE_URL: "u", RAMURE_AGENT_ID: "a", RAMURE_TOKEN: "t", RAMURE_TEXT_CAP: "x" })?.textCap).toBe(4000)
  })

  it("truncates to a byte cap without cutting a character", () => {
    expect(truncate("hello", 10)).toEqual({ text: "hello", truncated: false })
    expect(truncate("hello", 3)).toEqual({ text: "hel", truncated: true })
    // "é" is two bytes, "€" three.
    expect(truncate("aé€", 2)).toEqual({ text: "a", truncated: true })
    expect(truncate("aé€", 5)).toEqual({ text: "aé", truncated: true })
    expect(truncate("aé€", 6)).toEqual({ text: "aé€", truncated: false })
  })

  it("forwards assistant text, tool call names and usage, never thinking", () => {
    const message = {
      role: "assistant",
      content: [
        { type: "thinking", thinking: "secret reasoning" },
        { type: "text", text: "Let me look." },
        { type: "toolCall", id: "c1", name: "bash", arguments: { command: "ls" } }
      ],
      usage: { input: 10, output: 5, cacheRead: 2, cacheWrite: 0, totalTokens: 17, cost: { total: 0.25 } }
    }
    expect(messageEvent(message, 100)).toEqual({
      _tag: "message_end",
      role: "assistant",
      text: "Let me look.",
      toolCalls: ["bash"],
      usage: { input: 10, output: 5, cacheRead: 2, cacheWrite: 0, cost: 0.25 }
    })
    expect(messageEvent(message, 3)).toMatchObject({ text: "Let", truncated: true })
  })

  it("forwards user text (string or parts) and nothing for other roles", () => {
    expect(messageEvent({ role: "user", content: "hi" }, 100)).toEqual({ _tag: "message_end", role: "user", text: "hi" })
    expect(messageEvent({ role: "user", content: [{ type: "text", text: "a" }, { type: "image" }] }, 100)).toMatchObject({
      text: "a"
    })
    expect(messageEvent({ role: "toolResult", content: [] }, 100)).toBeUndefined()
    expect(messageEvent({ role: "custom", content: "x" }, 100)).toBeUndefined()
  })
})
