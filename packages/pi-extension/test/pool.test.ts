/**
 * The warm pool with real pi: an agent made from a pre-started pi looks to
 * the model, to its tools and to the run exactly like one started for it.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import type * as PiAgents from "@ramure/pi/PiAgents"
import * as Ramure from "ramure/Ramure"
import * as RunInfo from "@ramure/core/RunInfo"
import type { LogEntry, RunEvent } from "@ramure/core/RunEvent"
import { RunLog } from "@ramure/core/RunLog"
import * as RunAddress from "@ramure/protocol/RunAddress"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Effect, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { sessionOf } from "../../core/src/internal/agent.js"
import { git, makeRepo } from "../../node/test/gitHelpers.js"
import { finishTool, noLeftovers, type Provider, runProcesses, tempHome } from "./helpers.js"


/** A run of pi agents on `provider`, all sharing one models.json (the scripted server finds agents by header). */
const run = (server: ScriptedModel.ScriptedModelServer, provider: Provider, home: string, pool?: PiAgents.PoolOptions) =>
  Ramure.layer({
    home,
    program: "pool-test",
    provider,
    register: false,
    model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
    modelsJson: ScriptedModel.piModelsJson(server.baseUrl()),
    ...(pool === undefined ? {} : { pool })
  })

/** Wait until the run's log has `count` entries of events tagged `tag`; those entries. */
const logged = <T extends RunEvent["_tag"]>(tag: T, count = 1) =>
  Effect.flatMap(RunLog, (runLog) =>
    runLog.entries().pipe(
      Stream.filter((entry): entry is LogEntry & { readonly event: Extract<RunEvent, { readonly _tag: T }> } => entry.event._tag === tag),
      Stream.take(count),
      Stream.runCollect,
      Effect.map((chunk) => [...chunk])
    ))

/** The first model request of `agent`, and where its `bash` ran. */
interface Observed {
  readonly systemPrompt: string
  readonly tools: ReadonlyArray<unknown>
  readonly bashCwd: string
  readonly machineCwd: string
  readonly session: string | undefined
  readonly executionId: string
  /** The token of the agent's address file, and the agent's own secret. */
  readonly addressToken: string | undefined
  readonly secret: string
}

/**
 * One agent "worker" with a system prompt and a tool; the model runs `pwd`
 * with pi's bash tool, then finishes with its output.
 */
const observeWorker = (provider: Provider, pool?: PiAgents.PoolOptions) =>
  Effect.gen(function* () {
    const server = yield* ScriptedModel.make({
      scripts: {
        worker: [
          { toolCalls: [{ name: "bash", arguments: { command: "pwd" } }] },
          {
            toolCalls: [{
              name: "finish",
              arguments: (request: ScriptedModel.ChatRequest) => ({
                result: ScriptedModel.lastToolResults(request)[0]?.content.trim() ?? ""
              })
            }]
          },
          { text: "(done)" }
        ]
      }
    })
    const home = yield* tempHome
    return yield* Effect.gen(function* () {
      const executionId = yield* RunInfo.executionId
      if (pool !== undefined) yield* logged("PoolMemberReady", pool.size)
      const { home: runHome } = yield* RunInfo.RunInfo
      let worker: Agent.Agent | undefined
      const bashCwd = yield* Process.make("main", () =>
        Effect.gen(function* () {
          worker = yield* Agent.make("worker", { systemPrompt: "You are a careful test worker." })
          yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* worker.send("Where are you?")
          return yield* Process.wait()
        }),
        { success: Schema.String }
      )()
      const [first] = yield* server.requests("worker")
      expect(yield* server.failures).toEqual([])
      const address = yield* RunAddress.read(path.join(RunInfo.workDirectory(runHome, executionId), ".pi", "worker", RunAddress.fileName))
      return {
        systemPrompt: first!.messages[0]!.content,
        tools: first!.tools,
        bashCwd,
        machineCwd: worker!.machine.cwd,
        session: worker!.session,
        executionId,
        addressToken: address?.token,
        secret: sessionOf(worker!).secret
      } satisfies Observed
    }).pipe(Effect.provide(run(server, provider, home, pool)))
  }).pipe(Effect.scoped, Effect.provide(NodeContext.layer))

const parentOf = (pid: number): number => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return 0
  }
}

const isPi = (pid: number): boolean => {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    return argv[0] === "pi" || argv.some((arg) => arg.includes("pi-coding-agent"))
  } catch {
    return false
  }
}

const providers: ReadonlyArray<Provider> = ["tmux", "local"]

describe.each(providers)("warm pool on %s machines", (provider) => {
  it.live("a pooled agent is indistinguishable from a cold one: system prompt, tools, working directory, session", () =>
    Effect.gen(function* () {
      const cold = yield* observeWorker(provider)
      const pooled = yield* observeWorker(provider, { size: 1 })
      // Each run has its own directory: compare with it written as <cwd>.
      const normalize = (observed: Observed) => observed.systemPrompt.replaceAll(observed.machineCwd, "<cwd>")
      expect(normalize(pooled)).toEqual(normalize(cold))
      expect(pooled.systemPrompt).toContain("You are a careful test worker.")
      expect(pooled.systemPrompt).toContain(`Current working directory: ${pooled.machineCwd}`)
      expect(pooled.tools).toEqual(cold.tools)
      expect(cold.bashCwd).toBe(cold.machineCwd)
      expect(pooled.bashCwd).toBe(pooled.machineCwd)
      expect(path.basename(pooled.machineCwd)).toBe("worker")
      // Where the pi finds its run names the agent's own secret, also for the pi started as a pool member.
      expect(cold.addressToken).toBe(cold.secret)
      expect(pooled.addressToken).toBe(pooled.secret)
      if (provider === "tmux") {
        expect(pooled.session).toBe(`ramure-${RunInfo.shortId(pooled.executionId)}-worker`)
        expect(cold.session).toBe(`ramure-${RunInfo.shortId(cold.executionId)}-worker`)
      }
    }), { timeout: 120_000 })
})

describe("warm pool lifecycle", () => {
  it.live("pooled pis serve one agent each, a dead idle one is replaced, and nothing outlives the run", () =>
    Effect.gen(function* () {
      const server = yield* ScriptedModel.make({
        scripts: {
          a: [{ toolCalls: [{ name: "finish", arguments: { result: "a done" } }] }, { text: "(done)" }],
          b: [{ toolCalls: [{ name: "finish", arguments: { result: "b done" } }] }, { text: "(done)" }]
        }
      })
      const home = yield* tempHome
      const executionId = yield* Effect.gen(function* () {
        const executionId = yield* RunInfo.executionId
        const [first] = yield* logged("PoolMemberReady")
        const idlePid = first!.event.pid!
        // Killed while idle: dropped, and a fresh pi takes its place.
        process.kill(idlePid, "SIGKILL")
        const ready = yield* logged("PoolMemberReady", 2)
        expect(ready[1]!.event.pid).not.toBe(idlePid)
        expect((yield* logged("PoolMemberDied"))[0]!.event.member).toBe(first!.event.member)

        const agentPids: Array<number | undefined> = []
        const runAgent = (name: string) =>
          Process.make(name, () =>
            Effect.gen(function* () {
              const agent = yield* Agent.make(name)
              yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
              const pid = Number((yield* agent.exec("echo $PPID")).stdout.trim())
              agentPids.push(pid)
              yield* agent.send("go")
              return yield* Process.wait()
            })
          )()
        expect(yield* runAgent("a")).toBe("a done")
        expect(yield* runAgent("b")).toBe("b done")
        const assigned = yield* logged("PoolMemberAssigned", 2)
        // Two agents, two different pis: a pi is never handed out twice.
        expect(new Set(assigned.map((entry) => entry.event.member)).size).toBe(2)
        expect(assigned.map((entry) => entry.event.member)).not.toContain(first!.event.member)
        return executionId
      }).pipe(Effect.provide(run(server, "tmux", home, { size: 1 })))
      // The run is over: its idle pi went with it.
      expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
      expect(yield* server.failures).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), { timeout: 120_000 })

  it.live("a pooled pi moves into a worktree machine; a sandboxed agent starts cold, leaving the pool's pi idle", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const bash = (command: string) => ({ toolCalls: [{ name: "bash", arguments: { command } }] })
      const finishWithOutput = {
        toolCalls: [{
          name: "finish",
          arguments: (request: ScriptedModel.ChatRequest) => ({ result: ScriptedModel.lastToolResults(request)[0]?.content.trim() ?? "" })
        }]
      }
      const server = yield* ScriptedModel.make({
        scripts: {
          wt: [bash("echo pooled > pooled.txt && pwd && git branch --show-current"), finishWithOutput, { text: "(done)" }],
          boxed: [bash("ls -A $HOME | wc -l"), finishWithOutput, { text: "(done)" }]
        }
      })
      const home = yield* tempHome
      const { branch, cwd, results } = yield* Effect.gen(function* () {
        yield* logged("PoolMemberReady")
        let machine: { cwd: string; branch: string } | undefined
        const runAgent = (name: string, options: Agent.AgentOptions) =>
          Process.make(name, () =>
            Effect.gen(function* () {
              const agent = yield* Agent.make(name, options)
              if (agent.machine.worktree !== undefined) machine = { cwd: agent.machine.cwd, branch: agent.machine.worktree.branch }
              yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
              yield* agent.send("go")
              return yield* Process.wait()
            })
          )()
        const results = [yield* runAgent("wt", { worktree: { repo } }), yield* runAgent("boxed", { sandbox: true })]
        const assigned = yield* Effect.flatMap(RunLog, (runLog) => runLog.history())
        expect(assigned.filter((entry) => entry.event._tag === "PoolMemberAssigned").map((entry) => entry.agent)).toEqual(["wt"])
        return { ...machine!, results }
      }).pipe(Effect.provide(run(server, "tmux", home, { size: 1 })))
      expect(results).toEqual([`${cwd}\n${branch}`, "0"])
      expect(git(repo, "show", `${branch}:pooled.txt`)).toBe("pooled\n")
      expect(yield* server.failures).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), { timeout: 120_000 })

  it.live("pooled pis count toward the run's limit on live agents", () =>
    Effect.gen(function* () {
      const server = yield* ScriptedModel.make({
        scripts: {
          a: [{ toolCalls: [{ name: "finish", arguments: { result: "a" } }] }, { text: "(done)" }],
          b: [{ toolCalls: [{ name: "finish", arguments: { result: "b" } }] }, { text: "(done)" }]
        }
      })
      const home = yield* tempHome
      const layer = Ramure.layer({
        home,
        program: "pool-test",
        provider: "tmux",
        register: false,
        maxLiveAgents: 1,
        model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
        modelsJson: ScriptedModel.piModelsJson(server.baseUrl()),
        pool: { size: 2, concurrency: 2 }
      })
      yield* Effect.gen(function* () {
        const executionId = yield* RunInfo.executionId
        let most = 0
        // Only pis: not the tmux clients the wrapper and pi run, nor a child pi has just forked.
        const sample = Effect.sync(() => {
          const pis = runProcesses(executionId).filter(isPi)
          most = Math.max(most, pis.filter((pid) => !pis.includes(parentOf(pid))).length)
        })
        yield* sample.pipe(Effect.delay("25 millis"), Effect.forever, Effect.forkScoped)
        yield* logged("PoolMemberReady")
        const results = yield* Effect.forEach(["a", "b"], (name) =>
          Process.make(name, () =>
            Effect.gen(function* () {
              const agent = yield* Agent.make(name)
              yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
              yield* agent.send("go")
              return yield* Process.wait()
            })
          )())
        expect(results).toEqual(["a", "b"])
        yield* sample
        expect(most).toBe(1)
      }).pipe(Effect.provide(layer))
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), { timeout: 120_000 })
})
