/**
 * Durable runs, with real pi in tmux and the scripted model: the orchestrator
 * is killed (SIGKILL) at many points of a build-and-review run and of a
 * five-agent fan-out with a child process, and `ramure resume` runs it again.
 * Each resumed run must end as a run never killed does; its live agents are
 * taken over, not started again (same pi process); no agent is told a thing
 * twice (the model sees each message once, and needs no turn more than its
 * script); no call is answered twice and no side effect (a step) is done
 * twice. After the agents' wait is over (their pis gone), a resumed run
 * starts them again and they go on with their saved conversations.
 */
import { describe, expect, layer } from "@effect/vitest"
import { readDirectory } from "@ramure/node/JsonlLogSink"
import type { LogEntry } from "@ramure/core/RunEvent"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { type Duration, Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { background, bin, built, cliEnv, eventually, exec, fixture, tempHome, tmuxSocket } from "./helpers.js"

const call = (name: string, args: unknown, delay?: Duration.DurationInput): ScriptedModel.Turn => ({
  toolCalls: [{ name, arguments: args }],
  ...(delay === undefined ? {} : { delay })
})
const say = (text: string): ScriptedModel.Turn => ({ text })

const scripts: Record<string, Record<string, ScriptedModel.Script>> = {
  review: {
    builder: [call("submit", { code: "a - b" }), say("Submitted."), call("submit", { code: "a + b" }), say("Resubmitted.")],
    // The first review takes a while: a kill lands in the middle of the model's turn.
    reviewer: [call("reject", { reason: "it subtracts" }, "1500 millis"), say("Rejected."), call("approve", { note: "correct now" }), say("Approved.")]
  },
  fanout: Object.fromEntries(
    [1, 2, 3, 4, 5].map((n) => [`w${n}`, [call("report", { value: n }, n === 4 ? "1500 millis" : undefined), say("Reported.")]])
  ),
  solo: {
    writer: [
      call("save", { text: "one" }),
      say("Part one is saved."),
      {
        ...call("save", { text: "two" }),
        // Started again from its saved session, the writer still has its conversation.
        expect: (request) =>
          request.messages.some((m) => m.role === "user" && m.content.includes("part one")) &&
            request.messages.some((m) => m.role === "assistant" && m.content.includes("Part one is saved"))
            ? undefined
            : "expected the conversation of part one"
      },
      say("Part two is saved.")
    ]
  }
}

const outcomes: Record<string, unknown> = {
  review: { rounds: 2, note: "correct now" },
  fanout: { total: 15, checked: 30 },
  solo: ["one", "two"]
}

const workDirectory = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-durable-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

interface Resumed {
  readonly id: string
  readonly killed: boolean
  readonly result: unknown
  readonly report: string
  readonly log: ReadonlyArray<LogEntry>
  readonly effects: ReadonlyArray<string>
  readonly model: ScriptedModel.ScriptedModelServer
}

const resultOf = (stdout: string): unknown => {
  const line = /^result (.*)$/m.exec(stdout)?.[1]
  return line === undefined ? undefined : JSON.parse(line)
}

/**
 * Run `scenario`, killed at `point` (or never, `none`); resume it if it was
 * killed (after `beforeResume`); return what happened.
 */
const runKilledAt = (
  scenario: string,
  point: string,
  options: { readonly unreachableTimeoutMs?: number; readonly beforeResume?: (id: string, home: string, socket: string) => Effect.Effect<void> } = {}
) =>
  Effect.gen(function* () {
    const home = yield* tempHome
    const work = yield* workDirectory
    const socket = yield* tmuxSocket
    const model = yield* ScriptedModel.make({ scripts: scripts[scenario]! })
    const env = cliEnv(home, { RAMURE_TMUX_SOCKET: socket })
    const args = [
      "--import",
      "tsx",
      fixture("durable-run.ts"),
      scenario,
      work,
      model.baseUrl(),
      point,
      ...(options.unreachableTimeoutMs === undefined ? [] : [String(options.unreachableTimeoutMs)])
    ]
    const first = yield* background(process.execPath, args, env)
    yield* first.exited
    const id = /^run (\S+)$/m.exec(first.output().stdout)?.[1]
    if (id === undefined) return yield* Effect.dieMessage(`the run did not start: ${first.output().stderr}`)
    const killed = first.child.signalCode === "SIGKILL"
    let result = resultOf(first.output().stdout)
    let report = ""
    if (killed) {
      if (options.beforeResume) yield* options.beforeResume(id, home, socket)
      const resumed = yield* exec(process.execPath, [bin, "resume", id.slice(0, 8)], { env, timeout: "240 seconds" })
      if (resumed.code !== 0) {
        const tail = readDirectory(path.join(home, "logs", id)).slice(-25).map((e) => `${e.n} ${e.process} ${e.agent ?? ""} ${JSON.stringify(e.event).slice(0, 300)}`)
        return yield* Effect.dieMessage(`resume failed (${resumed.code}): ${resumed.stderr}\n${resumed.stdout}\n${tail.join("\n")}`)
      }
      result = resultOf(resumed.stdout)
      report = resumed.stderr
    }
    const effectsFile = path.join(work, "effects.txt")
    return {
      id,
      killed,
      result,
      report,
      log: readDirectory(path.join(home, "logs", id)),
      effects: fs.existsSync(effectsFile) ? fs.readFileSync(effectsFile, "utf8").trim().split("\n") : [],
      model
    } satisfies Resumed
  })

const events = <T extends LogEntry["event"]["_tag"]>(log: ReadonlyArray<LogEntry>, tag: T) =>
  log.filter((entry): entry is LogEntry & { event: Extract<LogEntry["event"], { _tag: T }> } => entry.event._tag === tag)

/** What every resumed run must show, whatever the point it was killed at. */
const expectResumedAsIfNeverKilled = (scenario: string, run: Resumed) =>
  Effect.gen(function* () {
    expect(run.killed).toBe(true)
    expect(run.result).toEqual(outcomes[scenario])
    // Every side effect once.
    expect(run.effects).toEqual([...new Set(run.effects)])
    // Every call answered once.
    const answered = events(run.log, "ToolReturned").map((entry) => `${entry.agent}/${entry.event.callId}`)
    expect(answered).toEqual([...new Set(answered)])
    // The model was asked no more than its scripts have: nobody was told a thing twice.
    expect(yield* run.model.failures).toEqual([])
    for (const agent of Object.keys(scripts[scenario]!)) {
      const requests = yield* run.model.requests(agent)
      const users = requests.at(-1)?.messages.filter((m) => m.role === "user").map((m) => m.content) ?? []
      expect(users).toEqual([...new Set(users)])
    }
    expect(events(run.log, "RunEnded").at(-1)?.event.outcome).toBe("done")
    expect(events(run.log, "RunResumed")).toHaveLength(1)
  })

/** Agents that were alive at the kill were taken over: the same pi processes. */
const expectTakenOver = (run: Resumed, atLeast: number) => {
  const created = new Map(events(run.log, "AgentCreated").map((entry) => [entry.agent, entry.event.pid]))
  const adopted = events(run.log, "AgentAdopted")
  expect(adopted.length).toBeGreaterThanOrEqual(atLeast)
  for (const entry of adopted) expect(entry.event.pid).toBe(created.get(entry.agent))
  expect(events(run.log, "AgentRestarted")).toEqual([])
  expect(run.report).toMatch(new RegExp(`took over ${adopted.length} agents?, started 0 again`))
}

layer(built, { timeout: "600 seconds", excludeTestServices: true })("durable runs", (it) => {
  /** A run never killed, then one killed at each point: `[when, kill point, agents taken over at least]`. */
  const resumesAtEveryPoint = (scenario: string, effects: ReadonlyArray<string>, points: ReadonlyArray<readonly [string, string, number]>) => {
    it.scoped("never killed, it ends with the outcome every resumed run must have", () =>
      Effect.gen(function* () {
        const run = yield* runKilledAt(scenario, "none")
        expect(run.killed).toBe(false)
        expect(run.result).toEqual(outcomes[scenario])
        expect([...run.effects].sort()).toEqual([...effects].sort())
      }))
    for (const [when, point, adopted] of points) {
      it.scoped(`killed ${when}, it resumes to the same outcome, with the same pis, nothing done twice`, () =>
        Effect.gen(function* () {
          const run = yield* runKilledAt(scenario, point)
          yield* expectResumedAsIfNeverKilled(scenario, run)
          expectTakenOver(run, adopted)
          expect([...run.effects].sort()).toEqual([...effects].sort())
        }))
    }
  }

  describe("build and review", () =>
    resumesAtEveryPoint("review", ["submit 1", "reject 1", "submit 2", "approve 2"], [
      ["before its agents have connected", "AgentCreated:reviewer", 0],
      ["during a tool call (the handler is running)", "ToolCalled:builder", 2],
      ["during the model's turn", "TurnStarted:reviewer", 2],
      ["between a send and the agent's reply", "MessageDelivered:reviewer", 2],
      ["after a call was answered", "ToolReturned:reviewer", 2],
      ["after the process was done", "at:done", 0]
    ]))

  describe("a fan-out of five agents in a child process", () =>
    resumesAtEveryPoint("fanout", ["report w1", "report w2", "report w3", "report w4", "report w5", "check"], [
      ["before its agents have connected", "AgentCreated:w3", 0],
      ["during the model's turn", "TurnStarted:w4", 5],
      ["between a send and the agent's reply", "MessageDelivered:w5", 5],
      ["while the child runs, some agents having reported", "ToolReturned#3", 2],
      ["after the child was done", "at:child-done", 0]
    ]))

  it.scoped("resumed after its agents stopped waiting, it starts them again and they go on with their conversations", () =>
    Effect.gen(function* () {
      const run = yield* runKilledAt("solo", "StepCompleted:part-one-written", {
        unreachableTimeoutMs: 1500,
        // The writer's pi gives up on its run and exits.
        beforeResume: (id, _home, socket) =>
          eventually(
            "the writer's pi to exit",
            Effect.map(
              exec("tmux", ["-L", socket, "list-panes", "-a", "-F", "#{session_name} #{pane_dead}"]),
              (out) => out.stdout.split("\n").some((line) => line.startsWith(`ramure-${id.slice(0, 8)}-writer 0`)) ? undefined : true
            ),
            "60 seconds"
          ).pipe(Effect.asVoid)
      })
      yield* expectResumedAsIfNeverKilled("solo", run)
      const created = events(run.log, "AgentCreated")[0]!
      const restarted = events(run.log, "AgentRestarted")
      expect(restarted).toHaveLength(1)
      expect(restarted[0]!.event.pid).not.toBe(created.event.pid)
      expect(run.report).toMatch(/took over 0 agents, started 1 again/)
      // The handler of the first save ran again to rebuild the parts; its side effect did not.
      expect(run.effects).toEqual(["save 1", "save 2"])
    }))
})
