/**
 * The agent's side of the protocol, shared by the pi extension and the
 * scripted driver: connect, replicate the agent's log in order (resync on a
 * gap, drop duplicates), reconnect with backoff, and keep tool calls alive
 * across reconnects.
 */
import { Deferred, Duration, Effect, FiberSet, Queue, Schema, Scope } from "effect"
import WebSocket from "ws"
import * as Protocol from "./Protocol.js"
import { fromWebSocket, type Connection } from "./Connection.js"

export interface AgentClientOptions {
  /** The run's server, `ws://127.0.0.1:<port>`. */
  readonly url: string
  readonly agentId: string
  readonly token: string
  /**
   * Called for every log entry, in order, exactly once. With it, user messages
   * are left to this callback and not queued on `messages`.
   */
  readonly onEntry?: (body: Protocol.EntryBody) => Effect.Effect<void>
  /** Longest pause between reconnect attempts (default 2 s). */
  readonly maxBackoff?: Duration.DurationInput
  /** Continue where an earlier client of the same agent stopped: entries up to `lastSeq` are not replayed. */
  readonly resume?: {
    readonly lastSeq: number
    readonly tools: Iterable<Protocol.ToolDefinition>
  }
}

export interface ToolCallResult {
  readonly isError: boolean
  readonly text: string
}

export class AgentClientError extends Schema.TaggedError<AgentClientError>()("AgentClientError", {
  agent: Schema.String,
  message: Schema.String
}) {}

export interface AgentClient {
  readonly agentId: string
  /** Completes after the first full sync (the initial tool list is known). */
  readonly synced: Effect.Effect<void, AgentClientError>
  readonly tools: () => ReadonlyMap<string, Protocol.ToolDefinition>
  readonly lastSeq: () => number
  /** User messages, in order (unless `onEntry` handles them). */
  readonly messages: Queue.Dequeue<typeof Protocol.UserMessage.Type>
  /** Call a tool of this agent; survives reconnects. */
  readonly call: (tool: string, args: unknown, callId?: string) => Effect.Effect<ToolCallResult>
  readonly emit: (event: Protocol.AgentEvent) => Effect.Effect<void>
  /** Completes with the reason when the runtime asks the agent to shut down. */
  readonly shutdown: Effect.Effect<string>
  /** Fails if the runtime refuses this agent for good (bad token, unknown agent). */
  readonly fatal: Effect.Effect<never, AgentClientError>
  /** Drop the current connection (the client reconnects); for tests. */
  readonly dropConnection: Effect.Effect<void>
  readonly connected: () => boolean
}

interface Pending {
  readonly tool: string
  readonly args: unknown
  readonly result: Deferred.Deferred<ToolCallResult>
}

const openSocket = (url: string, token: string) =>
  Effect.async<Connection, { readonly fatal: boolean; readonly message: string }>((resume) => {
    const socket = new WebSocket(url, { headers: { [Protocol.TOKEN_HEADER]: token } })
    const onError = (error: Error) => resume(Effect.fail({ fatal: false, message: error.message }))
    socket.once("unexpected-response", (_request, response) => {
      socket.removeListener("error", onError)
      socket.on("error", () => {})
      const status = response.statusCode ?? 0
      resume(Effect.fail({ fatal: status === 401 || status === 404, message: `server answered HTTP ${status}` }))
      socket.terminate()
    })
    socket.once("error", onError)
    socket.once("open", () => {
      socket.removeListener("error", onError)
      // Listen now: frames the server sends right away (a ProtocolError, a close) are emitted before the fiber resumes.
      resume(Effect.succeed(Effect.runSync(fromWebSocket(socket))))
    })
    return Effect.sync(() => socket.terminate())
  })

/** Connect as `agentId`; the client runs (and reconnects) until the scope closes. */
export const make = (options: AgentClientOptions): Effect.Effect<AgentClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const url = `${options.url}${Protocol.agentPath(options.agentId)}`
    const tools = new Map<string, Protocol.ToolDefinition>([...(options.resume?.tools ?? [])].map((tool) => [tool.name, tool]))
    const pending = new Map<string, Pending>()
    const buffered: Array<Protocol.AgentEvent> = []
    const messages = yield* Queue.unbounded<typeof Protocol.UserMessage.Type>()
    const synced = yield* Deferred.make<void, AgentClientError>()
    const shutdown = yield* Deferred.make<string>()
    const fatal = yield* Deferred.make<never, AgentClientError>()
    let lastSeq = options.resume?.lastSeq ?? 0
    let current: Connection | undefined
    let callCounter = 0
    const maxBackoff = Duration.toMillis(options.maxBackoff ?? "2 seconds")
    const clientError = (message: string) => new AgentClientError({ agent: options.agentId, message })

    const send = (message: Protocol.Message) =>
      current === undefined ? Effect.void : current.send(Protocol.encode(message))

    const apply = (body: Protocol.EntryBody) =>
      Effect.gen(function* () {
        switch (body._tag) {
          case "ToolAdded":
            tools.set(body.tool.name, body.tool)
            break
          case "ToolRemoved":
            tools.delete(body.name)
            break
          case "ToolResult": {
            const call = pending.get(body.callId)
            pending.delete(body.callId)
            if (call) yield* Deferred.succeed(call.result, { isError: body.isError, text: body.text })
            break
          }
          case "UserMessage":
            if (options.onEntry === undefined) yield* Queue.offer(messages, body)
            break
          case "Shutdown":
            yield* Deferred.succeed(shutdown, body.reason)
            break
        }
        if (options.onEntry) yield* options.onEntry(body)
      })

    // Suspended: the calls pending at each sync, not those at construction (none).
    const resendPending = Effect.suspend(() =>
      Effect.forEach(
        [...pending.entries()],
        ([callId, call]) => send({ _tag: "ToolCall", callId, tool: call.tool, args: call.args }),
        { discard: true }
      )
    )

    /** One connection, until it closes. Returns whether it ever synced. */
    const session = (connection: Connection) =>
      Effect.gen(function* () {
        current = connection
        let resyncRequested = false
        let synchronized = false
        yield* send({ _tag: "Hello", protocol: Protocol.version, agentId: options.agentId, after: lastSeq })
        yield* connection.forEach((frame) =>
          Effect.gen(function* () {
            const decoded = Protocol.decode(frame)
            if (decoded._tag === "Left") return
            const message = decoded.right
            switch (message._tag) {
              case "Entry": {
                if (message.seq <= lastSeq) return
                if (message.seq > lastSeq + 1) {
                  if (!resyncRequested) {
                    resyncRequested = true
                    yield* send({ _tag: "Hello", protocol: Protocol.version, agentId: options.agentId, after: lastSeq })
                  }
                  return
                }
                resyncRequested = false
                lastSeq = message.seq
                return yield* apply(message.body)
              }
              case "Synced": {
                if (message.seq !== lastSeq || synchronized) return
                synchronized = true
                yield* Deferred.succeed(synced, undefined)
                yield* resendPending
                const events = buffered.splice(0)
                return yield* Effect.forEach(events, (event) => send({ _tag: "Event", event }), { discard: true })
              }
              case "ProtocolError":
                if (message.code === "unknown_agent" || message.code === "version" || message.code === "unauthorized") {
                  yield* Deferred.fail(fatal, clientError(message.message))
                  yield* Deferred.fail(synced, clientError(message.message))
                }
                return
            }
          })
        )
        current = undefined
        return synchronized
      })

    const loop = Effect.gen(function* () {
      let backoff = 50
      while (true) {
        if (yield* Deferred.isDone(fatal)) return
        const opened = yield* Effect.either(openSocket(url, options.token))
        if (opened._tag === "Right") {
          const connection = opened.right
          yield* Effect.addFinalizer(() => connection.close(Protocol.CloseCode.normal, "client closed"))
          const wasSynced = yield* session(connection)
          if (yield* Deferred.isDone(shutdown)) return
          if (wasSynced) backoff = 50
        } else if (opened.left.fatal) {
          yield* Deferred.fail(fatal, clientError(opened.left.message))
          yield* Deferred.fail(synced, clientError(opened.left.message))
          return
        }
        yield* Effect.sleep(Duration.millis(backoff))
        backoff = Math.min(backoff * 2, maxBackoff)
      }
    }).pipe(Effect.scoped)

    const fibers = yield* FiberSet.make()
    yield* FiberSet.run(fibers, loop)
    yield* Effect.addFinalizer(() => (current ? current.close(Protocol.CloseCode.normal, "agent stopped") : Effect.void))

    const client: AgentClient = {
      agentId: options.agentId,
      synced: Deferred.await(synced),
      tools: () => tools,
      lastSeq: () => lastSeq,
      messages,
      call: (tool, args, callId) =>
        Effect.gen(function* () {
          const id = callId ?? `${options.agentId}-${Date.now().toString(36)}-${++callCounter}`
          const result = yield* Deferred.make<ToolCallResult>()
          pending.set(id, { tool, args, result })
          yield* send({ _tag: "ToolCall", callId: id, tool, args })
          return yield* Deferred.await(result)
        }),
      emit: (event) =>
        Effect.suspend(() => {
          if (current === undefined || !current.isOpen()) {
            buffered.push(event)
            return Effect.void
          }
          return send({ _tag: "Event", event })
        }),
      shutdown: Deferred.await(shutdown),
      fatal: Deferred.await(fatal),
      dropConnection: Effect.suspend(() => (current ? current.close(4001, "dropped for a test") : Effect.void)),
      connected: () => current !== undefined && current.isOpen()
    }
    return client
  })

/**
 * A pre-started (pooled) agent program's wait for its identity: connect to
 * `/pool/<memberId>`, say `PoolHello`, and return the `Assign` that names
 * the agent it becomes. Fails if the connection cannot be made or ends first
 * (the run stopped, or dropped the member).
 */
export const awaitAssignment = (options: {
  readonly url: string
  readonly memberId: string
  readonly token: string
}): Effect.Effect<typeof Protocol.Assign.Type, AgentClientError> =>
  Effect.gen(function* () {
    const fail = (message: string) => new AgentClientError({ agent: options.memberId, message })
    const connection = yield* Effect.acquireRelease(
      openSocket(`${options.url}${Protocol.poolPath(options.memberId)}`, options.token).pipe(
        Effect.mapError((error) => fail(error.message))
      ),
      (connection) => connection.close(Protocol.CloseCode.normal, "assigned")
    )
    yield* connection.send(Protocol.encode({ _tag: "PoolHello", protocol: Protocol.version, memberId: options.memberId }))
    const assigned = yield* Deferred.make<typeof Protocol.Assign.Type, AgentClientError>()
    return yield* connection.forEach((frame) => {
      const decoded = Protocol.decode(frame)
      if (decoded._tag === "Left") return Effect.void
      if (decoded.right._tag === "Assign") return Deferred.succeed(assigned, decoded.right)
      if (decoded.right._tag === "ProtocolError") return Deferred.fail(assigned, fail(decoded.right.message))
      return Effect.void
    }).pipe(
      Effect.zipRight(Effect.fail(fail("the run closed the connection before assigning an agent"))),
      Effect.raceFirst(Deferred.await(assigned))
    )
  }).pipe(Effect.scoped)
