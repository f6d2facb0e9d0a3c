/**
 * The CLI's side of a live run's control channel: a WebSocket to
 * `<server_url>/control` authenticated with the token from the run's registry
 * file; requests and replies matched by id; `Follow` as a Stream.
 */
import * as Protocol from "@ramure/protocol/Protocol"
import type { RegistryEntry } from "@ramure/node/Registry"
import { shortId } from "@ramure/core/RunInfo"
import { LogEntry } from "@ramure/core/RunEvent"
import * as RunStatus from "@ramure/core/RunStatus"
import { Effect, Option, Queue, Schema, type Scope, Stream } from "effect"
import WebSocket from "ws"
import { ControlFailed, RunUnreachable } from "./Errors.js"

/** What `follow` yields: log entries, then the end of the run (no outcome if the connection dropped). */
export type FollowEvent =
  | { readonly _tag: "Entry"; readonly entry: LogEntry }
  | { readonly _tag: "Ended"; readonly outcome: string | undefined }

export interface ControlClient {
  /** Send a command and wait for its reply's value. */
  readonly request: (command: Protocol.ControlCommand) => Effect.Effect<unknown, ControlFailed | RunUnreachable>
  /** The run's status. */
  readonly status: Effect.Effect<RunStatus.RunStatus, ControlFailed | RunUnreachable>
  /** The run's log entries with `n > after`, live, until the run ends. */
  readonly follow: (after: number) => Stream.Stream<FollowEvent, RunUnreachable>
}

type Incoming =
  | typeof Protocol.ControlReply.Type
  | typeof Protocol.ControlLog.Type
  | typeof Protocol.RunEnded.Type
  | { readonly _tag: "Closed"; readonly reason: string }

const open = (entry: RegistryEntry, timeoutMs: number) =>
  Effect.async<WebSocket, RunUnreachable>((resume) => {
    const run = shortId(entry.execution_id)
    const socket = new WebSocket(`${entry.server_url}${Protocol.controlPath}`, {
      headers: { [Protocol.TOKEN_HEADER]: entry.token },
      handshakeTimeout: timeoutMs
    })
    const fail = (reason: string) => {
      socket.removeAllListeners()
      socket.on("error", () => {})
      socket.terminate()
      resume(Effect.fail(new RunUnreachable({ run, reason })))
    }
    socket.once("unexpected-response", (_request, response) =>
      fail(
        response.statusCode === 401
          ? "it refused the token of its registry file"
          : `${entry.server_url} answered HTTP ${response.statusCode}`
      ))
    socket.once("error", (error) => fail(`${entry.server_url}: ${error.message} (pid ${entry.pid})`))
    socket.once("open", () => {
      socket.removeAllListeners()
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.terminate())
  })

const decodeEntry = Schema.decodeUnknownOption(LogEntry)

/** Connect to a live run; the connection closes with the scope. */
export const connect = Effect.fn("ControlClient.connect")(function* (
  entry: RegistryEntry,
  options: { readonly timeoutMs?: number } = {}
): Effect.fn.Return<ControlClient, RunUnreachable, Scope.Scope> {
  const run = shortId(entry.execution_id)
  const socket = yield* Effect.acquireRelease(open(entry, options.timeoutMs ?? 5000), (socket) =>
    Effect.sync(() => socket.close(Protocol.CloseCode.normal, "done")))
  const waiting = new Map<number, Queue.Queue<Incoming>>()
  let closed: string | undefined
  let nextId = 0

  socket.on("error", () => {
    // "close" follows.
  })
  socket.on("message", (data) => {
    const decoded = Protocol.decode(data.toString())
    if (decoded._tag === "Left") return
    const message = decoded.right
    switch (message._tag) {
      case "ControlReply":
      case "ControlLog":
        if (waiting.has(message.id)) Queue.unsafeOffer(waiting.get(message.id)!, message)
        return
      case "RunEnded":
        for (const queue of waiting.values()) Queue.unsafeOffer(queue, message)
        return
      case "ProtocolError":
        closed = `protocol error: ${message.message}`
        for (const queue of waiting.values()) Queue.unsafeOffer(queue, { _tag: "Closed", reason: closed })
        return
    }
  })
  socket.on("close", (code) => {
    closed ??= `the connection closed (code ${code})`
    for (const queue of waiting.values()) Queue.unsafeOffer(queue, { _tag: "Closed", reason: closed })
  })

  /** Register a request id and send the request; the id is forgotten with the scope. */
  const send = (command: Protocol.ControlCommand) =>
    Effect.acquireRelease(
      Effect.gen(function* () {
        const id = ++nextId
        const queue = yield* Queue.unbounded<Incoming>()
        if (closed !== undefined) return yield* new RunUnreachable({ run, reason: closed })
        waiting.set(id, queue)
        socket.send(Protocol.encode({ _tag: "ControlRequest", id, command }))
        return { id, queue }
      }),
      ({ id }) => Effect.sync(() => waiting.delete(id))
    )

  const request = (command: Protocol.ControlCommand) =>
    Effect.scoped(
      Effect.gen(function* () {
        const { queue } = yield* send(command)
        while (true) {
          const message = yield* Queue.take(queue)
          if (message._tag === "Closed") return yield* new RunUnreachable({ run, reason: message.reason })
          if (message._tag !== "ControlReply") continue
          if (message.ok) return message.value
          return yield* new ControlFailed({ run, command: command._tag, reason: message.error ?? "unknown error" })
        }
      })
    )

  const follow = (after: number): Stream.Stream<FollowEvent, RunUnreachable> =>
    Stream.unwrapScoped(
      Effect.map(send({ _tag: "Follow", after }), ({ queue }) =>
        Stream.fromQueue(queue).pipe(
          Stream.map((message): FollowEvent | undefined => {
            switch (message._tag) {
              case "ControlLog":
                return decodeEntry(message.entry).pipe(
                  Option.match({ onNone: () => undefined, onSome: (entry): FollowEvent => ({ _tag: "Entry", entry }) })
                )
              case "RunEnded":
                return { _tag: "Ended", outcome: message.outcome }
              case "ControlReply":
                return undefined
              case "Closed":
                return { _tag: "Ended", outcome: undefined }
            }
          }),
          Stream.filter((event): event is FollowEvent => event !== undefined),
          Stream.takeUntil((event) => event._tag === "Ended")
        ))
    )

  const status = Effect.flatMap(request({ _tag: "Status" }), (value) =>
    Schema.decodeUnknown(RunStatus.RunStatus)(value).pipe(
      Effect.mapError((error) => new ControlFailed({ run, command: "Status", reason: `unexpected status: ${error.message}` }))
    ))

  return { request, status, follow }
})
