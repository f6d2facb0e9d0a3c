/**
 * The control channel of a run (`/control`): `ControlRpcs` served with
 * `@effect/rpc` over the run's own WebSocket connections, answered from the
 * run's services. Streams (`Follow`) are acknowledged chunk by chunk, so a
 * client that stops reading stops the stream instead of filling the run's
 * memory.
 *
 * @internal
 */
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { AgentSessions } from "@ramure/core/AgentSessions"
import { Budgets } from "@ramure/core/Budget"
import type { AgentNotLive, MessageTooLarge } from "@ramure/core/Errors"
import { ControlRpcs, RunControl, UnknownAgent } from "@ramure/core/RunControl"
import { RunLog } from "@ramure/core/RunLog"
import { CloseCode } from "@ramure/protocol/Protocol"
import type { Connection } from "@ramure/protocol/Connection"
import { Effect, Mailbox, Option, Schema, type Scope, Stream, SubscriptionRef } from "effect"

/** An id `@effect/rpc` turns into a bigint. */
const RequestId = Schema.String.pipe(Schema.pattern(/^\d{1,20}$/))

/**
 * What a control client may send, checked before `@effect/rpc` sees it: a
 * holder of the control secret still cannot crash the control server with a
 * malformed message.
 */
const ClientMessage = Schema.Union(
  Schema.Struct({
    _tag: Schema.Literal("Request"),
    id: RequestId,
    tag: Schema.String,
    payload: Schema.Unknown,
    headers: Schema.Array(Schema.mutable(Schema.Tuple(Schema.String, Schema.String))),
    traceId: Schema.optional(Schema.String),
    spanId: Schema.optional(Schema.String),
    sampled: Schema.optional(Schema.Boolean)
  }),
  Schema.Struct({ _tag: Schema.Literal("Ack", "Interrupt"), requestId: RequestId }),
  Schema.Struct({ _tag: Schema.Literal("Eof", "Ping") })
)
const decodeClientMessage = Schema.decodeUnknownOption(ClientMessage)

/** How each control request is answered; `following` counts the `Follow` streams still being served. */
const handlers = (following: SubscriptionRef.SubscriptionRef<number>) => ControlRpcs.toLayer(
  Effect.gen(function* () {
    const runLog = yield* RunLog
    const control = yield* RunControl
    const sessions = yield* AgentSessions
    const budgets = yield* Budgets
    return {
      Status: () => runLog.status,
      Send: ({ agent, text }) =>
        Effect.flatMap(sessions.lookup(agent), (session): Effect.Effect<void, UnknownAgent | AgentNotLive | MessageTooLarge> =>
          Option.match(session, {
            onNone: () => Effect.flatMap(sessions.ids, (live) => new UnknownAgent({ agent, live })),
            onSome: (session) => session.deliver(text, { via: "control" })
          })),
      Call: ({ args, endpoint, process }) => control.call(process, endpoint, args, "cli"),
      // A live agent's id names the agent; any other name, a process path.
      Budget: ({ by, target }) =>
        Effect.flatMap(sessions.lookup(target), (session) =>
          budgets.raise(Option.isSome(session) ? { agent: target } : { process: target }, by, "cli")),
      Stop: ({ reason }) => control.requestStop(reason ?? "stopped from the CLI"),
      Follow: ({ after }) =>
        Stream.acquireRelease(SubscriptionRef.update(following, (n) => n + 1), () => SubscriptionRef.update(following, (n) => n - 1)).pipe(
          Stream.flatMap(() => runLog.entries({ after: after ?? 0 })),
          Stream.takeUntil((entry) => entry.event._tag === "RunEnded")
        )
    }
  })
)

/**
 * An `RpcServer.Protocol` whose clients are the run's control connections:
 * `serve` runs one connection until it closes.
 */
const makeProtocol = Effect.gen(function* () {
  const serialization = RpcSerialization.json
  const disconnects = yield* Mailbox.make<number>()
  const clients = new Map<number, (response: FromServerEncoded) => Effect.Effect<void>>()
  let nextId = 0
  let writeRequest: (clientId: number, message: FromClientEncoded) => Effect.Effect<void> = () => Effect.void

  const protocol = yield* RpcServer.Protocol.make((write) => {
    writeRequest = write
    return Effect.succeed({
      disconnects,
      send: (clientId, response) => clients.get(clientId)?.(response) ?? Effect.void,
      end: () => Effect.void,
      clientIds: Effect.sync(() => new Set(clients.keys())),
      initialMessage: Effect.succeedNone,
      supportsAck: true,
      supportsTransferables: false,
      supportsSpanPropagation: true
    })
  })

  const serve = (connection: Connection) =>
    Effect.gen(function* () {
      const id = nextId++
      const parser = serialization.unsafeMake()
      clients.set(id, (response) =>
        Effect.suspend(() => {
          const encoded = parser.encode(response)
          return typeof encoded === "string" ? connection.send(encoded) : Effect.void
        }))
      yield* Effect.addFinalizer(() => Effect.zipRight(Effect.sync(() => clients.delete(id)), disconnects.offer(id)))
      yield* connection.forEach((frame) =>
        Effect.suspend(() => {
          let messages: ReadonlyArray<unknown>
          try {
            messages = parser.decode(frame)
          } catch (error) {
            return connection.close(CloseCode.invalidPayload, `not JSON: ${String(error).slice(0, 80)}`)
          }
          return Effect.forEach(messages, (message) =>
            Option.match(decodeClientMessage(message), {
              onNone: () => connection.close(CloseCode.invalidPayload, "not a control message"),
              onSome: (decoded) => writeRequest(id, decoded)
            }), { discard: true })
        })
      )
    }).pipe(Effect.scoped)

  return { protocol, serve }
})

/**
 * The control channel: `serve` answers a control connection; the server
 * behind it runs until the scope closes.
 */
export const make: Effect.Effect<
  {
    readonly serve: (connection: Connection) => Effect.Effect<void>
    /** Wait (up to 2 s) for every `Follow` to have delivered the run's end. */
    readonly drain: Effect.Effect<void>
  },
  never,
  RunLog | RunControl | AgentSessions | Budgets | Scope.Scope
> = Effect.gen(function* () {
  const { protocol, serve } = yield* makeProtocol
  const following = yield* SubscriptionRef.make(0)
  yield* RpcServer.make(ControlRpcs).pipe(
    Effect.provideService(RpcServer.Protocol, protocol),
    Effect.provide(handlers(following)),
    Effect.forkScoped
  )
  return {
    serve,
    drain: following.changes.pipe(
      Stream.takeUntil((n) => n === 0),
      Stream.runDrain,
      Effect.timeout("2 seconds"),
      Effect.ignore
    )
  }
})
