/**
 * Agents in another process: the orchestrator under test runs in a child
 * whose `AgentLauncher` asks the parent (over IPC) to connect an
 * `AgentClient` for each agent. The child then holds only what the runtime
 * holds per agent, as with real pi agents.
 */
import * as AgentClient from "@ramure/protocol/AgentClient"
import { AgentLauncher } from "@ramure/core/AgentLauncher"
import { Effect, FiberSet, Layer } from "effect"
import { forkChild, toParent } from "./child.js"
import type { FromChild, Live, ToChild } from "./scaleChild.js"

export interface LaunchRequest {
  readonly type: "launch"
  readonly agentId: string
  readonly url: string
  readonly token: string
}

/** Child side: every launch becomes a message to the parent; the agent "exits" never. */
export const layer: Layer.Layer<AgentLauncher> = Layer.succeed(AgentLauncher, {
  // The parent connects a client: no program starts, nothing to pace.
  lightStart: true,
  launch: (spec) =>
    Effect.as(toParent({ type: "launch", agentId: spec.agentId, url: spec.url, token: spec.secret } satisfies LaunchRequest), {
      pid: undefined,
      session: undefined,
      exited: Effect.never,
      outputTail: Effect.succeed("")
    })
})

/** Parent side: connects a client per launch request, keeps it until the runtime asks it to shut down. */
export const host = Effect.gen(function* () {
  const fibers = yield* FiberSet.make()
  const clients = new Map<string, AgentClient.AgentClient>()
  const launch = (request: LaunchRequest) =>
    FiberSet.run(
      fibers,
      Effect.scoped(
        Effect.gen(function* () {
          const client = yield* AgentClient.make({ url: request.url, agentId: request.agentId, token: request.token })
          clients.set(request.agentId, client)
          yield* client.shutdown
          clients.delete(request.agentId)
        })
      )
    )
  /** Wait until every client has `tool`, then return them. */
  const ready = (count: number, tool: string) =>
    Effect.gen(function* () {
      for (let i = 0; i < 60_000 / 5; i++) {
        const all = [...clients.values()]
        if (all.length >= count && all.every((client) => client.tools().has(tool))) return all
        yield* Effect.sleep("5 millis")
      }
      return yield* Effect.dieMessage(`only ${clients.size} of ${count} remote agents got ${tool}`)
    })
  return { launch, ready, clients }
})

/**
 * A run of `count` agents with the `echo` tool in a fresh child process
 * (`scaleChild.ts`, remote mode; or `entry`, which speaks the same messages
 * and gives its agents `tool`), their clients in this process. `stop` ends
 * the run and returns how long releasing the agents took; the scope's end
 * stops the child if still running.
 */
export const remoteRun = (count: number, options: { readonly entry?: string; readonly tool?: string } = {}) =>
  Effect.gen(function* () {
    const child = yield* forkChild<FromChild>(
      options.entry ?? "lib/scaleChild.ts",
      options.entry === undefined ? [String(count), "remote"] : [String(count)],
      { execArgv: ["--expose-gc", ...(process.env.BENCH_CHILD_ARGS ?? "").split(" ").filter((a) => a.length > 0)] }
    )
    const clients = yield* host
    let live: Live | undefined
    while (live === undefined) {
      const message = yield* child.receive
      if (message.type === "launch") yield* clients.launch(message)
      else if (message.type === "live") live = message
    }
    const ready = yield* clients.ready(count, options.tool ?? "echo")
    const stop = Effect.gen(function* () {
      yield* child.send({ type: "stop" } satisfies ToChild)
      while (true) {
        const message = yield* child.receive
        if (message.type === "stopped") return message.ms
      }
    })
    return { live, clients: ready, stop, cpu: child.cpu, memory: child.memory }
  })
