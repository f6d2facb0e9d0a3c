/**
 * A fake model server that replays scripted assistant turns, one script per agent. It speaks
 * OpenAI's chat completions (`openai-completions`) and Anthropic's messages API
 * (`anthropic-messages`), so tests see what pi really sends through either provider. pi talks
 * to it in tests and offline examples: point `models.json` at `baseUrl()` (see
 * {@link piModelsJson}) and every request consumes the agent's next turn.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Clock, Context, type Duration, Effect, Layer, Ref, Schema, Scope, Stream } from "effect"
import * as Http from "node:http"
import * as Anthropic from "./internal/anthropicMessages.js"

/** The provider APIs the server speaks (pi's `api` values). */
export type Api = "openai-completions" | "anthropic-messages"

/**
 * A tool call the scripted model makes; `arguments` is JSON-encoded for the
 * model. A function computes them from the request being answered (e.g. from
 * the tool results it carries).
 */
export interface ToolCallTurn {
  readonly name: string
  readonly arguments: unknown | ((request: ChatRequest) => unknown)
  /**
   * The call's id (default `call_<n>`, counting the agent's calls). Set it to
   * play a server that reuses ids, or sends empty ones.
   */
  readonly id?: string
}

/** One scripted assistant answer. */
export interface Turn {
  readonly text?: string
  readonly toolCalls?: ReadonlyArray<ToolCallTurn>
  /** Checks on the request that this turn answers (e.g. on the tool results it contains). Returning a string = failure message. */
  readonly expect?: (request: ChatRequest) => string | undefined
  /** How long the model takes to answer (as a real one does); default at once. */
  readonly delay?: Duration.DurationInput
  /**
   * The tokens the answer reports using (default: estimated from the
   * request's and the answer's sizes). pi prices them with the model's
   * `cost` in models.json (see `piModelsJson`'s `cost`).
   */
  readonly usage?: { readonly input?: number; readonly output?: number }
}

/** The assistant turns of one agent, in order. */
export type Script = ReadonlyArray<Turn>

/**
 * A script as a function of the turn's index (from 0) and the request: for
 * scripts without an end (a model that keeps calling tools); `undefined`
 * ends it.
 */
export type EndlessScript = (turn: number, request: ChatRequest) => Turn | undefined

/** A tool call as it appears in an assistant message of a request. */
export interface ChatToolCall {
  readonly id: string
  readonly type: string
  readonly function: { readonly name: string; readonly arguments: string }
}

/**
 * A request message; `content` is flattened to a string (text parts joined, `null` → `""`).
 * Anthropic's tool results are `tool` messages and its `tool_use` blocks `tool_calls`, as in OpenAI's.
 */
export interface ChatMessage {
  readonly role: string
  readonly content: string
  readonly tool_calls?: ReadonlyArray<ChatToolCall>
  readonly tool_call_id?: string
}

/** A request, decoded from either API's body into one shape (Anthropic's `system` is the first message). */
export interface ChatRequest {
  /** The API the request came through. */
  readonly api: Api
  readonly model: string
  readonly messages: ReadonlyArray<ChatMessage>
  readonly tools: ReadonlyArray<{ readonly name: string; readonly description?: string; readonly parameters?: unknown }>
  readonly stream: boolean
}

/** A recorded problem: a failed expectation, a request after the script ran out, an unknown agent. */
export interface Failure {
  readonly agent: string
  /** Index (0-based) of the turn the request was meant to consume. */
  readonly turn: number
  readonly message: string
}

/** A running scripted model server. */
export interface ScriptedModelServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /**
   * `${url}/${encodeURIComponent(agent)}/v1`: the agent is identified by the
   * path; `${url}/v1` without one: by the `x-ramure-agent` header, else by the
   * request's model name. For `anthropic-messages` the same without `/v1`
   * (Anthropic's clients add it).
   */
  readonly baseUrl: (agent?: string, api?: Api) => string
  /** Replaces the agent's script and restarts it at its first turn (recorded requests are kept). */
  readonly setScript: (agent: string, script: Script | EndlessScript) => Effect.Effect<void>
  /** The requests the agent has sent so far, oldest first. */
  readonly requests: (agent: string) => Effect.Effect<ReadonlyArray<ChatRequest>>
  /** Failed expectations, requests after the script ran out, and unknown agents. */
  readonly failures: Effect.Effect<ReadonlyArray<Failure>>
}

/** Options of {@link make}. */
export interface Options {
  readonly scripts?: Record<string, Script | EndlessScript>
  /** Script for an agent that has none yet; without one (or on `undefined`) the agent is recorded as unknown. */
  readonly fallback?: (agent: string) => Script | EndlessScript | undefined
}

/** The server could not start. */
export class ScriptedModelError extends Schema.TaggedError<ScriptedModelError>()("ScriptedModelError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** The text answered once a script is exhausted. */
export const finishedText = "(scripted model: script finished)"

// ---------------------------------------------------------------------------------------------
// Request decoding

const RawToolCall = Schema.Struct({
  id: Schema.String,
  type: Schema.optionalWith(Schema.String, { default: () => "function" }),
  function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
})

const RawMessage = Schema.Struct({
  role: Schema.String,
  content: Schema.optional(
    Schema.NullOr(Schema.Union(Schema.String, Schema.Array(Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) }))))
  ),
  tool_calls: Schema.optional(Schema.Array(RawToolCall)),
  tool_call_id: Schema.optional(Schema.String)
})

const RawRequest = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(RawMessage),
  stream: Schema.optional(Schema.Boolean),
  tools: Schema.optional(
    Schema.Array(
      Schema.Struct({
        function: Schema.Struct({
          name: Schema.String,
          description: Schema.optionalWith(Schema.String, { exact: true }),
          parameters: Schema.optionalWith(Schema.Unknown, { exact: true })
        })
      })
    )
  )
})

const decodeRequest = Schema.decodeUnknown(Schema.parseJson(RawRequest))

const toChatRequest = (raw: typeof RawRequest.Type): ChatRequest => ({
  api: "openai-completions",
  model: raw.model,
  stream: raw.stream === true,
  messages: raw.messages.map((m): ChatMessage => ({
    role: m.role,
    content:
      typeof m.content === "string" ? m.content : (m.content ?? []).map((part) => part.text ?? "").join(""),
    ...(m.tool_calls ? { tool_calls: m.tool_calls } : {}),
    ...(m.tool_call_id !== undefined ? { tool_call_id: m.tool_call_id } : {})
  })),
  tools: (raw.tools ?? []).map((t) => t.function)
})

/** The tool results at the end of the request (the answers to the previous turn's tool calls). */
export const lastToolResults = (
  request: ChatRequest
): ReadonlyArray<{ readonly toolCallId: string; readonly content: string }> => {
  const results: Array<{ toolCallId: string; content: string }> = []
  for (let i = request.messages.length - 1; i >= 0 && request.messages[i]!.role === "tool"; i--) {
    const m = request.messages[i]!
    results.unshift({ toolCallId: m.tool_call_id ?? "", content: m.content })
  }
  return results
}

/** The text of the last user message, if any. */
export const lastUserText = (request: ChatRequest): string | undefined =>
  request.messages.filter((m) => m.role === "user").at(-1)?.content

// ---------------------------------------------------------------------------------------------
// Answers

interface Answer {
  readonly text: string
  readonly toolCalls: ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: string }>
  readonly usage?: Turn["usage"]
}

const estimateTokens = (chars: number): number => Math.max(1, Math.ceil(chars / 4))

const usageOf = (request: ChatRequest, answer: Answer) => {
  if (answer.usage !== undefined) {
    const prompt_tokens = answer.usage.input ?? 0
    const completion_tokens = answer.usage.output ?? 0
    return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
  }
  const promptChars = request.messages.reduce(
    (n, m) => n + m.content.length + (m.tool_calls ?? []).reduce((k, c) => k + c.function.arguments.length, 0),
    0
  )
  const prompt_tokens = estimateTokens(promptChars)
  const completion_tokens = estimateTokens(
    answer.text.length + answer.toolCalls.reduce((n, c) => n + c.name.length + c.arguments.length, 0)
  )
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
}

const finishReason = (answer: Answer) => (answer.toolCalls.length > 0 ? "tool_calls" : "stop")

/** The SSE events of a streamed answer; tool call arguments arrive in two pieces, as real servers do. */
const sseEvents = (request: ChatRequest, answer: Answer, id: string, created: number): ReadonlyArray<string> => {
  const chunk = (choices: ReadonlyArray<unknown>, extra: object = {}) =>
    JSON.stringify({ id, object: "chat.completion.chunk", created, model: request.model, choices, ...extra })
  const delta = (d: object) => chunk([{ index: 0, delta: d, finish_reason: null }])
  const events: Array<string> = [delta({ role: "assistant", content: "" })]
  if (answer.text.length > 0) events.push(delta({ content: answer.text }))
  answer.toolCalls.forEach((call, index) => {
    const half = Math.floor(call.arguments.length / 2)
    events.push(
      delta({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: call.arguments.slice(0, half) } }] }),
      delta({ tool_calls: [{ index, function: { arguments: call.arguments.slice(half) } }] })
    )
  })
  events.push(chunk([{ index: 0, delta: {}, finish_reason: finishReason(answer) }]))
  events.push(chunk([], { usage: usageOf(request, answer) }))
  events.push("[DONE]")
  return events.map((e) => `data: ${e}\n\n`)
}

const completion = (request: ChatRequest, answer: Answer, id: string, created: number) => ({
  id,
  object: "chat.completion",
  created,
  model: request.model,
  choices: [
    {
      index: 0,
      message: {
        role: "assistant",
        content: answer.text.length > 0 ? answer.text : null,
        ...(answer.toolCalls.length > 0
          ? {
            tool_calls: answer.toolCalls.map((c) => ({
              id: c.id,
              type: "function",
              function: { name: c.name, arguments: c.arguments }
            }))
          }
          : {})
      },
      finish_reason: finishReason(answer)
    }
  ],
  usage: usageOf(request, answer)
})

const errorResponse = (status: number, message: string) =>
  HttpServerResponse.unsafeJson({ error: { message, type: "invalid_request_error" } }, { status })

// ---------------------------------------------------------------------------------------------
// Server

interface AgentState {
  readonly script: Script | EndlessScript | undefined
  readonly next: number
  readonly toolCallCount: number
  readonly requests: ReadonlyArray<ChatRequest>
}

const emptyAgent: AgentState = { script: undefined, next: 0, toolCallCount: 0, requests: [] }

const safeDecode = (segment: string): string => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/** Starts a scripted model server on 127.0.0.1 (random port) for the lifetime of the scope. */
export const make = Effect.fn("ScriptedModel.make")(function*(
  options: Options = {}
): Effect.fn.Return<ScriptedModelServer, ScriptedModelError, Scope.Scope> {
  const agents = yield* Ref.make<ReadonlyMap<string, AgentState>>(
    new Map(Object.entries(options.scripts ?? {}).map(([agent, script]) => [agent, { ...emptyAgent, script }]))
  )
  const failures = yield* Ref.make<ReadonlyArray<Failure>>([])
  const fail = (failure: Failure) => Ref.update(failures, (all) => [...all, failure])

  /** Records the request and takes the agent's next turn, with tool call ids `call_<n>`. */
  const takeTurn = (agent: string, request: ChatRequest) =>
    Ref.modify(agents, (all) => {
      const state = all.get(agent) ?? emptyAgent
      const script = state.script ?? options.fallback?.(agent)
      const turnIndex = state.next
      const turn = typeof script === "function" ? script(turnIndex, request) : script?.[turnIndex]
      const toolCalls = (turn?.toolCalls ?? []).map((call, i) => ({
        id: call.id ?? `call_${state.toolCallCount + i + 1}`,
        name: call.name,
        arguments: JSON.stringify((typeof call.arguments === "function" ? call.arguments(request) : call.arguments) ?? {})
      }))
      const updated: AgentState = {
        script,
        next: turnIndex + 1,
        toolCallCount: state.toolCallCount + toolCalls.length,
        requests: [...state.requests, request]
      }
      const result = { known: script !== undefined, turnIndex, turn, toolCalls }
      return [result, new Map(all).set(agent, updated)] as const
    })

  const answer = Effect.fnUntraced(function*(agent: string, request: ChatRequest) {
    const { known, toolCalls, turn, turnIndex } = yield* takeTurn(agent, request)
    if (!known) yield* fail({ agent, turn: turnIndex, message: `unknown agent "${agent}" (no script)` })
    else if (turn === undefined) yield* fail({ agent, turn: turnIndex, message: "request after the script ran out" })
    if (turn?.expect) {
      const check = turn.expect
      const message = yield* Effect.try(() => check(request)).pipe(
        Effect.catchAll((error) => Effect.succeed(`expect threw: ${String(error.error)}`))
      )
      if (message !== undefined) yield* fail({ agent, turn: turnIndex, message })
    }
    const reply: Answer = turn === undefined
      ? { text: finishedText, toolCalls: [] }
      : { text: turn.text ?? "", toolCalls, ...(turn.usage === undefined ? {} : { usage: turn.usage }) }
    if (turn?.delay !== undefined) yield* Effect.sleep(turn.delay)
    if (request.api === "anthropic-messages") {
      const { completion_tokens, prompt_tokens } = usageOf(request, reply)
      const usage = { input: prompt_tokens, output: completion_tokens }
      const id = `msg_${encodeURIComponent(agent)}_${turnIndex}`
      return request.stream
        ? HttpServerResponse.stream(Stream.fromIterable(Anthropic.events(request, reply, id, usage)).pipe(Stream.encodeText), {
          contentType: "text/event-stream",
          headers: { "cache-control": "no-cache" }
        })
        : HttpServerResponse.unsafeJson(Anthropic.message(request, reply, id, usage))
    }
    const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const id = `chatcmpl-${encodeURIComponent(agent)}-${turnIndex}`
    return request.stream
      ? HttpServerResponse.stream(Stream.fromIterable(sseEvents(request, reply, id, created)).pipe(Stream.encodeText), {
        contentType: "text/event-stream",
        headers: { "cache-control": "no-cache" }
      })
      : HttpServerResponse.unsafeJson(completion(request, reply, id, created))
  })

  const app = Effect.gen(function*() {
    const req = yield* HttpServerRequest.HttpServerRequest
    const segments = new URL(req.url, "http://localhost").pathname.split("/").filter((s) => s.length > 0)
    if (req.method === "GET" && segments.length === 1 && segments[0] === "health") {
      return HttpServerResponse.unsafeJson({ status: "ok" })
    }
    const openAi = segments.slice(-3).join("/") === "v1/chat/completions" && segments.length <= 4
    const anthropic = segments.slice(-2).join("/") === "v1/messages" && segments.length <= 3
    if (req.method !== "POST" || !(openAi || anthropic)) {
      return errorResponse(404, `no route for ${req.method} ${req.url}`)
    }
    const body = yield* req.text.pipe(Effect.orElseSucceed(() => ""))
    const decoded: Effect.Effect<ChatRequest, { readonly message: string }> = openAi
      ? Effect.map(decodeRequest(body), toChatRequest)
      : Effect.map(Anthropic.decode(body), (request): ChatRequest => ({ api: "anthropic-messages", ...request }))
    return yield* decoded.pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.succeed(
            openAi
              ? errorResponse(400, `malformed request: ${error.message}`)
              : HttpServerResponse.unsafeJson(Anthropic.error(`malformed request: ${error.message}`), { status: 400 })
          ),
        onSuccess: (request) => {
          const header = req.headers[agentHeader]
          const inPath = segments.length === (openAi ? 4 : 3)
          const agent = inPath ? safeDecode(segments[0]!) : header || request.model
          return answer(agent, request)
        }
      })
    )
  })

  const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: 0, host: "127.0.0.1" }).pipe(
    Effect.mapError((cause) => new ScriptedModelError({ message: "cannot start the scripted model server", cause }))
  )
  yield* server.serve(app)
  if (server.address._tag !== "TcpAddress") {
    return yield* new ScriptedModelError({ message: "the scripted model server did not bind a TCP port" })
  }
  const url = `http://127.0.0.1:${server.address.port}`

  return {
    url,
    baseUrl: (agent, api = "openai-completions") => {
      const base = agent === undefined ? url : `${url}/${encodeURIComponent(agent)}`
      return api === "anthropic-messages" ? base : `${base}/v1`
    },
    setScript: (agent, script) =>
      Ref.update(agents, (all) => new Map(all).set(agent, { ...(all.get(agent) ?? emptyAgent), script, next: 0 })),
    requests: (agent) => Ref.get(agents).pipe(Effect.map((all) => all.get(agent)?.requests ?? [])),
    failures: Ref.get(failures)
  }
})

/** The scripted model server as a service. */
export class ScriptedModel extends Context.Tag("ramure/ScriptedModel")<ScriptedModel, ScriptedModelServer>() {}

/** A layer running a scripted model server for the lifetime of the layer. */
export const layer = (options: Options = {}): Layer.Layer<ScriptedModel, ScriptedModelError> =>
  Layer.scoped(ScriptedModel, make(options))

/** Provider and model names that {@link piModelsJson} declares: use `--model ramure-scripted/scripted`. */
export const piProvider = "ramure-scripted"
export const piModel = "scripted"

/** The request header that names the agent when the URL does not: pi fills it in from `RAMURE_AGENT_ID`. */
export const agentHeader = "x-ramure-agent"

/**
 * pi's models.json content: provider "ramure-scripted", model "scripted",
 * pointing at `baseUrl` (`server.baseUrl(agent, api)`), through the provider
 * API `api` (default `openai-completions`). With no agent in `baseUrl` the
 * same file serves every agent — each request names its agent in a header
 * that pi resolves from the environment variable `RAMURE_AGENT_ID` when it
 * sends it.
 */
export const piModelsJson = (
  baseUrl: string,
  options: {
    readonly api?: Api
    /** What pi charges for the model, in dollars per million tokens (default 0: free). */
    readonly cost?: { readonly input?: number; readonly output?: number; readonly cacheRead?: number; readonly cacheWrite?: number }
  } = {}
): object => ({
  providers: {
    [piProvider]: {
      baseUrl,
      api: options.api ?? "openai-completions",
      apiKey: "ramure-scripted-key",
      headers: { [agentHeader]: "RAMURE_AGENT_ID" },
      ...(options.api === "anthropic-messages"
        ? {}
        : { compat: { supportsDeveloperRole: false, supportsReasoningEffort: false, supportsStore: false } }),
      models: [
        {
          id: piModel,
          name: "ramure scripted model",
          reasoning: false,
          input: ["text"],
          contextWindow: 128000,
          maxTokens: 4096,
          cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, ...options.cost }
        }
      ]
    }
  }
})
