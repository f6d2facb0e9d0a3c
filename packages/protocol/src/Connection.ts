/**
 * A `ws` WebSocket as Effect values: a loop over frames that ends when the
 * socket closes, `send` that never throws, `close` with a code and reason.
 *
 * Both directions are bounded. Frames received but not yet handled are
 * limited: past `maxQueuedBytes` the socket stops reading (TCP then holds the
 * peer back) until the handler catches up. Frames sent but not yet read by
 * the peer are limited too: past `maxBufferedBytes` the connection is dropped
 * (`CloseCode.slowReader`, with the reason), so a peer that never reads
 * cannot make this process grow. A writer with much to send paces itself with
 * `writable` (then a frame up to three quarters of the limit never drops a
 * peer that reads).
 */
import { Deferred, Duration, Effect, Exit, Mailbox } from "effect"
import type WebSocket from "ws"
// From the Schema-free part of the protocol: agents load this module at start.
import { CloseCode } from "./internal/wire.js"

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

export interface Connection {
  /** Run `f` on each frame, in order, until the socket closes (or `abort`). */
  readonly forEach: <E, R>(f: (frame: string) => Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>
  /** Send a frame; a peer that lets more than `maxBufferedBytes` pile up unread is dropped. */
  readonly send: (text: string) => Effect.Effect<void>
  /** Completes once what was sent is down to `lowWaterBytes` unread (at once if it is, or the connection is closed). */
  readonly writable: Effect.Effect<void>
  /** Close gracefully: frames already received are still handled. */
  readonly close: (code: number, reason: string) => Effect.Effect<void>
  /** Close, and handle nothing more of what was received; `closed` reports this code and reason. */
  readonly abort: (code: number, reason: string) => Effect.Effect<void>
  readonly closed: Effect.Effect<CloseInfo>
  readonly isOpen: () => boolean
  /** Send a ping; whether the peer answered (a pong) within `timeout`. */
  readonly ping: (timeout: Duration.DurationInput) => Effect.Effect<boolean>
  /** Drop the connection at once, without a closing handshake (for a peer that no longer answers). */
  readonly terminate: Effect.Effect<void>
}

export interface Options {
  /** Bytes sent and not yet read by the peer before it is dropped as a slow reader (default 32 MiB). */
  readonly maxBufferedBytes?: number
  /** Bytes received and not yet handled before the socket stops reading (default 16 MiB). */
  readonly maxQueuedBytes?: number
  /** What `writable` waits down to (default a quarter of `maxBufferedBytes`). */
  readonly lowWaterBytes?: number
}

const OPEN = 1

export const fromWebSocket = (socket: WebSocket, options: Options = {}): Effect.Effect<Connection> =>
  Effect.gen(function* () {
    const maxBufferedBytes = options.maxBufferedBytes ?? 32 * 1024 * 1024
    const maxQueuedBytes = options.maxQueuedBytes ?? 16 * 1024 * 1024
    const lowWaterBytes = options.lowWaterBytes ?? maxBufferedBytes / 4
    // A Mailbox, not a Queue: a taker waits without a Deferred, which on Node 20 costs more to make than a frame to handle.
    const frames = yield* Mailbox.make<string>()
    const closed = yield* Deferred.make<CloseInfo>()
    /** Why this side aborted the connection, if it did: `closed` reports it, whatever the socket says. */
    let aborted: CloseInfo | undefined
    let queuedBytes = 0
    let paused = false
    /** Frames handed to the socket, and how many of them it has written out. */
    let sent = 0
    let flushed = 0
    const flushWaiters: Array<{ readonly upTo: number; readonly resume: () => void }> = []

    socket.on("message", (data, isBinary) => {
      if (aborted !== undefined) return
      const text = isBinary ? "\u0000binary" : Array.isArray(data) ? Buffer.concat(data).toString("utf8") : data.toString()
      queuedBytes += text.length
      frames.unsafeOffer(text)
      if (!paused && queuedBytes > maxQueuedBytes) {
        paused = true
        socket.pause()
      }
    })
    socket.on("close", (code, reason) => {
      frames.unsafeDone(Exit.void)
      Deferred.unsafeDone(closed, Effect.succeed(aborted ?? { code, reason: reason.toString() }))
      for (const waiter of flushWaiters.splice(0)) waiter.resume()
    })
    socket.on("error", () => {
      // "close" follows every error; nothing to do here but keep ws from throwing.
    })

    const onFlushed = (id: number) => () => {
      flushed = Math.max(flushed, id)
      let i = 0
      while (i < flushWaiters.length) {
        if (flushWaiters[i]!.upTo <= flushed) flushWaiters.splice(i, 1)[0]!.resume()
        else i++
      }
    }

    /** Stop handling frames and close; a peer that does not read is not waited for (`terminate`). */
    const abortNow = (code: number, reason: string, terminate: boolean) => {
      if (aborted !== undefined) return
      aborted = { code, reason }
      if (socket.readyState > OPEN) return
      socket.close(code, reason.slice(0, 120))
      if (terminate) socket.terminate()
    }

    const send = (text: string) =>
      Effect.sync(() => {
        if (socket.readyState !== OPEN || aborted !== undefined) return
        socket.send(text, onFlushed(++sent))
        const buffered = socket.bufferedAmount
        if (buffered > maxBufferedBytes) {
          abortNow(
            CloseCode.slowReader,
            `the peer does not read what it is sent: ${buffered} bytes unread (the limit is ${maxBufferedBytes})`,
            true
          )
        }
      })

    const backlogged = () => socket.readyState === OPEN && socket.bufferedAmount > lowWaterBytes && flushed < sent
    const writable = Effect.suspend(() =>
      backlogged()
        ? Effect.async<void>((resume) => void flushWaiters.push({ upTo: sent, resume: () => resume(Effect.void) }))
        : Effect.void
    )

    const close = (code: number, reason: string) =>
      Effect.sync(() => {
        if (socket.readyState <= OPEN) socket.close(code, reason.slice(0, 120))
      })

    const forEach = <E, R>(f: (frame: string) => Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
      Effect.gen(function* () {
        while (true) {
          const [batch, done] = yield* frames.takeAll
          for (const frame of batch) {
            // Aborted: what is still queued is not acted on.
            if (aborted !== undefined) return
            queuedBytes -= frame.length
            yield* f(frame)
          }
          if (done) return
          if (paused && queuedBytes <= maxQueuedBytes / 2) {
            paused = false
            socket.resume()
          }
        }
      })

    const ping = (timeout: Duration.DurationInput) =>
      Effect.async<boolean>((resume) => {
        if (socket.readyState !== OPEN) return resume(Effect.succeed(false))
        const onPong = () => resume(Effect.succeed(true))
        socket.once("pong", onPong)
        socket.ping()
        return Effect.sync(() => socket.off("pong", onPong))
      }).pipe(Effect.timeoutTo({ duration: timeout, onTimeout: () => false, onSuccess: (answered) => answered }))
    return {
      forEach,
      send,
      writable,
      close,
      abort: (code, reason) => Effect.sync(() => abortNow(code, reason, false)),
      closed: Deferred.await(closed),
      isOpen: () => socket.readyState === OPEN,
      ping,
      terminate: Effect.sync(() => socket.terminate())
    }
  })
