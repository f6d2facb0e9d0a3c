import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Ramure from "ramure/Ramure"
import type * as Agent from "@ramure/core/Agent"
import { AgentSessions } from "@ramure/core/AgentSessions"
import type { RunEvent } from "@ramure/core/RunEvent"
import { RunLog } from "@ramure/core/RunLog"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import * as TmuxMachineProvider from "@ramure/node/TmuxMachineProvider"
import { Duration, Effect, Option, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export type Provider = "tmux" | "local"

/** A fresh, private RAMURE_HOME, removed when the scope closes. */
export const tempHome = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-pi-test-"))),
  (home) => Effect.sync(() => fs.rmSync(home, { recursive: true, force: true }))
)

/**
 * A run of real pi agents whose model is `server` (one models.json per agent: its own script),
 * reached through the provider API `api` (default `openai-completions`).
 */
export const piRun = (
  server: ScriptedModel.ScriptedModelServer,
  provider: Provider,
  home: string,
  { api, ...options }: { readonly env?: Record<string, string>; readonly api?: ScriptedModel.Api } = {}
) =>
  Ramure.layer({
    home,
    program: "pi-extension-test",
    provider,
    register: false,
    model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
    modelsJson: (agent) => ScriptedModel.piModelsJson(server.baseUrl(agent, api), api === undefined ? {} : { api }),
    ...options
  })

/** Live processes started for the run `executionId` (found by `RAMURE_EXECUTION_ID` in their environment). */
export const runProcesses = (executionId: string): Array<number> =>
  fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false
      return fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`RAMURE_EXECUTION_ID=${executionId}`)
    } catch {
      return false
    }
  })

/** The run's tmux sessions and processes that are still there. */
export const leftovers = (executionId: string): Effect.Effect<
  { readonly sessions: ReadonlyArray<string>; readonly pids: ReadonlyArray<number> },
  never,
  CommandExecutor.CommandExecutor
> =>
  Effect.all({
    sessions: TmuxMachineProvider.sessionsOf(executionId).pipe(Effect.orElseSucceed(() => [])),
    pids: Effect.sync(() => runProcesses(executionId))
  })

/** Wait (polling, at most 5 s) until the run has nothing left; the last observation. */
export const noLeftovers = (executionId: string) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 5_000
    while (true) {
      const left = yield* leftovers(executionId)
      if ((left.sessions.length === 0 && left.pids.length === 0) || Date.now() > deadline) return left
      yield* Effect.sleep("100 millis")
    }
  })

/** Wait until `count` agents of the run have connected. */
export const connectedAgents = (count: number) =>
  Effect.flatMap(RunLog, (runLog) =>
    runLog.entries().pipe(
      Stream.filter((entry) => entry.event._tag === "AgentConnected"),
      Stream.take(count),
      Stream.runDrain
    ))

/** What the run has recorded about `agent` so far. */
export const eventsOf = (agent: Agent.Agent): Effect.Effect<ReadonlyArray<RunEvent>, never, RunLog> =>
  Effect.flatMap(RunLog, (runLog) => Effect.map(runLog.history({ agent: agent.id }), (entries) => entries.map((e) => e.event)))

/** How many events tagged `tag` the run has recorded about `agent` so far. */
export const countOf = (agent: Agent.Agent, tag: RunEvent["_tag"]) =>
  Effect.map(eventsOf(agent), (events) => events.filter((e) => e._tag === tag).length)

/** Close an agent's connection from the run's side (the agent reconnects). */
export const dropFromServer = (agent: Agent.Agent) =>
  Effect.gen(function* () {
    const session = yield* (yield* AgentSessions).lookup(agent.id)
    const state = session._tag === "Some" ? yield* session.value.lifecycle : undefined
    if (state?._tag !== "Connected") return yield* Effect.dieMessage(`${agent.id} is not connected`)
    yield* state.connection.close(4001, "dropped by the test")
  })

/** The process id the launcher reported for `agent`. */
export const agentPid = (agent: string) =>
  Effect.flatMap(RunLog, (runLog) =>
    runLog.entries({ agent }).pipe(
      Stream.filterMap((entry) => (entry.event._tag === "AgentCreated" ? Option.some(entry.event.pid) : Option.none())),
      Stream.runHead,
      Effect.map((pid) => (pid._tag === "Some" ? pid.value : undefined))
    ))

/** Poll `effect` until `done` holds (at most `limit`); its last value. */
export const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  limit: Duration.DurationInput = "30 seconds"
) =>
  Effect.gen(function* () {
    while (true) {
      const a = yield* effect
      if (done(a)) return a
      yield* Effect.sleep("50 millis")
    }
  }).pipe(
    Effect.timeoutFail({ duration: limit, onTimeout: () => new Error(`condition not met within ${Duration.format(limit)}`) })
  )

/** The user texts of a request. */
export const userTexts = (request: ScriptedModel.ChatRequest): Array<string> =>
  request.messages.filter((m) => m.role === "user").map((m) => m.content)

/**
 * The model turns an agent's requests carried: each turn's request holds one
 * more exchange than the last. A request the model client sent again (its
 * HTTP retries, on a loaded machine) is the same turn, not another.
 */
export const turnsOf = (requests: ReadonlyArray<ScriptedModel.ChatRequest>) => new Set(requests.map((r) => r.messages.length)).size

/** The `finish` tool the scenarios give their agents, and the scripted call to it. */
export const finishTool = { description: "Report the result and stop", parameters: Schema.Struct({ result: Schema.String }) }
export const finish = (result: string): ScriptedModel.ToolCallTurn => ({ name: "finish", arguments: { result } })

/** Fails the turn unless the request's last tool results satisfy `check`. */
export const expectToolResults = (check: (results: ReadonlyArray<string>) => boolean) => (request: ScriptedModel.ChatRequest) => {
  const results = ScriptedModel.lastToolResults(request).map((r) => r.content)
  return check(results) ? undefined : `unexpected tool results: ${JSON.stringify(results)}`
}
