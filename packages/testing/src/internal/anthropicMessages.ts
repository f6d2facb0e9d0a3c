/**
 * The Anthropic Messages API (`POST /v1/messages`) as the scripted model
 * speaks it: requests decoded into the same view as OpenAI's (system, user,
 * assistant and tool messages; tools with their JSON Schema), answers as the
 * streamed events (or the message) Anthropic sends.
 *
 * @internal
 */
import { Effect, Schema } from "effect"

/** The request, in the shape ScriptedModel shows every API's requests. */
export interface Request {
  readonly model: string
  readonly stream: boolean
  readonly messages: ReadonlyArray<{
    readonly role: string
    readonly content: string
    readonly tool_calls?: ReadonlyArray<{ readonly id: string; readonly type: string; readonly function: { readonly name: string; readonly arguments: string } }>
    readonly tool_call_id?: string
  }>
  readonly tools: ReadonlyArray<{ readonly name: string; readonly description?: string; readonly parameters?: unknown }>
}

export interface Answer {
  readonly text: string
  readonly toolCalls: ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: string }>
}

export interface Usage {
  readonly input: number
  readonly output: number
}

const TextPart = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })

const Block = Schema.Struct({
  type: Schema.String,
  text: Schema.optional(Schema.String),
  id: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  input: Schema.optional(Schema.Unknown),
  tool_use_id: Schema.optional(Schema.String),
  content: Schema.optional(Schema.Union(Schema.String, Schema.Array(TextPart)))
})

const Raw = Schema.Struct({
  model: Schema.String,
  stream: Schema.optional(Schema.Boolean),
  system: Schema.optional(Schema.Union(Schema.String, Schema.Array(TextPart))),
  messages: Schema.Array(Schema.Struct({ role: Schema.String, content: Schema.Union(Schema.String, Schema.Array(Block)) })),
  tools: Schema.optional(
    Schema.Array(
      Schema.Struct({
        name: Schema.String,
        description: Schema.optionalWith(Schema.String, { exact: true }),
        input_schema: Schema.optionalWith(Schema.Unknown, { exact: true })
      })
    )
  )
})

const text = (content: string | ReadonlyArray<{ readonly text?: string | undefined }> | undefined): string =>
  typeof content === "string" ? content : (content ?? []).map((part) => part.text ?? "").join("")

const toRequest = (raw: typeof Raw.Type): Request => {
  const messages: Array<Request["messages"][number]> = []
  if (raw.system !== undefined) messages.push({ role: "system", content: text(raw.system) })
  for (const message of raw.messages) {
    if (typeof message.content === "string") {
      messages.push({ role: message.role, content: message.content })
      continue
    }
    const blocks = message.content
    if (message.role === "assistant") {
      const calls = blocks.filter((block) => block.type === "tool_use").map((block) => ({
        id: block.id ?? "",
        type: "function",
        function: { name: block.name ?? "", arguments: JSON.stringify(block.input ?? {}) }
      }))
      messages.push({
        role: "assistant",
        content: text(blocks.filter((block) => block.type === "text")),
        ...(calls.length > 0 ? { tool_calls: calls } : {})
      })
      continue
    }
    // A user turn: tool results (as OpenAI's `tool` messages), then what the user wrote.
    for (const block of blocks.filter((block) => block.type === "tool_result")) {
      messages.push({ role: "tool", content: text(block.content), tool_call_id: block.tool_use_id ?? "" })
    }
    const written = blocks.filter((block) => block.type === "text")
    if (written.length > 0) messages.push({ role: message.role, content: text(written) })
  }
  return {
    model: raw.model,
    stream: raw.stream === true,
    messages,
    tools: (raw.tools ?? []).map((tool) => ({
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      ...(tool.input_schema === undefined ? {} : { parameters: tool.input_schema })
    }))
  }
}

/** A request body, decoded. */
export const decode = (body: string) => Effect.map(Schema.decodeUnknown(Schema.parseJson(Raw))(body), toRequest)

const stopReason = (answer: Answer) => (answer.toolCalls.length > 0 ? "tool_use" : "end_turn")

const content = (answer: Answer) => [
  ...(answer.text.length > 0 ? [{ type: "text", text: answer.text }] : []),
  ...answer.toolCalls.map((call) => ({ type: "tool_use", id: call.id, name: call.name, input: JSON.parse(call.arguments) }))
]

/** The streamed answer: its server-sent events; tool input arrives in two pieces, as from the real API. */
export const events = (request: Request, answer: Answer, id: string, usage: Usage): ReadonlyArray<string> => {
  const events: Array<[string, object]> = [[
    "message_start",
    {
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model: request.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: usage.input, output_tokens: 1 }
      }
    }
  ]]
  let index = 0
  if (answer.text.length > 0) {
    events.push(
      ["content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } }],
      ["content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text: answer.text } }],
      ["content_block_stop", { type: "content_block_stop", index }]
    )
    index++
  }
  for (const call of answer.toolCalls) {
    const half = Math.floor(call.arguments.length / 2)
    events.push(
      ["content_block_start", { type: "content_block_start", index, content_block: { type: "tool_use", id: call.id, name: call.name, input: {} } }],
      ["content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: call.arguments.slice(0, half) } }],
      ["content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: call.arguments.slice(half) } }],
      ["content_block_stop", { type: "content_block_stop", index }]
    )
    index++
  }
  events.push(
    ["message_delta", { type: "message_delta", delta: { stop_reason: stopReason(answer), stop_sequence: null }, usage: { output_tokens: usage.output } }],
    ["message_stop", { type: "message_stop" }]
  )
  return events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
}

/** The answer as one message (a request without `stream`). */
export const message = (request: Request, answer: Answer, id: string, usage: Usage) => ({
  id,
  type: "message",
  role: "assistant",
  model: request.model,
  content: content(answer),
  stop_reason: stopReason(answer),
  stop_sequence: null,
  usage: { input_tokens: usage.input, output_tokens: usage.output }
})

/** An error as the Anthropic API sends it. */
export const error = (message: string) => ({ type: "error", error: { type: "invalid_request_error", message } })
