/**
 * The control channel of a run (`/control`): what the CLI asks of it —
 * status, send, call, stop, follow — answered from the run's own services.
 *
 * @internal
 */
import { Effect, Fiber, FiberSet, Option, Stream } from "effect"
import { AgentSessions } from "@ramure/core/AgentSessions"
import * as Protocol from "@ramure/protocol/Protocol"
import { RunControl } from "@ramure/core/RunControl"
import { RunLog } from "@ramure/core/RunLog"
import type { Connection } from "@ramure/protocol/Connection"

export const make = Effect.gen(function* () {
  const runLog = yield* RunLog
  const control = yield* RunControl
  const sessions = yield* AgentSessions
  /** `Follow` streams: the run waits (briefly) for them to deliver its end. */
  const followers = yield* FiberSet.make()

  const serve = (connection: Connection) =>
    Effect.gen(function* () {
      const requests = yield* FiberSet.make()
      // A value JSON cannot carry (a BigInt, a cycle) is an error reply: every request gets its answer.
      const reply = (id: number, result: { ok: true; value: unknown } | { ok: false; error: string }) =>
        Effect.suspend(() => {
          let frame: string
          try {
            frame = Protocol.encode({ _tag: "ControlReply", id, ...result })
          } catch (error) {
            const reason = error instanceof Error ? error.message : String(error)
            frame = Protocol.encode({ _tag: "ControlReply", id, ok: false, error: `the result cannot be sent: ${reason}` })
          }
          return connection.send(frame)
        })

      const handle = (id: number, command: Protocol.ControlCommand): Effect.Effect<void> => {
        switch (command._tag) {
          case "Status":
            return Effect.flatMap(runLog.status, (value) => reply(id, { ok: true, value }))
          case "Send":
            return Effect.flatMap(sessions.lookup(command.agent), (session) =>
              Option.match(session, {
                onNone: () =>
                  Effect.flatMap(sessions.ids, (ids) =>
                    reply(id, { ok: false, error: `no live agent "${command.agent}" (live: ${ids.join(", ") || "none"})` })),
                onSome: (session) =>
                  session.deliver(command.text, { via: "control" }).pipe(
                    Effect.matchEffect({
                      onSuccess: () => reply(id, { ok: true, value: null }),
                      onFailure: (error) => reply(id, { ok: false, error: error.message })
                    })
                  )
              }))
          case "Call":
            return control.call(undefined, command.endpoint, command.args, "cli").pipe(
              Effect.matchEffect({
                onSuccess: (value) => reply(id, { ok: true, value: value === undefined ? null : value }),
                onFailure: (error) => reply(id, { ok: false, error: error.message })
              })
            )
          case "Stop":
            return Effect.zipRight(control.requestStop(command.reason ?? "stopped from the CLI"), reply(id, { ok: true, value: null }))
          case "Follow": {
            // Ends with the run: then `RunEnded`, the reply, and a clean close once the CLI has read it all.
            let outcome = "ended"
            const follow = runLog.entries({ after: command.after ?? 0 }).pipe(
              Stream.takeUntil((entry) => entry.event._tag === "RunEnded"),
              Stream.runForEach((entry) => {
                if (entry.event._tag === "RunEnded") outcome = entry.event.outcome
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
          return connection.send(Protocol.encode({ _tag: "ProtocolError", code: decoded.left.code, message: decoded.left.message }))
        }
        const message = decoded.right
        if (message._tag !== "ControlRequest") {
          return connection.send(
            Protocol.encode({ _tag: "ProtocolError", code: "unknown_message", message: `${message._tag} is not a control message` })
          )
        }
        return FiberSet.run(requests, handle(message.id, message.command))
      })
    }).pipe(Effect.scoped)

  return {
    serve,
    /** Wait (up to 2 s) for every `Follow` to have delivered the run's end. */
    drain: FiberSet.awaitEmpty(followers).pipe(Effect.interruptible, Effect.timeout("2 seconds"), Effect.ignore)
  }
})
