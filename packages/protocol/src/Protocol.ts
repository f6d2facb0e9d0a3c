/**
 * The wire protocol between a run, its agents (the pi extension or the
 * scripted driver) and the `ramure` CLI: one Schema tagged union, JSON over
 * WebSocket.
 *
 * Agents connect to `/agents/<agentId>`, pre-started pis of a warm pool to
 * `/pool/<memberId>`; each sends its own secret in the `x-ramure-token`
 * header, checked before the WebSocket is accepted. (The CLI's `/control`
 * speaks `@effect/rpc`: `RunControl.ControlRpcs` in `@ramure/core`.)
 *
 * Everything the runtime tells an agent is an `Entry` of that agent's
 * replication log, numbered by `seq` (1, 2, 3, …). The agent remembers the
 * last `seq` it applied, asks for `Hello { after }` on every (re)connect,
 * applies entries strictly in order, drops duplicates and asks again on a gap.
 * A dropped connection therefore loses nothing.
 */
import { Either, Predicate, Schema } from "effect"

export const version = 2

export const TOKEN_HEADER = "x-ramure-token"

export const agentPath = (agentId: string): string => `/agents/${encodeURIComponent(agentId)}`
export const controlPath = "/control"
/** Where a pre-started pi of a warm pool waits for the agent it will become. */
export const poolPath = (memberId: string): string => `/pool/${encodeURIComponent(memberId)}`

/** Close codes (4000–4999 are free for applications). */
export const CloseCode = {
  normal: 1000,
  /** The frame is not what this path takes (not JSON, not a message of this channel). */
  invalidPayload: 1007,
  badPath: 4400,
  unauthorized: 4401,
  unknownAgent: 4404,
  replaced: 4409,
  /** The peer did not read what it was sent; it may reconnect. */
  slowReader: 4408,
  tooLarge: 4413,
  /** Too many frames the run could not act on. */
  tooManyBadFrames: 4429,
  protocolVersion: 4426,
  shutdown: 4000
} as const

// ---------------------------------------------------------------------------
// Tools

/** A tool as the model sees it. */
export const ToolDefinition = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  /** JSON Schema of the arguments object. */
  parameters: Schema.Unknown
})
export type ToolDefinition = typeof ToolDefinition.Type

// ---------------------------------------------------------------------------
// Agent events (forwarded by the extension, recorded in the agent's log)

export const Usage = Schema.Struct({
  input: Schema.Number,
  output: Schema.Number,
  cacheRead: Schema.optional(Schema.Number),
  cacheWrite: Schema.optional(Schema.Number),
  cost: Schema.Number
})
export type Usage = typeof Usage.Type

/** pi started working on a prompt (it is busy until `WorkEnded`). */
export const WorkStarted = Schema.TaggedStruct("WorkStarted", {})
/** pi finished a prompt and is idle. */
export const WorkEnded = Schema.TaggedStruct("WorkEnded", {})
/** One model turn (a request to the model and the tool calls it asked for). */
export const TurnStarted = Schema.TaggedStruct("TurnStarted", {})
export const TurnEnded = Schema.TaggedStruct("TurnEnded", {})
export const MessageEnded = Schema.TaggedStruct("MessageEnded", {
  role: Schema.Literal("assistant", "user"),
  /** Text, truncated to the extension's cap; thinking is never forwarded. */
  text: Schema.String,
  truncated: Schema.optional(Schema.Boolean),
  toolCalls: Schema.optional(Schema.Array(Schema.String)),
  usage: Schema.optional(Usage),
  /** The model that answered (`provider/model`), for assistant messages. */
  model: Schema.optional(Schema.String)
})
export const ToolExecutionStarted = Schema.TaggedStruct("ToolExecutionStarted", {
  toolCallId: Schema.String,
  tool: Schema.String
})
export const ToolExecutionEnded = Schema.TaggedStruct("ToolExecutionEnded", {
  toolCallId: Schema.String,
  tool: Schema.String,
  isError: Schema.Boolean,
  /** Result text, truncated to the extension's cap. */
  result: Schema.String
})
/** A model request failed (pi's assistant message ended with an error). */
export const ModelError = Schema.TaggedStruct("ModelError", {
  message: Schema.String
})

/** What an agent reports about its own work. */
export const AgentEvent = Schema.Union(
  WorkStarted,
  WorkEnded,
  TurnStarted,
  TurnEnded,
  MessageEnded,
  ToolExecutionStarted,
  ToolExecutionEnded,
  ModelError
)
export type AgentEvent = typeof AgentEvent.Type

// ---------------------------------------------------------------------------
// Replication log entries (runtime → agent)

export const ToolAdded = Schema.TaggedStruct("ToolAdded", { tool: ToolDefinition })
export const ToolRemoved = Schema.TaggedStruct("ToolRemoved", { name: Schema.String })
export const ToolResult = Schema.TaggedStruct("ToolResult", {
  callId: Schema.String,
  isError: Schema.Boolean,
  text: Schema.String
})
export const UserMessage = Schema.TaggedStruct("UserMessage", {
  text: Schema.String,
  /** The sending agent, for messages along a `connect` edge. */
  from: Schema.optional(Schema.String)
})
export const Shutdown = Schema.TaggedStruct("Shutdown", { reason: Schema.String })

export const EntryBody = Schema.Union(ToolAdded, ToolRemoved, ToolResult, UserMessage, Shutdown)
export type EntryBody = typeof EntryBody.Type

// ---------------------------------------------------------------------------
// Agent ⇄ runtime messages

/** First message on every agent connection, and the way to ask for a resync. */
export const Hello = Schema.TaggedStruct("Hello", {
  protocol: Schema.Number,
  agentId: Schema.String,
  /** The last `seq` the agent applied (0 on a fresh start). */
  after: Schema.Number
})
/** A tool call from the model. Re-sending the same `callId` is harmless. */
export const ToolCall = Schema.TaggedStruct("ToolCall", {
  callId: Schema.String,
  tool: Schema.String,
  args: Schema.Unknown
})
export const Event = Schema.TaggedStruct("Event", { event: AgentEvent })

/** First message of a pre-started (pooled) pi: it is up and waits for an `Assign`. */
export const PoolHello = Schema.TaggedStruct("PoolHello", {
  protocol: Schema.Number,
  memberId: Schema.String
})
/**
 * Turns a pooled pi into an agent: it takes the agent's identity, working
 * directory and system prompt, then connects as that agent with a `Hello`.
 */
export const Assign = Schema.TaggedStruct("Assign", {
  agentId: Schema.String,
  /** The agent's credential, which the pi connects with from now on. */
  secret: Schema.String,
  cwd: Schema.String,
  systemPrompt: Schema.optional(Schema.String)
})

/** One entry of the agent's replication log. */
export const Entry = Schema.TaggedStruct("Entry", { seq: Schema.Number, body: EntryBody })
export type Entry = typeof Entry.Type
/** Sent after the backlog of a `Hello`: the agent is up to date. */
export const Synced = Schema.TaggedStruct("Synced", { seq: Schema.Number })

// ---------------------------------------------------------------------------

/** Sent before closing a connection, or for a message that was rejected. */
export const ProtocolError = Schema.TaggedStruct("ProtocolError", {
  code: Schema.Literal("malformed", "unknown_message", "unknown_agent", "unauthorized", "too_large", "version"),
  message: Schema.String
})

/** Every message on a ramure WebSocket. */
export const Message = Schema.Union(
  Hello,
  ToolCall,
  Event,
  PoolHello,
  Assign,
  Entry,
  Synced,
  ProtocolError
)
export type Message = typeof Message.Type

export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  code: Schema.Literal("malformed", "unknown_message"),
  message: Schema.String
}) {}

const decodeMessage = Schema.decodeUnknownEither(Message)
const encodeMessage = Schema.encodeSync(Message)

/**
 * Deepest nesting of arrays and objects a frame may have. Deeper frames are
 * `malformed`: they would overflow the stack of recursive consumers
 * (`JSON.stringify` in the logs, error formatting).
 */
export const maxDepth = 128

/** Whether arrays and objects in a JSON text nest deeper than `maxDepth` (string contents are skipped). */
const tooDeep = (text: string): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // `\`: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

/**
 * Parse one WebSocket frame. Invalid JSON (or JSON nested deeper than
 * `maxDepth`) is `malformed`; valid JSON that is not a known message is
 * `unknown_message`. Never throws.
 */
export const decode = (raw: string): Either.Either<Message, DecodeError> => {
  if (tooDeep(raw)) {
    return Either.left(new DecodeError({ code: "malformed", message: `JSON nested deeper than ${maxDepth} levels` }))
  }
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch (error) {
    return Either.left(new DecodeError({ code: "malformed", message: `invalid JSON: ${String(error)}` }))
  }
  const tag = Predicate.hasProperty(json, "_tag") ? json._tag : undefined
  if (typeof tag !== "string") {
    return Either.left(new DecodeError({ code: "unknown_message", message: "message has no string _tag" }))
  }
  let problem: string
  try {
    const result = decodeMessage(json, { onExcessProperty: "ignore" })
    if (Either.isRight(result)) return Either.right(result.right)
    problem = result.left.message.slice(0, 500)
  } catch (error) {
    // The schema's union dispatch calls `String(_tag)`, which throws on an object such as `{"toString":1}`, at any depth.
    problem = String(error)
  }
  return Either.left(new DecodeError({ code: "unknown_message", message: `invalid ${tag.slice(0, 100)} message: ${problem}` }))
}

export const encode = (message: Message): string => JSON.stringify(encodeMessage(message))
