/**
 * The run's side of one agent: what it has been told (its replication log,
 * a projection of the run's log), its tools, its peers, its lifecycle, and the
 * handling of whatever its connection sends.
 *
 * @internal
 */
import { Cause, Context, Data, DefaultServices, Deferred, Effect, Exit, FiberRef, FiberSet, Option, Ref, type Scope, Stream, Tracer } from "effect"
import type { AgentGate } from "../Budget.js"
import { AgentNotLive, InvalidToolName, MessageTooLarge } from "../Errors.js"
import type { Machine } from "../Machine.js"
import * as Protocol from "@ramure/protocol/Protocol"
import * as LogThrottle from "../LogThrottle.js"
import { toEntryBody, type RunEvent } from "../RunEvent.js"
import type { AgentJournal, AnsweredCall } from "../Journal.js"
import type { RunLogService } from "../RunLog.js"
import * as BadFrames from "./badFrames.js"
import * as CallIds from "./callIds.js"
import { currentCall, toolCall } from "./callContext.js"
import * as Adoption from "./adoption.js"
import * as Replays from "./replays.js"
import * as AgentTrace from "./agentTrace.js"
import * as Replication from "./replication.js"
import { jsonBytes } from "./tools.js"
import type { Connection } from "@ramure/protocol/Connection"

export interface ToolHandler {
  readonly definition: Protocol.ToolDefinition
  /** Runs the call; fails with the text the model should see. */
  readonly run: (args: unknown) => Effect.Effect<string, string>
  /** A handler of the process's (`agent.on`): a resumed run replays its answered calls (see `Journal.AnsweredCall`). */
  readonly replayed?: boolean
  /** The services `run` needs (those of the code that gave the tool), when not the run's own. */
  readonly context?: Context.Context<never> | undefined
}

/** Another agent this one is connected to. */
export interface Peer {
  readonly session: AgentSession
  readonly machine: Machine
  /** The largest file `send_file` and `download_file` copy along this connection. */
  readonly maxFileBytes: number
}

/** Where the agent stands. Only this module moves it from one state to the next. */
export type Lifecycle = Data.TaggedEnum<{
  /** Started, not connected yet. */
  Starting: {}
  Connected: { readonly connection: Connection }
  /** It was connected, and is not now (it may reconnect). */
  Disconnected: {}
  /** Asked to shut down; `gone` completes when it disconnects. */
  ShuttingDown: { readonly connection: Connection | undefined }
  /** Released: nothing is delivered to it any more. */
  Released: {}
}>
const Lifecycle = Data.taggedEnum<Lifecycle>()

export interface AgentSession {
  /** Unique within the run; safe as a file and tmux session name. */
  readonly id: string
  /** The name its process asked for. */
  readonly name: string
  readonly process: string
  /** The credential that opens `/agents/<id>` (and nothing else). */
  readonly secret: string
  /** Record an event about this agent; an event the agent must be told becomes an entry of its replication log. */
  readonly record: (event: RunEvent) => Effect.Effect<void>
  readonly addTool: (handler: ToolHandler) => Effect.Effect<void, InvalidToolName>
  /** Remove the tool `name` (only if it is still `handler`, when given). */
  readonly removeTool: (name: string, handler?: ToolHandler) => Effect.Effect<void>
  readonly hasTool: (name: string) => Effect.Effect<boolean>
  readonly deliver: (
    text: string,
    options?: { readonly from?: string | undefined; readonly via?: string | undefined }
  ) => Effect.Effect<void, AgentNotLive | MessageTooLarge>
  /** Connect to `peer` (again: with its new file size limit); true if it is a new peer. */
  readonly addPeer: (peer: Peer) => Effect.Effect<boolean>
  readonly peer: (id: string) => Effect.Effect<Option.Option<Peer>>
  readonly peerIds: Effect.Effect<ReadonlyArray<string>>
  readonly peers: Effect.Effect<ReadonlyArray<Peer>>
  readonly lifecycle: Effect.Effect<Lifecycle>
  /** What the agent has been told, in order (entry `seq` is at index `seq - 1`), read back from the run's log. */
  readonly entries: Effect.Effect<ReadonlyArray<Protocol.EntryBody>>
  /** Completes when the agent first says `Hello`. */
  readonly connected: Effect.Effect<void>
  /** Tell the agent to shut down; true if it was connected (then `gone` completes when it disconnects). */
  readonly shutdown: (reason: string) => Effect.Effect<boolean>
  readonly gone: Effect.Effect<void>
  /** Everything recorded about this agent, from its start, until it is released. */
  readonly events: Stream.Stream<RunEvent>
  /** Serve a connection of the agent; `hello` is a frame that came with its upgrade request. */
  readonly serve: (connection: Connection, hello?: string) => Effect.Effect<void>
  /** Released: handlers interrupted, nothing more delivered, `events` ends. */
  readonly release: Effect.Effect<void>
}

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** Effect's own tracer, whose spans go nowhere. */
const nativeTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

export interface Options {
  readonly id: string
  readonly name: string
  readonly process: string
  readonly secret: string
  readonly runLog: RunLogService
  /** Largest frame the agent accepts: a tool result or message that would not fit is refused. */
  readonly maxMessageBytes: number
  /** An agent a resumed run takes over: where its journal says it was. */
  readonly resume?: AgentJournal | undefined
  /** The run's replays of answered calls (a resumed run's; none for a fresh one). */
  readonly replays?: Replays.Replays | undefined
  /** The span the agent's life is traced under. */
  readonly parentSpan?: Option.Option<Tracer.AnySpan> | undefined
  /** The budgets above the agent: what it reports is accounted, and it is told where it stands. */
  readonly budget: AgentGate
}

const causeText = (cause: Cause.Cause<string>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return failure.value
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const value = defect.value
    if (value instanceof Error) return `tool handler crashed: ${value.message || value.name}`
    return `tool handler crashed: ${String(value)}`
  }
  return "the tool call was interrupted"
}

export const make = (options: Options): Effect.Effect<AgentSession, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { id, runLog } = options
    const subject = { process: options.process, agent: id }
    const replication = yield* Replication.make(id, runLog, {}, options.resume?.replicated ?? 0)
    const tools = new Map<string, ToolHandler>()
    const peers = new Map<string, Peer>()
    const calls = CallIds.make()
    const adoption = Adoption.make(options.resume)
    const replays = options.replays ?? Replays.none
    // Calls it had answered are not run again when it sends them once more (their results are replayed).
    for (const callId of options.resume?.answered ?? []) if (calls.claim(callId)) calls.finish(callId)
    const handlers = yield* FiberSet.make()
    // The handlers of calls answered before the resume run again (their answers are not sent).
    replays.attach(id, (name) =>
      Option.flatMap(Option.fromNullable(tools.get(name)), (tool) =>
        tool.replayed === true
          ? Option.some((call: AnsweredCall): Effect.Effect<unknown, unknown> => {
            const run = Effect.locally(tool.run(call.args), currentCall, toolCall(id, call.callId))
            return tool.context === undefined ? run : Effect.provide(run, tool.context)
          })
          : Option.none()))
    const lifecycle = yield* Ref.make<Lifecycle>(Lifecycle.Starting())
    const connected = yield* Deferred.make<void>()
    const gone = yield* Deferred.make<void>()
    const tracer = yield* Effect.tracer
    const exported = tracer !== nativeTracer
    const trace = AgentTrace.make({
      tracer,
      clock: yield* Effect.clock,
      parent: options.parentSpan ?? Option.none(),
      id,
      name: options.name,
      process: options.process
    })

    // Logging and replicating are one synchronous step, so the agent is told things in the log's order.
    const record = (event: RunEvent) =>
      Effect.sync(() => {
        const entry = runLog.unsafeLog(subject, event)
        const body = toEntryBody(event)
        if (body !== undefined) replication.unsafeAppend(entry.n, body)
        trace.observe(event)
      })

    /** The size of `text` in a frame if it would not fit in one (with room for the envelope), else `undefined`. */
    const tooLarge = (text: string): number | undefined => {
      const room = options.maxMessageBytes - 1024
      const raw = Buffer.byteLength(text)
      // JSON escapes make a text up to six times larger (`\u0001`): measure the encoding when it matters.
      if (raw * 6 <= room) return undefined
      const encoded = raw > room ? raw : Buffer.byteLength(JSON.stringify(text))
      return encoded > room ? encoded : undefined
    }

    const live = Effect.map(Ref.get(lifecycle), (state) => state._tag !== "ShuttingDown" && state._tag !== "Released")

    const handleToolCall = (call: typeof Protocol.ToolCall.Type) =>
      Effect.gen(function* () {
        if (!calls.claim(call.callId)) return
        if (!adoption.wasCalled(call.callId)) yield* record({ _tag: "ToolCalled", callId: call.callId, tool: call.tool, args: call.args })
        yield* adoption.awaitTool(call.tool)
        // After the calls answered before the resume: their handlers rebuild what this one may read.
        yield* replays.done
        const tool = tools.get(call.tool)
        const started = Date.now()
        const run: Effect.Effect<string, string> = tool
          ? tool.run(call.args)
          : Effect.fail(`unknown tool "${call.tool}" (available: ${[...tools.keys()].join(", ") || "none"})`)
        // The call has a fiber of its own: its services and the call it works for are set for the fiber's life,
        // rather than around the handler (`Effect.provide`, `Effect.locally`), which costs more than the call.
        const enter = Effect.zipRight(
          tool?.context === undefined ? Effect.void : FiberRef.set(FiberRef.currentContext, tool.context),
          FiberRef.set(currentCall, toolCall(id, call.callId))
        )
        const finish = (isError: boolean, text: string, cause?: string) => {
          const size = tooLarge(text)
          const [error, shown] = size !== undefined
            ? [true, `the result of ${call.tool} is too large to send (${size} bytes; the limit is ${options.maxMessageBytes})`]
            : [isError, text]
          return Effect.zipRight(
            record({
              _tag: "ToolReturned",
              callId: call.callId,
              tool: call.tool,
              isError: error,
              text: shown,
              durationMs: Date.now() - started,
              ...(cause === undefined ? {} : { cause })
            }),
            Effect.sync(() => calls.finish(call.callId))
          )
        }
        // Spans nobody exports (Effect's own tracer) are not made: per call, a span, its attributes and the arguments' JSON.
        const traced = !exported ? run : run.pipe(
          Effect.onExit((exit) => Effect.annotateCurrentSpan("ramure.outcome", Exit.isSuccess(exit) ? "ok" : "error")),
          Effect.withSpan("Agent.toolCall", {
            parent: trace.parent(),
            attributes: {
              agent: id,
              tool: call.tool,
              callId: call.callId,
              "gen_ai.operation.name": "execute_tool",
              "gen_ai.agent.name": options.name,
              "gen_ai.tool.name": call.tool,
              "gen_ai.tool.call.id": call.callId,
              "ramure.arguments_bytes": jsonBytes(call.args)
            },
            captureStackTrace: false
          })
        )
        yield* Effect.zipRight(enter, traced).pipe(
          Effect.matchCauseEffect({
            onSuccess: (text) => finish(false, text),
            onFailure: (cause) =>
              // Every call is answered; only an agent being released no longer needs its answer.
              Effect.flatMap(live, (isLive) =>
                isLive || !Cause.isInterruptedOnly(cause)
                  ? finish(true, causeText(cause), Cause.isDie(cause) ? Cause.pretty(cause) : undefined)
                  : Effect.void)
          }),
          FiberSet.run(handlers)
        )
      })

    /**
     * Tell the agent where it stands against its budgets, before anything it
     * is sent on this connection, then each change for as long as it lasts.
     */
    const tellBudget = (send: (message: Protocol.Message) => Effect.Effect<void>) =>
      Effect.gen(function* () {
        const pull = yield* Stream.toPull(options.budget.changes)
        const next = Effect.flatMap(pull, (states) => Effect.forEach(states, send, { discard: true }))
        yield* Effect.ignore(next)
        yield* Effect.forkScoped(Effect.ignore(Effect.forever(next)))
      })

    /** Claim the agent's place for `connection`, closing the one it replaces. */
    const claim = (connection: Connection) =>
      Ref.modify(lifecycle, (state): [Connection | undefined, Lifecycle] => {
        switch (state._tag) {
          case "Connected":
            return [state.connection, Lifecycle.Connected({ connection })]
          case "ShuttingDown":
            return [state.connection, Lifecycle.ShuttingDown({ connection })]
          case "Released":
            return [undefined, state]
          default:
            return [undefined, Lifecycle.Connected({ connection })]
        }
      }).pipe(
        Effect.flatMap((previous) =>
          previous === undefined || previous === connection
            ? Effect.void
            : previous.close(Protocol.CloseCode.replaced, "replaced by a new connection")
        )
      )

    /** `connection` closed: if it was the agent's, the agent is disconnected (gone, if it was shutting down). */
    const disconnected = (connection: Connection) =>
      Ref.modify(lifecycle, (state): [boolean, Lifecycle] => {
        if (state._tag === "Connected" && state.connection === connection) return [true, Lifecycle.Disconnected()]
        if (state._tag === "ShuttingDown" && state.connection === connection) {
          return [true, Lifecycle.ShuttingDown({ connection: undefined })]
        }
        return [false, state]
      })

    const serve = (connection: Connection, hello?: string) =>
      Effect.gen(function* () {
        const writer = yield* FiberSet.make()
        const send = (message: Protocol.Message) => connection.send(Protocol.encodeTrusted(message))
        const badFrames = BadFrames.make()
        const violations = LogThrottle.make<{ readonly code: string; readonly message: string }>((violation, others) =>
          void runLog.unsafeLog(subject, { _tag: "ProtocolViolation", ...violation, ...(others > 0 ? { suppressed: others } : {}) }))
        yield* Effect.addFinalizer(() => Effect.sync(violations.flush))
        /** Every bad frame is answered (while the connection's allowance lasts), and logged at most once a second. */
        const sendError = (code: typeof Protocol.ProtocolError.Type["code"], message: string) =>
          Effect.suspend(() => {
            violations.offer({ code, message })
            if (badFrames.strike()) return send({ _tag: "ProtocolError", code, message })
            violations.flush()
            const reason = "too many frames the run cannot act on"
            runLog.unsafeLog(subject, { _tag: "ProtocolViolation", code: "too_many_bad_frames", message: reason })
            return connection.abort(Protocol.CloseCode.tooManyBadFrames, reason)
          })

        /** Send the entries after `after`, each once it is in the log on disk, then everything new. */
        const replay = (after: number) =>
          Effect.gen(function* () {
            yield* FiberSet.clear(writer)
            const upTo = yield* replication.size
            // The agent sends no frame larger than the run takes: a call that would not fit is answered at once.
            const synced = (seq: number) => send({ _tag: "Synced", seq, maxFrameBytes: options.maxMessageBytes })
            if (after >= upTo) yield* synced(upTo)
            yield* replication.forEach(after, (item) =>
              Effect.gen(function* () {
                yield* runLog.durable(item.n)
                // A long replay goes out as fast as the agent reads it, not faster.
                yield* connection.writable
                yield* send({ _tag: "Entry", seq: item.seq, body: item.body })
                if (item.seq === upTo) yield* synced(upTo)
              })
            ).pipe(
              // The log can no longer be written: the run is failing, and tells the agent nothing more.
              Effect.catchAll(() => Effect.void),
              FiberSet.run(writer)
            )
          })

        /** Frames are acted on only after this connection's `Hello`; until then, and after a refusal, none is. */
        let state: "new" | "hello" | "refused" = "new"
        const dispatch = (frame: string) =>
          Effect.gen(function* () {
            if (state === "refused") return
            const decoded = Protocol.decode(frame)
            if (decoded._tag === "Left") return yield* sendError(decoded.left.code, decoded.left.message)
            const message = decoded.right
            if (message._tag === "Hello") {
              if (message.protocol !== Protocol.version) {
                state = "refused"
                yield* sendError("version", `protocol ${message.protocol} is not supported (expected ${Protocol.version})`)
                return yield* connection.close(Protocol.CloseCode.protocolVersion, "protocol version")
              }
              if (message.agentId !== id) return yield* sendError("unknown_agent", `this connection is for agent ${id}`)
              // A connection is told its budget once: a later Hello on it only asks for a resync.
              const greeted = state === "hello"
              state = "hello"
              yield* claim(connection)
              if (options.budget.limited && !greeted) yield* tellBudget(send)
              const first = yield* Deferred.succeed(connected, undefined)
              yield* record({ _tag: "AgentConnected", after: message.after, first })
              const after = Math.max(0, Math.floor(message.after))
              // What it has applied need not stay in memory (it is on disk, should it ever ask again).
              replication.acknowledge(after)
              return yield* replay(after)
            }
            if (state !== "hello") return yield* sendError("unknown_message", `${message._tag} before Hello: say Hello first`)
            switch (message._tag) {
              case "ToolCall":
                return yield* handleToolCall(message)
              case "Event": {
                yield* record(message.event)
                const answer = yield* options.budget.observe(message.event)
                return options.budget.limited && Option.isSome(answer) ? yield* send(answer.value) : undefined
              }
              default:
                return yield* sendError("unknown_message", `${message._tag} is not an agent message`)
            }
          })

        if (hello !== undefined) yield* dispatch(hello)
        yield* connection.forEach(dispatch)
        yield* FiberSet.clear(writer)
        if (yield* disconnected(connection)) {
          const info = yield* connection.closed
          yield* record({ _tag: "AgentDisconnected", code: info.code, reason: info.reason })
          const state = yield* Ref.get(lifecycle)
          if (state._tag === "ShuttingDown") yield* Deferred.succeed(gone, undefined)
        }
      }).pipe(Effect.scoped)

    const session: AgentSession = {
      id,
      name: options.name,
      process: options.process,
      secret: options.secret,
      record,
      addTool: (handler) =>
        Effect.suspend(() => {
          const name = handler.definition.name
          if (!TOOL_NAME.test(name)) return Effect.fail(new InvalidToolName({ tool: name }))
          tools.set(name, handler)
          replays.given(id, name)
          return adoption.readopt(handler.definition) ? Effect.void : record({ _tag: "ToolAdded", tool: handler.definition })
        }),
      removeTool: (name, handler) =>
        Effect.suspend(() =>
          ((handler === undefined || tools.get(name) === handler) && tools.delete(name)) ||
            (handler === undefined && adoption.forget(name))
            ? record({ _tag: "ToolRemoved", name })
            : Effect.void
        ),
      hasTool: (name) => Effect.sync(() => tools.has(name)),
      deliver: (text, { from, via } = {}) =>
        Effect.flatMap(Ref.get(lifecycle), (state): Effect.Effect<void, AgentNotLive | MessageTooLarge> => {
          if (state._tag === "ShuttingDown" || state._tag === "Released") {
            return Effect.fail(new AgentNotLive({ agent: id, state: state._tag === "Released" ? "released" : "shutting down" }))
          }
          const bytes = tooLarge(text)
          if (bytes !== undefined) return Effect.fail(new MessageTooLarge({ agent: id, bytes, limit: options.maxMessageBytes }))
          return record({
            _tag: "MessageDelivered",
            text,
            ...(from === undefined ? {} : { from }),
            ...(via === undefined ? {} : { via })
          })
        }),
      addPeer: (peer) =>
        Effect.sync(() => {
          const known = peers.has(peer.session.id)
          peers.set(peer.session.id, peer)
          return !known
        }),
      peer: (peerId) => Effect.sync(() => Option.fromNullable(peers.get(peerId))),
      peerIds: Effect.sync(() => [...peers.keys()]),
      peers: Effect.sync(() => [...peers.values()]),
      lifecycle: Ref.get(lifecycle),
      entries: replication.all,
      connected: Deferred.await(connected),
      shutdown: (reason) =>
        Ref.modify(lifecycle, (state): [readonly [connected: boolean, asked: boolean], Lifecycle] => {
          switch (state._tag) {
            case "Connected":
              return [[true, true], Lifecycle.ShuttingDown({ connection: state.connection })]
            case "ShuttingDown":
              return [[state.connection !== undefined, false], state]
            case "Released":
              return [[false, false], state]
            default:
              return [[false, true], Lifecycle.ShuttingDown({ connection: undefined })]
          }
        }).pipe(
          Effect.flatMap(([connected, asked]) =>
            asked ? Effect.as(record({ _tag: "ShutdownRequested", reason }), connected) : Effect.succeed(connected)
          )
        ),
      gone: Deferred.await(gone),
      events: runLog.entries({ agent: id }).pipe(
        Stream.map((entry) => entry.event),
        Stream.takeUntil((event) => event._tag === "AgentReleased")
      ),
      serve,
      release: Effect.gen(function* () {
        yield* Ref.set(lifecycle, Lifecycle.Released())
        yield* FiberSet.clear(handlers)
        yield* record({ _tag: "AgentReleased" })
        yield* replication.end
      }).pipe(
        Effect.withSpan("Agent.release", { parent: trace.life, attributes: { agent: id } }),
        Effect.ensuring(Effect.sync(trace.end))
      )
    }
    return session
  })
