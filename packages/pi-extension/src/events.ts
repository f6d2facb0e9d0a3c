/**
 * What pi does, as the `Protocol.AgentEvent`s the extension forwards to its
 * run: texts capped, thinking left out.
 */
import type * as Protocol from "@ramure/protocol/Protocol"

/** Cut `text` to at most `cap` UTF-8 bytes, never inside a character. */
export const truncate = (text: string, cap: number): { readonly text: string; readonly truncated: boolean } => {
  const bytes = Buffer.from(text, "utf8")
  if (bytes.length <= cap) return { text, truncated: false }
  let end = cap
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return { text: bytes.subarray(0, end).toString("utf8"), truncated: true }
}

export const textOf = (content: unknown): string =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
    ? content.flatMap((part) => (part?.type === "text" && typeof part.text === "string" ? [part.text] : [])).join("\n")
    : ""

/**
 * An answer aborted before the model said what it used (a request in flight
 * when the run stopped the agent): pi reports zeros, but its usage is unknown.
 */
const cutShortUnmeasured = (message: any): boolean =>
  message.stopReason === "aborted" &&
  [message.usage.input, message.usage.output, message.usage.cacheRead, message.usage.cacheWrite].every((n) => !n)

/**
 * The `MessageEnded` event for a pi message (user or assistant; others are not
 * forwarded): text capped, thinking left out, tool calls named, usage kept.
 */
export const messageEvent = (message: any, cap: number): Protocol.AgentEvent | undefined => {
  if (message?.role !== "user" && message?.role !== "assistant") return undefined
  const { text, truncated } = truncate(textOf(message.content), cap)
  const toolCalls: Array<string> = Array.isArray(message.content)
    ? message.content.flatMap((part: any) => (part?.type === "toolCall" ? [String(part.name)] : []))
    : []
  const usage = message.role === "assistant" && message.usage && !cutShortUnmeasured(message) ? message.usage : undefined
  const model = message.role === "assistant" && typeof message.model === "string"
    ? typeof message.provider === "string" ? `${message.provider}/${message.model}` : message.model
    : undefined
  return {
    _tag: "MessageEnded",
    role: message.role,
    text,
    ...(truncated ? { truncated } : {}),
    ...(toolCalls.length > 0 ? { toolCalls } : {}),
    ...(model === undefined ? {} : { model }),
    ...(usage
      ? {
        usage: {
          input: usage.input ?? 0,
          output: usage.output ?? 0,
          cacheRead: usage.cacheRead ?? 0,
          cacheWrite: usage.cacheWrite ?? 0,
          cost: usage.cost?.total ?? 0
        }
      }
      : {})
  }
}
