/**
 * A `ws` WebSocket as Effect values: frames as a Stream that ends when the
 * socket closes, `send` that never throws, `close` with a code and reason.
 */
import { Deferred, Effect, Queue, Stream } from "effect"
import type WebSocket from "ws"

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

export interface Connection {
  readonly frames: Stream.Stream<string>
  readonly send: (text: string) => Effect.Effect<void>
  readonly close: (code: number, reason: string) => Effect.Effect<void>
  readonly closed: Effect.Effect<CloseInfo>
  readonly isOpen: () => boolean
}

const OPEN = 1

export const fromWebSocket = (socket: WebSocket): Effect.Effect<Connection> =>
  Effect.gen(function* () {
    const frames = yield* Queue.unbounded<string | null>()
    const closed = yield* Deferred.make<CloseInfo>()
    socket.on("message", (data, isBinary) => {
      if (isBinary) {
        Queue.unsafeOffer(frames, "\u0000binary")
        return
      }
      Queue.unsafeOffer(frames, Array.isArray(data) ? Buffer.concat(data).toString("utf8") : data.toString())
    })
    socket.on("close", (code, reason) => {
      Queue.unsafeOffer(frames, null)
      Deferred.unsafeDone(closed, Effect.succeed({ code, reason: reason.toString() }))
    })
    socket.on("error", () => {
      // "close" follows every error; nothing to do here but keep ws from throwing.
    })
    const send = (text: string) =>
      Effect.sync(() => {
        if (socket.readyState === OPEN) socket.send(text)
      })
    const close = (code: number, reason: string) =>
      Effect.sync(() => {
        if (socket.readyState <= OPEN) socket.close(code, reason.slice(0, 120))
      })
    return {
      frames: Stream.fromQueue(frames).pipe(
        Stream.takeWhile((frame): frame is string => frame !== null)
      ),
      send,
      close,
      closed: Deferred.await(closed),
      isOpen: () => socket.readyState === OPEN
    }
  })
