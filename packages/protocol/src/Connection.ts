/**
 * A `ws` WebSocket as Effect values: a loop over frames that ends when the
 * socket closes, `send` that never throws, `close` with a code and reason.
 */
import { Deferred, Effect, Queue } from "effect"
import type WebSocket from "ws"

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

export interface Connection {
  /** Run `f` on each frame, in order, until the socket closes. */
  readonly forEach: <E, R>(f: (frame: string) => Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>
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
    const forEach = <E, R>(f: (frame: string) => Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
      Effect.gen(function* () {
        while (true) {
          for (const frame of yield* Queue.takeBetween(frames, 1, Number.MAX_SAFE_INTEGER)) {
            if (frame === null) return
            yield* f(frame)
          }
        }
      })
    return {
      forEach,
      send,
      close,
      closed: Deferred.await(closed),
      isOpen: () => socket.readyState === OPEN
    }
  })
