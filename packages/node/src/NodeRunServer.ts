/**
 * The run's WebSocket server on 127.0.0.1. It serves the run's routes: a
 * connection is accepted only for a path that exists, with that path's own
 * secret (constant-time compare), before the WebSocket opens. Refusals are
 * logged, at most one entry a second (the others are counted in it).
 *
 * @internal
 */
import { Effect, Either, FiberSet, Layer, Option } from "effect"
import { timingSafeEqual } from "node:crypto"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { WebSocketServer } from "ws"
import * as Protocol from "@ramure/protocol/Protocol"
import { Run } from "@ramure/core/Run"
import type { ConnectionRefused } from "@ramure/core/RunEvent"
import * as LogThrottle from "@ramure/core/LogThrottle"
import { RunLog } from "@ramure/core/RunLog"
import { RunRoutes } from "@ramure/core/RunRoutes"
import { fromWebSocket } from "@ramure/protocol/Connection"

export const tokenMatches = (expected: string, given: string | undefined): boolean => {
  if (given === undefined) return false
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

const headerOf = (request: http.IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** The `Hello` an agent sent in its upgrade request (`Protocol.HELLO_HEADER`), as a frame; a malformed escape is kept as is (and is malformed). */
const helloOf = (request: http.IncomingMessage): string | undefined => {
  const value = headerOf(request, Protocol.HELLO_HEADER)
  return value === undefined ? undefined : Either.getOrElse(Either.try(() => decodeURIComponent(value)), () => value)
}

const reject = (socket: Duplex, status: number, text: string) => {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  socket.destroy()
}

export interface Options {
  /** Largest accepted WebSocket frame, in bytes (default 16 MiB). */
  readonly maxMessageBytes?: number
  /**
   * Bytes a connection may leave unread before it is dropped as a slow reader
   * (default, and at least, twice `maxMessageBytes`): a client that never
   * reads cannot make the run grow. Agents are sent their log at the pace
   * they read it, so this limit only drops one that does not read at all.
   */
  readonly maxUnreadBytes?: number
}

export const layer = (options: Options = {}): Layer.Layer<Run, never, RunRoutes | RunLog> =>
  Layer.scoped(
    Run,
    Effect.gen(function* () {
      const routes = yield* RunRoutes
      const runLog = yield* RunLog
      const maxMessageBytes = options.maxMessageBytes ?? 16 * 1024 * 1024
      const connectionOptions = {
        maxBufferedBytes: Math.max(options.maxUnreadBytes ?? 0, 2 * maxMessageBytes),
        maxQueuedBytes: maxMessageBytes
      }
      const connections = yield* FiberSet.make()
      const run = yield* FiberSet.runtime(connections)<never>()

      type Refusal = Omit<typeof ConnectionRefused.Type, "_tag" | "suppressed">
      const refusals = LogThrottle.make<Refusal>((refusal, others) =>
        void runLog.unsafeLog({ process: "" }, { _tag: "ConnectionRefused", ...refusal, ...(others > 0 ? { suppressed: others } : {}) }))
      const refused = refusals.offer

      const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes })
      const server = http.createServer((_request, response) => {
        response.writeHead(426, { "content-type": "text/plain" }).end("ramure: WebSocket only\n")
      })

      server.on("upgrade", (request, socket, head) => {
        // Any request target reaches here (`//x:99999`, `//[`…): one that is not a URL path is kept as is, and is a bad path.
        const target = request.url ?? "/"
        const path = Either.getOrElse(Either.try(() => new URL(target, "http://localhost").pathname), () => target)
        const remote = request.socket.remoteAddress
        const route = Effect.runSync(routes.lookup(path))
        if (Option.isNone(route)) {
          refused({ path, reason: "not_found", ...(remote === undefined ? {} : { remote }) })
          return reject(socket, 404, "Not Found")
        }
        if (!tokenMatches(route.value.secret, headerOf(request, Protocol.TOKEN_HEADER))) {
          refused({ path, reason: "unauthorized", ...(remote === undefined ? {} : { remote }) })
          return reject(socket, 401, "Unauthorized")
        }
        wss.handleUpgrade(request, socket, head, (ws) => {
          // Listen now, not when the serving fiber starts: no frame or close can slip by unseen.
          const connection = Effect.runSync(fromWebSocket(ws, connectionOptions))
          ws.on("error", (error) => {
            // `ws` has already closed the connection with 1009 (message too big).
            if ((error as { code?: string }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
              run(runLog.log({ process: "" }, { _tag: "ProtocolViolation", code: "too_large", message: error.message, path }))
            }
          })
          run(route.value.serve(connection, helloOf(request)))
          run(Effect.flatMap(connection.closed, ({ code, reason }) =>
            code === Protocol.CloseCode.slowReader
              ? runLog.log({ process: "" }, { _tag: "ProtocolViolation", code: "slow_reader", message: reason, path })
              : Effect.void))
        })
      })

      yield* Effect.acquireRelease(
        Effect.async<void, Error>((resume) => {
          server.once("error", (error) => resume(Effect.fail(error)))
          // Room for many agents connecting at once: a full accept queue drops connections, which retry a second later.
          server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => resume(Effect.void))
        }).pipe(Effect.orDie),
        () =>
          Effect.async<void>((resume) => {
            refusals.flush()
            for (const client of wss.clients) client.terminate()
            wss.close()
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          })
      )
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      return { url: `ws://127.0.0.1:${port}`, maxMessageBytes }
    })
  )
