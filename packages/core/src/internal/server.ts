/**
 * The run's WebSocket server on 127.0.0.1: authenticates every upgrade with
 * the run's token (constant-time compare) before accepting it, then serves
 * agents on `/agents/<id>` and the CLI on `/control`.
 */
import { Deferred, Effect, Either, Fiber, FiberSet, Stream } from "effect"
import { timingSafeEqual } from "node:crypto"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import { WebSocketServer } from "ws"
import * as Protocol from "../Protocol.js"
import type { RuntimeService } from "../Runtime.js"
import * as AgentSession from "./agentSession.js"
import { fromWebSocket, type Connection } from "./socket.js"

export const tokenMatches = (expected: string, given: string | undefined): boolean => {
  if (given === undefined) return false
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** The id in a `/<kind>/<id>` path; `undefined` for any other path, or an id with a malformed escape. */
const idOf = (kind: "agents" | "pool", path: string): string | undefined => {
  const match = new RegExp(`^/${kind}/([^/]+)$`).exec(path)
  return match === null ? undefined : Either.getOrUndefined(Either.try(() => decodeURIComponent(match[1]!)))
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

export const start = (runtime: RuntimeService, options: { readonly maxMessageBytes: number }) =>
  Effect.gen(function* () {
    const fibers = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(fibers)<never>()
    /** `Follow` streams; the server waits (briefly) for them to deliver the run's end before it closes. */
    const followers = yield* FiberSet.make()
    const logRuntime = (type: string, data: unknown, agent?: string) =>
      runtime.log({ type, process: "", agent, data })

    const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes })
    const server = http.createServer((_request, response) => {
      response.writeHead(426, { "content-type": "text/plain" }).end("ramure: WebSocket only\n")
    })

    server.on("upgrade", (request, socket, head) => {
      // Any request target reaches here (`//x:99999`, `//[`…): one that is not a URL path is kept as is, and is a bad path.
      const target = request.url ?? "/"
      const path = Either.getOrElse(Either.try(() => new URL(target, "http://localhost").pathname), () => target)
      const given = headerOf(request, Protocol.TOKEN_HEADER)
      if (!tokenMatches(runtime.token, given)) {
        run(logRuntime("unauthorized", { path, remote: request.socket.remoteAddress, tokenGiven: given !== undefined }))
        return reject(socket, 401, "Unauthorized")
      }
      const agentId = idOf("agents", path)
      const memberId = idOf("pool", path)
      if (agentId === undefined && memberId === undefined && path !== Protocol.controlPath) {
        run(logRuntime("protocol_error", { code: "bad_path", path }))
        return reject(socket, 404, "Not Found")
      }
      wss.handleUpgrade(request, socket, head, (ws) => {
        // Listen now, not when the serving fiber starts: no frame or close can slip by unseen.
        const connection = Effect.runSync(fromWebSocket(ws))
        // `ws` has already closed the connection with 1009 (message too big).
        ws.on("error", (error) => {
          if ((error as { code?: string }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
            const agent = agentId !== undefined && runtime.sessions.has(agentId) ? agentId : undefined
            run(logRuntime("protocol_error", { code: "too_large", path, message: error.message }, agent))
          }
        })
        run(
          agentId !== undefined
            ? serveAgent(agentId, connection, helloOf(request))
            : memberId !== undefined
            ? servePoolMember(memberId, connection)
            : serveControl(runtime, connection, followers)
        )
      })
    })

    const serveAgent = (agentId: string, connection: Connection, hello: string | undefined) =>
      Effect.gen(function* () {
        const session = runtime.sessions.get(agentId)
        if (session === undefined) {
          yield* logRuntime("protocol_error", { code: "unknown_agent", agentId })
          yield* connection.send(
            Protocol.encode({ _tag: "ProtocolError", code: "unknown_agent", message: `no agent "${agentId}" in this run` })
          )
          return yield* connection.close(Protocol.CloseCode.unknownAgent, "unknown agent")
        }
        yield* AgentSession.serve(session, connection, { maxFrameBytes: options.maxMessageBytes, first: hello })
      })

    const servePoolMember = (memberId: string, connection: Connection) =>
      Effect.suspend(() => {
        const serve = runtime.poolMembers.get(memberId)
        if (serve !== undefined) return serve(connection)
        return Effect.zipRight(
          logRuntime("protocol_error", { code: "unknown_agent", memberId }),
          Effect.zipRight(
            connection.send(
              Protocol.encode({ _tag: "ProtocolError", code: "unknown_agent", message: `no pool member "${memberId}" in this run` })
            ),
            connection.close(Protocol.CloseCode.unknownAgent, "unknown pool member")
          )
        )
      })

    yield* Effect.acquireRelease(
      Effect.async<void, Error>((resume) => {
        server.once("error", (error) => resume(Effect.fail(error)))
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }).pipe(Effect.orDie),
      () =>
        Effect.zipRight(
          FiberSet.awaitEmpty(followers).pipe(Effect.interruptible, Effect.timeout("2 seconds"), Effect.ignore),
          Effect.async<void>((resume) => {
            for (const client of wss.clients) client.terminate()
            wss.close()
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          })
        )
    )
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    return `ws://127.0.0.1:${port}`
  })

/** The CLI's control channel: request/reply, plus streaming for `Follow`. */
const serveControl = (runtime: RuntimeService, connection: Connection, followers: FiberSet.FiberSet) =>
  Effect.gen(function* () {
    const requests = yield* FiberSet.make()
    const reply = (id: number, result: { ok: true; value: unknown } | { ok: false; error: string }) =>
      connection.send(Protocol.encode({ _tag: "ControlReply", id, ...result }))

    const handle = (id: number, command: Protocol.ControlCommand): Effect.Effect<void> => {
      switch (command._tag) {
        case "Status":
          return Effect.flatMap(runtime.status, (value) => reply(id, { ok: true, value }))
        case "Send": {
          const session = runtime.sessions.get(command.agent)
          if (session === undefined) {
            return reply(id, {
              ok: false,
              error: `no agent "${command.agent}" (agents: ${[...runtime.sessions.keys()].join(", ") || "none"})`
            })
          }
          return Effect.gen(function* () {
            yield* AgentSession.append(session, { _tag: "UserMessage", text: command.text })
            yield* session.log("message", { text: command.text, via: "control" })
            yield* session.events.append({ _tag: "message", text: command.text, from: undefined })
            yield* reply(id, { ok: true, value: null })
          })
        }
        case "Call": {
          const root = runtime.root
          if (root === undefined) return reply(id, { ok: false, error: "the run has no root process endpoints" })
          return root.call(command.endpoint, command.args).pipe(
            Effect.matchEffect({
              onSuccess: (value) => reply(id, { ok: true, value: value === undefined ? null : value }),
              onFailure: (error) => reply(id, { ok: false, error: error.message })
            })
          )
        }
        case "Stop":
          return Effect.zipRight(
            Deferred.succeed(runtime.stopRequested, command.reason ?? "stopped from the CLI"),
            reply(id, { ok: true, value: null })
          )
        case "Follow": {
          // Ends when the run does: then `RunEnded`, the reply, and a clean close once the CLI has read it all.
          let outcome = "ended"
          const follow = runtime.entries.stream(0).pipe(
            Stream.filter((entry) => entry.n > (command.after ?? 0)),
            Stream.runForEach((entry) => {
              if (entry.type === "run_ended") outcome = String((entry.data as { outcome?: unknown })?.outcome ?? outcome)
              return connection.send(Protocol.encode({ _tag: "ControlLog", id, entry }))
            }),
            Effect.zipRight(Effect.suspend(() => connection.send(Protocol.encode({ _tag: "RunEnded", outcome })))),
            Effect.zipRight(reply(id, { ok: true, value: null })),
            Effect.zipRight(connection.close(Protocol.CloseCode.normal, "run ended")),
            Effect.zipRight(connection.closed.pipe(Effect.timeout("1 second"), Effect.ignore))
          )
          return Effect.acquireUseRelease(FiberSet.run(followers, Effect.interruptible(follow)), Fiber.join, Fiber.interrupt)
        }
      }
    }

    yield* connection.forEach((frame) => {
        const decoded = Protocol.decode(frame)
        if (decoded._tag === "Left") {
          return connection.send(
            Protocol.encode({ _tag: "ProtocolError", code: decoded.left.code, message: decoded.left.message })
          )
        }
        const message = decoded.right
        if (message._tag !== "ControlRequest") {
          return connection.send(
            Protocol.encode({
              _tag: "ProtocolError",
              code: "unknown_message",
              message: `${message._tag} is not a control message`
            })
          )
        }
        return FiberSet.run(requests, handle(message.id, message.command))
      })
  }).pipe(Effect.scoped)
