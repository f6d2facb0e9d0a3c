/**
 * A hand-played run for tests of the agent's side: a bare WebSocket server on
 * 127.0.0.1 that hands each agent connection to the test, which answers as
 * a run would (or would not).
 */
import { Effect, Queue, type Scope } from "effect"
import { WebSocketServer, type WebSocket } from "ws"
import * as Protocol from "@ramure/protocol/Protocol"

export interface Peer {
  readonly send: (message: Protocol.Message) => void
  /** The next message from the client (fails after 3 s); first the `Hello` of its upgrade request, if any. */
  readonly next: Effect.Effect<Protocol.Message, Error>
  /** Messages received and not taken yet. */
  readonly pending: Effect.Effect<number>
  readonly close: (code: number, reason: string) => void
  /** The agent's path (`/agents/<id>`) and the token it presented. */
  readonly path: string
  readonly token: string | undefined
}

export interface RawRuntime {
  readonly url: string
  readonly connections: Queue.Dequeue<Peer>
  readonly accepted: () => number
}

export interface RawRuntimeOptions {
  /** Take over each socket instead of queueing a `Peer` for it. */
  readonly onConnection?: (socket: WebSocket) => void
  /** Answer pings (default: yes, as `ws` does). */
  readonly autoPong?: boolean
}

export const rawRuntime = (
  options: RawRuntimeOptions | ((socket: WebSocket) => void) = {}
): Effect.Effect<RawRuntime, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { autoPong = true, onConnection } = typeof options === "function" ? { onConnection: options } : options
    const connections = yield* Queue.unbounded<Peer>()
    let accepted = 0
    const wss = yield* Effect.acquireRelease(
      Effect.async<WebSocketServer>((resume) => {
        const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, autoPong })
        wss.once("listening", () => resume(Effect.succeed(wss)))
      }),
      (wss) =>
        Effect.async<void>((resume) => {
          for (const client of wss.clients) client.terminate()
          wss.close(() => resume(Effect.void))
        })
    )
    wss.on("connection", (socket, request) => {
      accepted++
      if (onConnection) return onConnection(socket)
      const received = Effect.runSync(Queue.unbounded<Protocol.Message>())
      const receive = (frame: string) => {
        const decoded = Protocol.decode(frame)
        if (decoded._tag === "Right") Queue.unsafeOffer(received, decoded.right)
      }
      // A Hello in the upgrade request comes first, as the run takes it.
      const hello = request.headers[Protocol.HELLO_HEADER]
      if (typeof hello === "string") receive(decodeURIComponent(hello))
      socket.on("message", (data) => receive(data.toString()))
      const token = request.headers[Protocol.TOKEN_HEADER]
      Queue.unsafeOffer(connections, {
        send: (message) => socket.send(Protocol.encode(message)),
        next: Queue.take(received).pipe(
          Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("the client sent nothing") })
        ),
        pending: Queue.size(received),
        close: (code, reason) => socket.close(code, reason),
        path: request.url ?? "",
        token: Array.isArray(token) ? token[0] : token
      })
    })
    const address = wss.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    return { url: `ws://127.0.0.1:${port}`, connections, accepted: () => accepted }
  })

export const entry = (seq: number, body: Protocol.EntryBody): Protocol.Message => ({ _tag: "Entry", seq, body })
export const say = (text: string): Protocol.EntryBody => ({ _tag: "UserMessage", text })
