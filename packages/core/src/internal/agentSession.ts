/**
 * The runtime's side of one agent: its replication log, its tools, its
 * events, and the handling of whatever its connection sends.
 */
import { Cause, Deferred, Effect, FiberSet, Option } from "effect"
import * as Protocol from "../Protocol.js"
import type { AgentEventRecord } from "../AgentEvent.js"
import * as EventLog from "./eventLog.js"
import type { Connection } from "./socket.js"

export interface ToolHandler {
  readonly definition: Protocol.ToolDefinition
  /** Runs the call; fails with the text the model should see. */
  readonly run: (args: unknown) => Effect.Effect<string, string>
}

export interface Logger {
  (type: string, data?: unknown, agent?: string): Effect.Effect<void>
}

export interface AgentSession {
  readonly id: string
  readonly process: string
  /** Write an entry about this agent to the run's log. */
  readonly log: (type: string, data?: unknown) => Effect.Effect<void>
  readonly entries: EventLog.EventLog<Protocol.EntryBody>
  readonly events: EventLog.EventLog<AgentEventRecord>
  readonly tools: Map<string, ToolHandler>
  readonly connected: Deferred.Deferred<void>
  /** Completes when the agent disconnects after a shutdown was requested. */
  readonly gone: Deferred.Deferred<void>
  readonly calls: Set<string>
  readonly handlers: FiberSet.FiberSet
  current: Connection | undefined
  shuttingDown: boolean
}

export const make = (id: string, process: string, log: Logger) =>
  Effect.gen(function* () {
    const session: AgentSession = {
      id,
      process,
      log: (type, data) => log(type, data, id),
      entries: yield* EventLog.make<Protocol.EntryBody>(),
      events: yield* EventLog.make<AgentEventRecord>(),
      tools: new Map(),
      connected: yield* Deferred.make<void>(),
      gone: yield* Deferred.make<void>(),
      calls: new Set(),
      handlers: yield* FiberSet.make(),
      current: undefined,
      shuttingDown: false
    }
    return session
  })

export const append = (session: AgentSession, body: Protocol.EntryBody) => session.entries.append(body)

export const describeTools = (session: AgentSession): string =>
  session.tools.size === 0 ? "none" : [...session.tools.keys()].join(", ")

const causeText = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return String(failure.value)
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const value = defect.value
    return `tool handler crashed: ${value instanceof Error ? value.message : String(value)}`
  }
  return "tool call was interrupted"
}

/** Run a tool call once per call id; its result becomes a log entry. */
export const handleToolCall = (session: AgentSession, call: typeof Protocol.ToolCall.Type) =>
  Effect.gen(function* () {
    if (session.calls.has(call.callId)) return
    session.calls.add(call.callId)
    yield* session.log("tool_call", { callId: call.callId, tool: call.tool, args: call.args })
    yield* session.events.append({ _tag: "tool_call", callId: call.callId, tool: call.tool, args: call.args })
    const tool = session.tools.get(call.tool)
    const started = Date.now()
    const run: Effect.Effect<string, string> = tool
      ? tool.run(call.args)
      : Effect.fail(`unknown tool "${call.tool}" (available: ${describeTools(session)})`)
    const finish = (isError: boolean, text: string, cause?: string) =>
      Effect.gen(function* () {
        yield* append(session, { _tag: "ToolResult", callId: call.callId, isError, text })
        yield* session.log("tool_result",
          { callId: call.callId, tool: call.tool, isError, text, durationMs: Date.now() - started, cause }
        )
        yield* session.events.append({ _tag: "tool_result", callId: call.callId, tool: call.tool, isError, text })
      })
    yield* run.pipe(
      Effect.matchCauseEffect({
        onSuccess: (text) => finish(false, text),
        onFailure: (cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : finish(true, causeText(cause), Cause.isDie(cause) ? Cause.pretty(cause) : undefined)
      }),
      FiberSet.run(session.handlers)
    )
  })

/**
 * Serve one agent connection: replay the log from the agent's `Hello`, then
 * stream new entries; dispatch tool calls and events.
 *
 * A connection takes the agent's place (closing the previous one) only when
 * it says a valid `Hello` for this agent: that is how a restarted or
 * reconnecting agent wins over a half-open socket, while garbage, a wrong
 * agent id or a wrong protocol version never knock the live agent off.
 */
export const serve = (
  session: AgentSession,
  connection: Connection,
  options: {
    /** The largest frame the run accepts, told to the agent in `Synced`. */
    readonly maxFrameBytes?: number
    /** A first frame that came with the upgrade request (an agent's `Hello`). */
    readonly first?: string | undefined
  } = {}
) =>
  Effect.gen(function* () {
    const claim = Effect.suspend(() => {
      const previous = session.current
      session.current = connection
      return previous === undefined || previous === connection
        ? Effect.void
        : previous.close(Protocol.CloseCode.replaced, "replaced by a new connection")
    })
    const writer = yield* FiberSet.make()
    const sendError = (code: typeof Protocol.ProtocolError.Type["code"], message: string) =>
      Effect.zipRight(
        session.log("protocol_error", { code, message }),
        connection.send(Protocol.encode({ _tag: "ProtocolError", code, message }))
      )

    const replay = (after: number) =>
      Effect.gen(function* () {
        yield* FiberSet.clear(writer)
        const upTo = yield* session.entries.size
        const limit = options.maxFrameBytes === undefined ? {} : { maxFrameBytes: options.maxFrameBytes }
        const synced = (seq: number) => connection.send(Protocol.encode({ _tag: "Synced", seq, ...limit }))
        const send = (seq: number, body: Protocol.EntryBody) =>
          Effect.zipRight(
            connection.send(Protocol.encode({ _tag: "Entry", seq, body })),
            seq === upTo ? synced(seq) : Effect.void
          )
        if (after >= upTo) yield* synced(upTo)
        let seq = after
        yield* session.entries.forEach(after, (body) => send(++seq, body)).pipe(FiberSet.run(writer))
      })

    /** Set when the connection is refused: the frames it sent after that are not acted on. */
    let refused = false
    const dispatch = (frame: string) =>
      Effect.gen(function* () {
        if (refused) return
        const decoded = Protocol.decode(frame)
        if (decoded._tag === "Left") return yield* sendError(decoded.left.code, decoded.left.message)
        const message = decoded.right
        switch (message._tag) {
          case "Hello": {
            if (message.protocol !== Protocol.version) {
              yield* sendError("version", `protocol ${message.protocol} is not supported (expected ${Protocol.version})`)
              refused = true
              return yield* connection.close(Protocol.CloseCode.protocolVersion, "protocol version")
            }
            if (message.agentId !== session.id) {
              return yield* sendError("unknown_agent", `this connection is for agent ${session.id}`)
            }
            yield* claim
            const first = yield* Deferred.succeed(session.connected, undefined)
            yield* session.log("agent_connected", { after: message.after, first })
            yield* session.events.append({ _tag: "connected", after: message.after })
            return yield* replay(Math.max(0, Math.floor(message.after)))
          }
          case "ToolCall":
            return yield* handleToolCall(session, message)
          case "Event":
            yield* session.log("event", { event: message.event })
            return yield* session.events.append(message.event)
          default:
            return yield* sendError("unknown_message", `${message._tag} is not an agent message`)
        }
      })

    if (options.first !== undefined) yield* dispatch(options.first)
    yield* connection.forEach(dispatch)
    yield* FiberSet.clear(writer)
    if (session.current === connection) {
      session.current = undefined
      const info = yield* connection.closed
      yield* session.log("agent_disconnected", { code: info.code, reason: info.reason })
      yield* session.events.append({ _tag: "disconnected", code: info.code })
      if (session.shuttingDown) yield* Deferred.succeed(session.gone, undefined)
    }
  }).pipe(Effect.scoped)
