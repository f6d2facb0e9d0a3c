/**
 * What a pi started again for a resumed run reads back from its saved
 * session: which run messages its conversation holds, whether it stopped in
 * the middle of the agent's work, how many tool calls it made.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Session from "../src/session.js"

const message = (role: string, extra: Record<string, unknown> = {}) => ({ type: "message", message: { role, ...extra } })
const delivered = (seq: number) => ({ type: "custom", customType: Session.deliveredType, data: { seq } })
const toolCall = (name: string) => ({ type: "toolCall", id: name, name, arguments: {} })

describe("the saved session of an agent", () => {
  it("an empty session holds no run message and no unfinished work", () => {
    expect(Session.saved([])).toEqual({ delivered: 0, unfinished: false, toolCalls: 0 })
  })

  it("holds the run messages up to the last saved seq, and counts the tool calls the model made", () => {
    const branch = [
      delivered(3),
      message("user", { content: "task" }),
      message("assistant", { stopReason: "toolUse", content: [toolCall("a"), toolCall("b")] }),
      message("toolResult"),
      message("toolResult"),
      message("assistant", { stopReason: "stop", content: [{ type: "text", text: "done" }] }),
      delivered(5),
      message("user", { content: "more" }),
      message("assistant", { stopReason: "stop", content: "ok" })
    ]
    expect(Session.saved(branch)).toEqual({ delivered: 5, unfinished: false, toolCalls: 2 })
  })

  it("stopped mid-work: after a prompt, a tool result, or a tool call the model made", () => {
    expect(Session.saved([message("user")]).unfinished).toBe(true)
    expect(Session.saved([message("user"), message("assistant", { stopReason: "toolUse", content: [toolCall("x")] })]).unfinished).toBe(true)
    expect(Session.saved([message("user"), message("assistant", { stopReason: "toolUse" }), message("toolResult")]).unfinished).toBe(true)
    expect(Session.saved([message("user"), message("assistant", { stopReason: "stop" })]).unfinished).toBe(false)
  })

  it("saves a handed-over message's seq once pi has it in the conversation, matching by text, in order", () => {
    const saved: Array<unknown> = []
    const deliveries = Session.deliveries({ appendEntry: (type: string, data?: unknown) => void saved.push([type, data]) })
    deliveries.userMessageEnded("nothing was handed over")
    expect(saved).toEqual([])
    deliveries.handed("first", 4)
    deliveries.handed("second", 6)
    deliveries.userMessageEnded([{ type: "text", text: "second" }])
    // The first was passed over (pi took both; the later one ended first): the later seq covers it.
    expect(saved).toEqual([[Session.deliveredType, { seq: 6 }]])
    deliveries.userMessageEnded("first")
    expect(saved).toHaveLength(1)
  })
})
