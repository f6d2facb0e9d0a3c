/**
 * An `AgentLauncher` that plays scripts instead of starting pi: each agent is
 * an in-process driver that connects over the run's real WebSocket with the
 * same protocol as the pi extension. For tests, and for trying a process
 * without a model.
 */
import { Cause, Deferred, Effect, Exit, Layer, Queue } from "effect"
import * as AgentClient from "@ramure/protocol/AgentClient"
import type * as Protocol from "@ramure/protocol/Protocol"
import { AgentLauncher, type LaunchSpec } from "@ramure/core/AgentLauncher"
import { describe } from "@ramure/core/Errors"

/** What a script can do: the agent client plus a few conveniences. */
export interface Driver extends AgentClient.AgentClient {
  readonly spec: LaunchSpec
  /** Wait for the next user message and return its text. */
  readonly nextMessage: Effect.Effect<string>
  /** Wait until the runtime has given the agent this tool. */
  readonly waitForTool: (tool: string) => Effect.Effect<void>
  /** Report an assistant message (as pi would). */
  readonly say: (text: string) => Effect.Effect<void>
  /**
   * Play one model turn as pi does: report `TurnStarted`, wait until the run
   * lets the turn go on (an agent under a budget), then report the answer
   * with its usage. `stopped` (nothing reported) if the run stopped the agent
   * for its budget instead.
   */
  readonly turn: (answer?: { readonly text?: string; readonly usage?: Partial<Protocol.Usage> }) => Effect.Effect<"done" | "stopped">
}

/** A script plays one agent. When it returns, the agent idles until shutdown; when it fails, the agent crashes. */
export type Script = (driver: Driver) => Effect.Effect<unknown, unknown>

export type Scripts = Readonly<Record<string, Script>> | ((agentId: string) => Script | undefined)

const scriptFor = (scripts: Scripts, agentId: string): Script | undefined =>
  typeof scripts === "function" ? scripts(agentId) : scripts[agentId] ?? scripts[agentId.replace(/-\d+$/, "")]

const makeDriver = (client: AgentClient.AgentClient, spec: LaunchSpec): Driver => ({
  ...client,
  spec,
  nextMessage: Effect.map(Queue.take(client.messages), (message) => message.text),
  waitForTool: (tool) =>
    Effect.gen(function* () {
      while (!client.tools().has(tool)) yield* Effect.sleep("5 millis")
    }),
  say: (text) => client.emit({ _tag: "MessageEnded", role: "assistant", text }),
  turn: (answer = {}) =>
    Effect.gen(function* () {
      yield* client.emit({ _tag: "TurnStarted" })
      if ((yield* client.awaitTurn) === "stopped") return "stopped" as const
      const usage = answer.usage === undefined ? undefined : { input: 0, output: 0, cost: 0, ...answer.usage }
      yield* client.emit({
        _tag: "MessageEnded",
        role: "assistant",
        text: answer.text ?? "",
        ...(usage === undefined ? {} : { usage })
      })
      yield* client.emit({ _tag: "TurnEnded" })
      return "done" as const
    })
})

export const layer = (scripts: Scripts): Layer.Layer<AgentLauncher> =>
  Layer.succeed(AgentLauncher, {
    // A driver is a few fibers in this process: nothing to pace.
    lightStart: true,
    launch: (spec) =>
      Effect.gen(function* () {
        const exited = yield* Deferred.make<{ readonly exitCode: number | undefined }>()
        let output = ""
        const script = scriptFor(scripts, spec.agentId)
        const run = Effect.gen(function* () {
          const client = yield* AgentClient.make({ url: spec.url, agentId: spec.agentId, token: spec.secret })
          yield* client.synced
          const driver = makeDriver(client, spec)
          if (script) yield* Effect.raceFirst(script(driver), Effect.asVoid(client.shutdown))
          yield* client.shutdown
        }).pipe(
          Effect.scoped,
          Effect.onExit((exit) => {
            if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
              output = `script failed: ${describe(Cause.squash(exit.cause))}`
            }
            return Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
              ? Effect.void
              : Deferred.succeed(exited, { exitCode: Exit.isSuccess(exit) ? 0 : 1 })
          })
        )
        yield* Effect.forkScoped(run)
        return {
          pid: undefined,
          session: undefined,
          exited: Deferred.await(exited),
          outputTail: Effect.sync(() => output)
        }
      })
  })
