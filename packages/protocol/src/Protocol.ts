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
 * A dropped connection therefore loses nothing. A connection's first `Hello`
 * may ride in its upgrade request (`HELLO_HEADER`).
 */
import { Either, Predicate, Schema } from "effect"
import { maxDepth, tooDeep } from "./internal/wire.js"

// The constants and the depth check live in a module without Schema: agents load them at start.
export { agentPath, CloseCode, controlPath, HELLO_HEADER, maxDepth, poolPath, TOKEN_HEADER, version } from "./internal/wire.js"

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
/**
 * One model turn (a request to the model and the tool calls it asked for):
 * sent as its request is about to go to the model — an agent under a budget
 * waits for the run's answer (`Budget`) before it sends it.
 */
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
/**
 * An event the agent could not send (over the run's frame limit, or not
 * JSON): what it was and why, instead of it.
 */
export const EventDropped = Schema.TaggedStruct("EventDropped", {
  /** The dropped event's tag. */
  event: Schema.String,
  reason: Schema.String
})
/**
 * The agent's run was unreachable and it waited, frozen, for it to come
 * back: sent once it is connected again.
 */
export const AgentPaused = Schema.TaggedStruct("AgentPaused", {
  /** How long the run was unreachable. */
  durationMs: Schema.Number,
  /** Model requests held back meanwhile (sent now). */
  heldRequests: Schema.Number,
  /** Tool executions held back meanwhile (started now). */
  heldTools: Schema.Number
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
  ModelError,
  EventDropped,
  AgentPaused
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
export const Synced = Schema.TaggedStruct("Synced", {
  seq: Schema.Number,
  /** The largest frame the run accepts, in bytes: an agent sends nothing larger. */
  maxFrameBytes: Schema.optional(Schema.Number)
})

/**
 * Where the agent stands against the budgets above it (its own, its
 * process's and every ancestor's), sent to an agent under any budget: on
 * connecting, whenever it changes, and in answer to each `TurnStarted` it
 * reports (`answers: 1`). The agent starts no model request while a
 * `TurnStarted` of its is unanswered or the state is not `open`; `stopped`
 * also ends the turn in progress.
 */
export const Budget = Schema.TaggedStruct("Budget", {
  state: Schema.Literal("open", "paused", "stopped"),
  /** How many of the agent's `TurnStarted` events this frame answers (0 or 1). */
  answers: Schema.Number,
  /** Why the agent may not go on (which budget, its limit and spend). */
  reason: Schema.optional(Schema.String)
})
export type Budget = typeof Budget.Type

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
  Budget,
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
  const call = toolCall(json as object)
  if (call !== undefined) return Either.right(call)
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

/**
 * A message this side built itself from typed values, as a frame. Every
 * schema of the protocol encodes its fields as they are, so this is the
 * frame `encode` makes, without checking again what the types already say.
 */
export const encodeTrusted = (message: Message): string => JSON.stringify(message)

/**
 * The message almost every frame is, decoded without the union's schema: the
 * value its schema gives (unknown fields left out), or `undefined` to let the
 * schema decide (and say what is wrong).
 */
const toolCall = (json: object): typeof ToolCall.Type | undefined => {
  const fields = json as Record<string, unknown>
  if (fields._tag !== "ToolCall" || Array.isArray(json) || !Object.hasOwn(json, "args")) return undefined
  const { callId, tool, args } = fields
  return typeof callId === "string" && typeof tool === "string" ? { _tag: "ToolCall", callId, tool, args } : undefined
}
