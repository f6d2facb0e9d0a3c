/**
 * The part of the protocol (see `Protocol`) an agent needs, without Schema:
 * every pi loads it at start, where building Schema and the protocol's
 * schemas would cost a good part of the extension's load. The run, the CLI
 * and the tests decode with `Protocol`'s schemas; this module's decoder
 * accepts exactly what they accept of the messages a run sends an agent
 * (checked by a property test) and builds the same values.
 *
 * @internal
 */
import type * as Protocol from "../Protocol.js"

export const version = 2

export const TOKEN_HEADER = "x-ramure-token"

/**
 * An agent's first `Hello` may ride in its upgrade request, URI-encoded JSON:
 * the run then knows the agent as soon as the request arrives, a round trip
 * before a first frame could.
 */
export const HELLO_HEADER = "x-ramure-hello"

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

/**
 * Deepest nesting of arrays and objects a frame may have. Deeper frames are
 * `malformed`: they would overflow the stack of recursive consumers
 * (`JSON.stringify` in the logs, error formatting).
 */
export const maxDepth = 128

/** Whether arrays and objects in a JSON text nest deeper than `maxDepth` (string contents are skipped). */
export const tooDeep = (text: string): boolean => {
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

// ---------------------------------------------------------------------------
// What an agent sends and receives

/** Messages an agent (or a pre-started pi) sends. */
export type AgentMessage =
  | typeof Protocol.Hello.Type
  | typeof Protocol.ToolCall.Type
  | typeof Protocol.Event.Type
  | typeof Protocol.PoolHello.Type

/** Messages a run sends an agent (or a pre-started pi). */
export type RunMessage =
  | typeof Protocol.Entry.Type
  | typeof Protocol.Synced.Type
  | typeof Protocol.Budget.Type
  | typeof Protocol.ProtocolError.Type
  | typeof Protocol.Assign.Type

/** An agent's message as a frame (its schemas encode every field as it is). */
export const encode = (message: AgentMessage): string => JSON.stringify(message)

type Fields = Record<string, unknown>

const isObject = (value: unknown): value is Fields => typeof value === "object" && value !== null && !Array.isArray(value)
const isString = (value: unknown): value is string => typeof value === "string"
const isNumber = (value: unknown): value is number => typeof value === "number"

/** `value` if every listed field has the wanted type (optional ones may be absent), else `undefined`. */
const pick = <A>(
  value: Fields,
  required: Record<string, (field: unknown) => boolean>,
  optional: Record<string, (field: unknown) => boolean> = {}
): A | undefined => {
  const out: Fields = {}
  for (const [key, check] of Object.entries(required)) {
    if (!Object.hasOwn(value, key) || !check(value[key])) return undefined
    out[key] = value[key]
  }
  for (const [key, check] of Object.entries(optional)) {
    if (!Object.hasOwn(value, key)) continue
    if (!check(value[key])) return undefined
    out[key] = value[key]
  }
  return out as A
}

const tool = (value: unknown): Protocol.ToolDefinition | undefined =>
  isObject(value) ? pick(value, { name: isString, description: isString }, { parameters: () => true }) : undefined

const entryBody = (value: unknown): Protocol.EntryBody | undefined => {
  if (!isObject(value)) return undefined
  switch (value._tag) {
    case "ToolAdded": {
      const definition = tool(value.tool)
      return definition === undefined ? undefined : { _tag: "ToolAdded", tool: definition }
    }
    case "ToolRemoved":
      return pick(value, { _tag: isString, name: isString })
    case "ToolResult":
      return pick(value, { _tag: isString, callId: isString, isError: (field) => typeof field === "boolean", text: isString })
    case "UserMessage":
      return pick(value, { _tag: isString, text: isString }, { from: isString })
    case "Shutdown":
      return pick(value, { _tag: isString, reason: isString })
    default:
      return undefined
  }
}

const budgetStates: ReadonlySet<unknown> = new Set(["open", "paused", "stopped"])

const errorCodes: ReadonlySet<unknown> = new Set(["malformed", "unknown_message", "unknown_agent", "unauthorized", "too_large", "version"])

/**
 * A frame a run sent to an agent, or `undefined` for anything else (not
 * JSON, nested too deep, another message, a field of the wrong type).
 * Unknown fields are left out, as `Protocol.decode` leaves them out.
 */
export const decode = (frame: string): RunMessage | undefined => {
  if (tooDeep(frame)) return undefined
  let value: unknown
  try {
    value = JSON.parse(frame)
  } catch {
    return undefined
  }
  if (!isObject(value)) return undefined
  switch (value._tag) {
    case "Entry": {
      const body = entryBody(value.body)
      return body === undefined || !isNumber(value.seq) ? undefined : { _tag: "Entry", seq: value.seq, body }
    }
    case "Synced":
      return pick(value, { _tag: isString, seq: isNumber }, { maxFrameBytes: isNumber })
    case "Budget":
      return pick(value, { _tag: isString, state: (state) => budgetStates.has(state), answers: isNumber }, { reason: isString })
    case "ProtocolError":
      return pick(value, { _tag: isString, code: (code) => errorCodes.has(code), message: isString })
    case "Assign":
      return pick(value, { _tag: isString, agentId: isString, secret: isString, cwd: isString }, { systemPrompt: isString })
    default:
      return undefined
  }
}
