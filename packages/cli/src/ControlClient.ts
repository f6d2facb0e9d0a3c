/**
 * The CLI's side of a live run's control channel: `ControlRpcs` over a
 * WebSocket to `<server_url>/control`, authenticated with the secret of the
 * run's registry entry. Every request has a deadline; the run's typed
 * errors become one-line `ControlFailed`s.
 */
import * as Socket from "@effect/platform/Socket"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import type { Registry } from "@ramure/node"
import { ControlRpcs } from "@ramure/core/RunControl"
import type { BudgetAmounts, LogEntry } from "@ramure/core/RunEvent"
import { shortId } from "@ramure/core/RunInfo"
import type { RunStatus } from "@ramure/core/RunStatus"
import * as Protocol from "@ramure/protocol/Protocol"
import { type Duration, Effect, type Scope, Stream } from "effect"
import WebSocket from "ws"
import { ControlFailed, RunUnreachable } from "./Errors.js"

/** What `follow` yields: log entries, then the end of the run (no outcome if the connection dropped). */
export type FollowEvent =
  | { readonly _tag: "Entry"; readonly entry: LogEntry }
  | { readonly _tag: "Ended"; readonly outcome: string | undefined }

export interface ControlClient {
  readonly status: Effect.Effect<RunStatus, ControlFailed | RunUnreachable>
  /** Deliver a user message to a live agent. */
  readonly send: (agent: string, text: string) => Effect.Effect<void, ControlFailed | RunUnreachable>
  /** Call an endpoint of the root process (or of `process`); its JSON value. */
  readonly call: (
    endpoint: string,
    args: unknown,
    options?: { readonly process?: string | undefined; readonly timeout?: Duration.DurationInput }
  ) => Effect.Effect<unknown, ControlFailed | RunUnreachable>
  readonly stop: (reason: string) => Effect.Effect<void, ControlFailed | RunUnreachable>
  /** Raise the budget of a live agent or process by `by`; the limits it has now. */
  readonly budget: (target: string, by: BudgetAmounts) => Effect.Effect<BudgetAmounts, ControlFailed | RunUnreachable>
  /** The run's log entries with `n > after`, live, until the run ends. */
  readonly follow: (after: number) => Stream.Stream<FollowEvent, RunUnreachable>
}

/** Open the WebSocket; a refused secret or an unreachable run is a `RunUnreachable` that says which. */
const open = (entry: Registry.RegistryEntry, timeoutMs: number) =>
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
          ? "it refused the secret of its registry entry"
          : `${entry.server_url} answered HTTP ${response.statusCode}`
      ))
    socket.once("error", (error) => fail(`${entry.server_url}: ${error.message} (pid ${entry.pid})`))
    socket.once("open", () => {
      socket.removeAllListeners()
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.terminate())
  })

/** Connect to a live run; the connection closes with the scope. */
export const connect = Effect.fn("ControlClient.connect")(function* (
  entry: Registry.RegistryEntry,
  options: { readonly timeoutMs?: number } = {}
): Effect.fn.Return<ControlClient, RunUnreachable, Scope.Scope> {
  const run = shortId(entry.execution_id)
  const ws = yield* Effect.acquireRelease(open(entry, options.timeoutMs ?? 5000), (ws) =>
    Effect.sync(() => ws.close(Protocol.CloseCode.normal, "done")))
  // `ws` speaks the WebSocket interface the platform's Socket is written against.
  const socket = yield* Socket.fromWebSocket(Effect.succeed(ws as unknown as globalThis.WebSocket))
  // Built in this scope (not with `Effect.provide`, whose scope would end with the constructor).
  const protocol = yield* RpcClient.makeProtocolSocket({ retryTransientErrors: false }).pipe(
    Effect.provideService(Socket.Socket, socket),
    Effect.provideService(RpcSerialization.RpcSerialization, RpcSerialization.json)
  )
  const client = yield* RpcClient.make(ControlRpcs).pipe(Effect.provideService(RpcClient.Protocol, protocol))

  const unreachable = (error: RpcClientError) => new RunUnreachable({ run, reason: error.message })
  /** A request answered within `timeout`: the run's own errors are `ControlFailed`, a lost connection `RunUnreachable`. */
  const ask = <A, E extends { readonly message: string }>(
    command: string,
    request: Effect.Effect<A, E | RpcClientError>,
    timeout: Duration.DurationInput = "10 seconds"
  ): Effect.Effect<A, ControlFailed | RunUnreachable> =>
    request.pipe(
      Effect.catchAll((error): Effect.Effect<never, ControlFailed | RunUnreachable> =>
        error instanceof RpcClientError
          ? Effect.fail(unreachable(error))
          : Effect.fail(new ControlFailed({ run, command, reason: error.message }))),
      Effect.catchAllDefect((defect) =>
        Effect.fail(new ControlFailed({ run, command, reason: `the run could not answer: ${String(defect)}` }))),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new RunUnreachable({ run, reason: `no answer to ${command} within ${String(timeout)}` })
      })
    )

  return {
    status: ask("Status", client.Status()),
    send: (agent, text) => ask("Send", client.Send({ agent, text })),
    call: (endpoint, args, callOptions = {}) =>
      ask(
        "Call",
        client.Call({ endpoint, args, ...(callOptions.process === undefined ? {} : { process: callOptions.process }) }),
        callOptions.timeout ?? "60 seconds"
      ),
    stop: (reason) => ask("Stop", client.Stop({ reason })),
    budget: (target, by) => ask("Budget", client.Budget({ target, by })),
    follow: (after) => {
      let outcome: string | undefined
      return client.Follow({ after }).pipe(
        Stream.map((entry): FollowEvent => {
          if (entry.event._tag === "RunEnded") outcome = entry.event.outcome
          return { _tag: "Entry", entry }
        }),
        Stream.catchAll(() => Stream.empty),
        Stream.concat(Stream.suspend(() => Stream.succeed<FollowEvent>({ _tag: "Ended", outcome })))
      )
    }
  }
})

