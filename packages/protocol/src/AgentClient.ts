/**
 * The agent's side of the protocol, shared by the pi extension and the
 * scripted driver: connect, replicate the agent's log in order (resync on a
 * gap, drop duplicates), reconnect with backoff, and keep tool calls alive
 * across reconnects.
 *
 * Every call gets exactly one answer: its result, or an error result that
 * says why there is none (the call's message is over the run's frame limit,
 * the run asked the agent to shut down, refused it, or the client closed).
 */
import { Data, Deferred, Duration, Effect, Either, FiberSet, Queue, Scope, Stream, SubscriptionRef } from "effect"
import WebSocket from "ws"
import { fromWebSocket, type Connection } from "./Connection.js"
import * as Wire from "./internal/wire.js"
import type * as Protocol from "./Protocol.js"

/** Where the run is and the secret it expects. */
export interface Address {
  /** The run's server, `ws://127.0.0.1:<port>`. */
  readonly url: string
  readonly token: string
}

export interface AgentClientOptions extends Address {
  readonly agentId: string
  /**
   * Where the run is now, asked before every connection attempt (the run
   * may move: a resumed run listens elsewhere); `undefined` keeps `url` and
   * `token`.
   */
  readonly address?: Effect.Effect<Address | undefined>
  /** Completes when the address may have changed: a waiting reconnect is tried at once (see `RunAddress.changes`). */
  readonly addressChanged?: Effect.Effect<void>
  /**
   * Called for every log entry, in order, exactly once. With it, user messages
   * are left to this callback and not queued on `messages`.
   */
  readonly onEntry?: (body: Protocol.EntryBody) => Effect.Effect<void>
  /**
   * Called whenever the client becomes reachable (synced on a live
   * connection) or stops being so (the connection closed).
   */
  readonly onReachable?: (reachable: boolean) => Effect.Effect<void>
  /** Called for every `Budget` frame, after the client's own view (`budget`) took it in. */
  readonly onBudget?: (budget: Protocol.Budget) => Effect.Effect<void>
  /** Longest pause between reconnect attempts (default 2 s). */
  readonly maxBackoff?: Duration.DurationInput
  /**
   * Ping the run every `interval`; a connection whose pong does not come
   * within `timeout` is dropped (and reconnected): a run that stopped
   * answering is noticed. Off by default.
   */
  readonly heartbeat?: { readonly interval: Duration.DurationInput; readonly timeout: Duration.DurationInput }
  /** The largest frame to send until the run says its own limit (default 16 MiB, the run's default). */
  readonly maxFrameBytes?: number
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

/**
 * The run refused the agent, or did not answer. A `Data` error, not a Schema
 * class: this module loads in every pi at start, without Schema (see
 * `internal/wire.ts`).
 */
export class AgentClientError extends Data.TaggedError("AgentClientError")<{
  readonly agent: string
  readonly message: string
}> {}

/**
 * The agent's view of the budgets above it. `limited` once the run has said
 * the agent is under a budget; `unanswered` counts its `TurnStarted` events
 * the run has not answered yet.
 */
export interface BudgetView {
  readonly limited: boolean
  readonly state: Protocol.Budget["state"]
  readonly reason: string | undefined
  readonly unanswered: number
}

const unlimited: BudgetView = { limited: false, state: "open", reason: undefined, unanswered: 0 }

/** Whether a model turn may start now: no budget, or every turn answered and the budget open. */
export const mayStartTurn = (view: BudgetView): boolean => !view.limited || (view.unanswered === 0 && view.state === "open")

export interface AgentClient {
  readonly agentId: string
  /** Completes after the first full sync (the initial tool list is known). */
  readonly synced: Effect.Effect<void, AgentClientError>
  readonly tools: () => ReadonlyMap<string, Protocol.ToolDefinition>
  readonly lastSeq: () => number
  /** User messages, in order (unless `onEntry` handles them). */
  readonly messages: Queue.Dequeue<typeof Protocol.UserMessage.Type>
  /**
   * Call a tool of this agent; survives reconnects. `callId` names the call
   * (default: a fresh one); a call is run once per id.
   */
  readonly call: (tool: string, args: unknown, callId?: string) => Effect.Effect<ToolCallResult>
  readonly emit: (event: Protocol.AgentEvent) => Effect.Effect<void>
  /** Where the agent stands against its budgets (see `BudgetView`). */
  readonly budget: () => BudgetView
  /**
   * Wait until a model turn may start (at once without a budget): its
   * `TurnStarted` answered and the budget open. `stopped` if the run stops
   * the agent for its budget instead (the turn must not go on).
   */
  readonly awaitTurn: Effect.Effect<"open" | "stopped">
  /** Completes with the reason when the runtime asks the agent to shut down. */
  readonly shutdown: Effect.Effect<string>
  /** Fails if the runtime refuses this agent before it ever synced (bad token, unknown agent). */
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

/** The default largest frame (the run's default `maxMessageBytes`). */
export const defaultMaxFrameBytes = 16 * 1024 * 1024

/** `17,825,812 bytes (17 MiB)`: exact, and readable when large. */
const formatBytes = (bytes: number): string =>
  `${bytes.toLocaleString("en-US")} bytes${bytes >= 1024 * 1024 ? ` (${Math.floor(bytes / (1024 * 1024))} MiB)` : ""}`

/** A message as a frame, or why it cannot be one (a value JSON cannot hold). */
const encodeFrame = (message: Wire.AgentMessage): Either.Either<string, string> =>
  Either.try({ try: () => Wire.encode(message), catch: (error) => (error instanceof Error ? error.message : String(error)) })

/** Open a connection; `hello`, if given, rides in the upgrade request (`Wire.HELLO_HEADER`). */
const openSocket = (url: string, token: string, hello?: Wire.AgentMessage) =>
  Effect.async<Connection, { readonly fatal: boolean; readonly message: string }>((resume) => {
    const headers = {
      [Wire.TOKEN_HEADER]: token,
      ...(hello === undefined ? {} : { [Wire.HELLO_HEADER]: encodeURIComponent(Wire.encode(hello)) })
    }
    const socket = new WebSocket(url, { headers })
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

/** Ping the run now and then; one that does not answer in time loses its connection. */
const heartbeat = (connection: Connection, options: AgentClientOptions["heartbeat"]) =>
  options === undefined ? Effect.void : Effect.gen(function* () {
    while (true) {
      yield* Effect.sleep(options.interval)
      if (!(yield* connection.ping(options.timeout))) return yield* connection.terminate
    }
  })

/** Connect as `agentId`; the client runs (and reconnects) until the scope closes. */
export const make = (options: AgentClientOptions): Effect.Effect<AgentClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const path = Wire.agentPath(options.agentId)
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
    let maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes
    /** `TurnStarted` events sent on the current connection. */
    let turnsSent = 0
    const budget = yield* SubscriptionRef.make(unlimited)
    let budgetNow = unlimited
    const setBudget = (f: (view: BudgetView) => BudgetView) =>
      SubscriptionRef.updateAndGet(budget, f).pipe(Effect.tap((view) => Effect.sync(() => (budgetNow = view))))
    /** Set once calls can no longer be answered by the run: later calls get this at once. */
    let closedBecause: string | undefined
    const maxBackoff = Duration.toMillis(options.maxBackoff ?? "2 seconds")
    const clientError = (message: string) => new AgentClientError({ agent: options.agentId, message })
    const unanswered = (reason: string): ToolCallResult => ({ isError: true, text: `ramure: the tool call got no result: ${reason}` })

    /** Answer every pending call with why it gets no result; and every later call. */
    const settleAll = (reason: string) =>
      Effect.suspend(() => {
        closedBecause ??= reason
        const calls = [...pending.values()]
        pending.clear()
        return Effect.forEach(calls, (call) => Deferred.succeed(call.result, unanswered(reason)), { discard: true })
      })

    const sendFrame = (frame: string) => (current === undefined ? Effect.void : current.send(frame))
    const send = (message: Wire.AgentMessage) =>
      Either.match(encodeFrame(message), { onLeft: () => Effect.void, onRight: sendFrame })

    /** Send a pending call, unless its frame is over the limit (or not JSON): then it is answered with why. */
    const sendCall = (callId: string, call: Pending) =>
      Effect.suspend(() => {
        const frame = encodeFrame({ _tag: "ToolCall", callId, tool: call.tool, args: call.args })
        const problem = Either.isLeft(frame)
          ? `its arguments cannot be sent as JSON (${frame.left})`
          : Buffer.byteLength(frame.right, "utf8") > maxFrameBytes
          ? `its message is ${formatBytes(Buffer.byteLength(frame.right, "utf8"))}, over the run's limit of ${formatBytes(maxFrameBytes)} per message; send less (a file path instead of its content)`
          : undefined
        if (problem === undefined) return sendFrame(Either.getOrThrow(frame))
        pending.delete(callId)
        return Deferred.succeed(call.result, unanswered(`tool "${call.tool}" was not called: ${problem}`))
      })

    /** Send an event; one that cannot go (over the limit, not JSON) is replaced by an `EventDropped` that says why. */
    const sendEvent = (event: Protocol.AgentEvent) =>
      Either.match(encodeFrame({ _tag: "Event", event }), {
        onLeft: (reason) => send({ _tag: "Event", event: { _tag: "EventDropped", event: event._tag, reason } }),
        onRight: (frame) => {
          const size = Buffer.byteLength(frame, "utf8")
          if (event._tag === "TurnStarted" && size <= maxFrameBytes) turnsSent++
          return size <= maxFrameBytes ? sendFrame(frame) : send({
            _tag: "Event",
            event: {
              _tag: "EventDropped",
              event: event._tag,
              reason: `it is ${formatBytes(size)}, over the run's limit of ${formatBytes(maxFrameBytes)} per message`
            }
          })
        }
      })

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
            // Results come before the Shutdown in the log: what is still pending will not be answered.
            yield* settleAll(`the run asked the agent to shut down (${body.reason})`)
            yield* Deferred.succeed(shutdown, body.reason)
            break
        }
        if (options.onEntry) yield* options.onEntry(body)
      })

    // Suspended: the calls pending at each sync, not those at construction (none).
    const resendPending = Effect.suspend(() =>
      Effect.forEach([...pending.entries()], ([callId, call]) => sendCall(callId, call), { discard: true })
    )

    const helloMessage = (): Wire.AgentMessage => ({ _tag: "Hello", protocol: Wire.version, agentId: options.agentId, after: lastSeq })
    const hello = Effect.suspend(() => send(helloMessage()))

    /** One connection, whose upgrade request said `Hello`, until it closes. Returns whether it ever synced. */
    const session = (connection: Connection) =>
      Effect.gen(function* () {
        let resyncRequested = false
        let synchronized = false
        /** Whether the run has said where the agent stands on this connection (its first `Budget` frame). */
        let budgetTold = false
        yield* Effect.addFinalizer(() => connection.close(Wire.CloseCode.normal, "client closed"))
        current = connection
        turnsSent = 0
        yield* Effect.forkScoped(heartbeat(connection, options.heartbeat))
        yield* connection.forEach((frame) =>
          Effect.gen(function* () {
            const message = Wire.decode(frame)
            switch (message?._tag) {
              case "Entry": {
                if (message.seq <= lastSeq) return
                if (message.seq > lastSeq + 1) {
                  if (!resyncRequested) {
                    resyncRequested = true
                    yield* hello
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
                // The run tells an agent under a budget so before `Synced`: silence means none (any more).
                if (!budgetTold) yield* setBudget(() => unlimited)
                if (message.maxFrameBytes !== undefined && message.maxFrameBytes > 0) maxFrameBytes = message.maxFrameBytes
                yield* resendPending
                yield* Effect.forEach(buffered.splice(0), sendEvent, { discard: true })
                if (options.onReachable) yield* options.onReachable(true)
                return yield* Deferred.succeed(synced, undefined)
              }
              case "Budget": {
                // A connection's first frame comes before any answer on it: the turns still to be answered
                // are those sent on it and those waiting to be (an answer lost with an earlier connection
                // never comes).
                const pending = budgetTold ? undefined : turnsSent + buffered.filter((event) => event._tag === "TurnStarted").length
                budgetTold = true
                yield* setBudget((view) => ({
                  limited: true,
                  state: message.state,
                  reason: message.reason,
                  unanswered: Math.max(0, (pending ?? view.unanswered) - message.answers)
                }))
                if (options.onBudget) yield* options.onBudget(message)
                return
              }
              case "ProtocolError":
                if (message.code === "unknown_agent" || message.code === "version" || message.code === "unauthorized") {
                  yield* refuse(message.message)
                }
                return
            }
          })
        )
        current = undefined
        if (synchronized && options.onReachable) yield* options.onReachable(false)
        return synchronized
      }).pipe(Effect.scoped)

    /**
     * The run refuses this agent. Before the first sync that is final (a wrong
     * token, an agent the run does not know); after it, a run that comes back
     * (resumed, elsewhere) may not know the agent yet: keep trying.
     */
    const refuse = (message: string) =>
      Effect.gen(function* () {
        if (yield* Deferred.isDone(synced)) return
        yield* Deferred.fail(fatal, clientError(message))
        yield* Deferred.fail(synced, clientError(message))
        yield* settleAll(`the run refused the agent (${message})`)
      })

    const connectTo = Effect.gen(function* () {
      const moved = options.address === undefined ? undefined : yield* options.address
      const address = moved ?? options
      return yield* Effect.either(openSocket(`${address.url}${path}`, address.token, helloMessage()))
    })

    const loop = Effect.gen(function* () {
      let backoff = 50
      while (true) {
        if (yield* Deferred.isDone(fatal)) return
        const opened = yield* connectTo
        if (opened._tag === "Right") {
          const wasSynced = yield* session(opened.right)
          if (yield* Deferred.isDone(shutdown)) return
          if (wasSynced) backoff = 50
        } else if (opened.left.fatal) {
          yield* refuse(opened.left.message)
        }
        yield* Effect.sleep(Duration.millis(backoff)).pipe(
          Effect.raceFirst(options.addressChanged ?? Effect.never)
        )
        backoff = Math.min(backoff * 2, maxBackoff)
      }
    })

    const fibers = yield* FiberSet.make()
    yield* FiberSet.run(fibers, loop)
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        settleAll("the agent's connection to its run was closed"),
        current ? current.close(Wire.CloseCode.normal, "agent stopped") : Effect.void
      )
    )

    const call = (tool: string, args: unknown, callId?: string) =>
      Effect.gen(function* () {
        if (closedBecause !== undefined) return unanswered(closedBecause)
        const id = callId ?? `${options.agentId}-${Date.now().toString(36)}-${++callCounter}`
        const entry: Pending = { tool, args, result: yield* Deferred.make<ToolCallResult>() }
        pending.set(id, entry)
        if (current !== undefined) yield* sendCall(id, entry)
        return yield* Deferred.await(entry.result).pipe(
          // An abandoned call is not sent again on the next reconnect.
          Effect.onInterrupt(() => Effect.sync(() => pending.get(id) === entry && pending.delete(id)))
        )
      })

    const client: AgentClient = {
      agentId: options.agentId,
      synced: Deferred.await(synced),
      tools: () => tools,
      lastSeq: () => lastSeq,
      messages,
      call,
      emit: (event) =>
        Effect.suspend(() => {
          // A turn of an agent under a budget waits for the run's answer (`awaitTurn`).
          const counted = event._tag === "TurnStarted" && budgetNow.limited
            ? Effect.asVoid(setBudget((view) => ({ ...view, unanswered: view.unanswered + 1 })))
            : Effect.void
          if (current === undefined || !current.isOpen()) {
            buffered.push(event)
            return counted
          }
          return Effect.zipRight(counted, sendEvent(event))
        }),
      budget: () => budgetNow,
      awaitTurn: budget.changes.pipe(
        Stream.filter((view) => mayStartTurn(view) || view.state === "stopped"),
        Stream.runHead,
        Effect.map((view) => (view._tag === "Some" && view.value.state === "stopped" ? "stopped" : "open"))
      ),
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
  /** As for `make`: a run that stops answering ends the wait. */
  readonly heartbeat?: AgentClientOptions["heartbeat"]
}): Effect.Effect<typeof Protocol.Assign.Type, AgentClientError> =>
  Effect.gen(function* () {
    const fail = (message: string) => new AgentClientError({ agent: options.memberId, message })
    const connection = yield* Effect.acquireRelease(
      openSocket(`${options.url}${Wire.poolPath(options.memberId)}`, options.token).pipe(
        Effect.mapError((error) => fail(error.message))
      ),
      (connection) => connection.close(Wire.CloseCode.normal, "assigned")
    )
    yield* connection.send(Wire.encode({ _tag: "PoolHello", protocol: Wire.version, memberId: options.memberId }))
    yield* Effect.forkScoped(heartbeat(connection, options.heartbeat))
    const assigned = yield* Deferred.make<typeof Protocol.Assign.Type, AgentClientError>()
    return yield* connection.forEach((frame) => {
      const message = Wire.decode(frame)
      if (message?._tag === "Assign") return Deferred.succeed(assigned, message)
      if (message?._tag === "ProtocolError") return Deferred.fail(assigned, fail(message.message))
      return Effect.void
    }).pipe(
      Effect.zipRight(Effect.fail(fail("the run closed the connection before assigning an agent"))),
      Effect.raceFirst(Deferred.await(assigned))
    )
  }).pipe(Effect.scoped)
