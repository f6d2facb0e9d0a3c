/**
 * What an agent's saved pi session says about its run's messages. pi keeps
 * the conversation in the agent's pi directory; beside each user message
 * that came from the run, the extension saves the message's `seq` in the
 * agent's log (a custom session entry, which the model never sees). A pi
 * started again for a resumed run (`--continue`) reads it back: the run
 * replays the agent's log from its start (tools come back), and the messages
 * the conversation already holds are not handed to pi a second time.
 */
import type { ExtensionAPI } from "@mariozechner/pi-coding-agent"
import { textOf } from "./events.js"

/** The `customType` of the session entry that records a delivered message's `seq`. */
export const deliveredType = "ramure-delivered"

export interface Saved {
  /** The `seq` of the last run message the conversation holds (0: none). */
  readonly delivered: number
  /** The conversation stopped in the middle of the agent's work (a prompt, a tool result or a tool call unanswered by the model). */
  readonly unfinished: boolean
  /** Tool calls the conversation holds: more than the earlier pis ran, so this pi's call ids (`…#<n>`) are new. */
  readonly toolCalls: number
}

interface Entry {
  readonly type: string
  readonly customType?: string
  readonly data?: unknown
  readonly message?: { readonly role?: string; readonly stopReason?: string; readonly content?: unknown }
}

/** What the saved conversation (the session's current branch) holds. */
export const saved = (branch: ReadonlyArray<Entry>): Saved => {
  let delivered = 0
  let unfinished = false
  let toolCalls = 0
  for (const entry of branch) {
    if (entry.type === "custom" && entry.customType === deliveredType) {
      const seq = (entry.data as { seq?: unknown } | undefined)?.seq
      if (typeof seq === "number" && seq > delivered) delivered = seq
    } else if (entry.type === "message" && entry.message !== undefined) {
      const { content, role, stopReason } = entry.message
      if (role === "assistant" && Array.isArray(content)) {
        toolCalls += content.filter((part) => (part as { type?: unknown } | null)?.type === "toolCall").length
      }
      unfinished = role === "user" || role === "toolResult" || (role === "assistant" && stopReason === "toolUse")
    }
  }
  return { delivered, unfinished, toolCalls }
}

/**
 * Run messages handed to pi, until pi has taken each into its conversation
 * (its `message_end`): then the message's `seq` is saved beside it.
 */
export const deliveries = (pi: Pick<ExtensionAPI, "appendEntry">) => {
  const handed: Array<{ readonly text: string; readonly seq: number }> = []
  return {
    handed: (text: string, seq: number) => void handed.push({ text, seq }),
    /** pi ended a user message: the oldest handed one with its text (pi keeps their order) is in the conversation. */
    userMessageEnded: (content: unknown) => {
      if (handed.length === 0) return
      const text = textOf(content)
      const at = Math.max(0, handed.findIndex((message) => message.text === text))
      const [message] = handed.splice(0, at + 1).slice(-1)
      if (message !== undefined) pi.appendEntry(deliveredType, { seq: message.seq })
    }
  }
}
