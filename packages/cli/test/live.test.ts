import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  background,
  bin,
  built,
  cliEnv,
  eventually,
  isAlive,
  ramure,
  readJsonl,
  startRun,
  tempHome,
  type FixtureRun
} from "./helpers.js"

/** Two live runs in one home: `duo` (agents alice and bob) and `solo` (agent solo). */
class Runs extends Context.Tag("cli-test/Runs")<Runs, { readonly home: string; readonly duo: FixtureRun; readonly solo: FixtureRun }>() {}

const runs = Layer.scoped(
  Runs,
  Effect.gen(function* () {
    const home = yield* tempHome
    const [duo, solo] = yield* Effect.all([startRun(home), startRun(home, ["--agents", "solo"])], { concurrency: 2 })
    return { home, duo, solo }
  })
).pipe(Layer.provideMerge(built))

/** The shortest prefix of `a` that `b` does not share. */
const uniquePrefix = (a: string, b: string): string => {
  let length = 1
  while (a.slice(0, length) === b.slice(0, length)) length++
  return a.slice(0, length)
}

const agentLog = (home: string, run: FixtureRun, agent: string) => path.join(home, "logs", run.id, `${agent}.jsonl`)

/** The assistant messages an agent logged (the fixture's agents answer "<agent> got: <text>"). */
const replies = (home: string, run: FixtureRun, agent: string): Array<string> =>
  readJsonl(agentLog(home, run, agent))
    .filter((entry) => entry.event._tag === "MessageEnded")
    .map((entry) => entry.event.text)

layer(runs, { timeout: "180 seconds", excludeTestServices: true })("ramure against live runs", (it) => {
  it.effect("ls lists live runs with program, pid and agent count", () =>
    Effect.gen(function* () {
      const { duo, home, solo } = yield* Runs
      const listed = JSON.parse((yield* ramure(home, ["ls", "--json"])).stdout)
      expect(listed).toHaveLength(2)
      expect(listed).toEqual(expect.arrayContaining([
        expect.objectContaining({ id: duo.id, program: "fixture", pid: duo.pid, live: true, agents: 2 }),
        expect.objectContaining({ id: solo.id, program: "fixture", pid: solo.pid, live: true, agents: 1 })
      ]))
      const text = (yield* ramure(home, ["ls"])).stdout
      expect(text).toMatch(new RegExp(`${duo.id.slice(0, 8)}\\s+fixture\\s+${duo.pid}\\s.*\\s2\\s+\\$0\\.0000\\s+live`))
      expect(text).not.toContain(duo.id)
    }))

  it.effect("with two live runs an id is needed: the error lists both; any unique prefix picks one", () =>
    Effect.gen(function* () {
      const { duo, home, solo } = yield* Runs
      const ambiguous = yield* ramure(home, ["status"])
      expect(ambiguous.code).toBe(1)
      expect(ambiguous.stderr).toContain("2 runs are live, pass an id")
      expect(ambiguous.stderr).toContain(`${duo.id.slice(0, 8)} (live, fixture)`)
      expect(ambiguous.stderr).toContain(`${solo.id.slice(0, 8)} (live, fixture)`)

      const status = yield* ramure(home, ["status", uniquePrefix(duo.id, solo.id)])
      expect(status.code).toBe(0)
      expect(status.stdout).toContain(`run ${duo.id}  fixture  pid ${duo.pid}  live at ws://127.0.0.1:`)
      expect(status.stdout).toMatch(/main\s+running/)
      expect(status.stdout).toMatch(/alice\s+idle\s+local \//)
      expect(status.stdout).toMatch(/bob\s+idle\s+local \//)
      expect(status.stdout).toContain("  main  add(a: number, b: number) — Add two numbers")
    }))

  it.effect("the run's token appears in no output: ls, status, tail, errors, and no log file", () =>
    Effect.gen(function* () {
      const { duo, home } = yield* Runs
      const token = JSON.parse(fs.readFileSync(path.join(home, "runtimes", `${duo.id}.json`), "utf8")).token as string
      expect(token.length).toBeGreaterThan(20)
      const id = duo.id.slice(0, 8)
      const outputs = yield* Effect.all([
        ramure(home, ["ls", "--json"]),
        ramure(home, ["ls", "--all"]),
        ramure(home, ["status", id, "--json"]),
        ramure(home, ["tail", id, "--json", "-n", "1000"]),
        ramure(home, ["send", id, "--agent", "nobody", "hi"]),
        ramure(home, ["call", id, "no_such_endpoint"])
      ])
      for (const { stderr, stdout } of outputs) expect(stdout + stderr).not.toContain(token)
      const logs = path.join(home, "logs", duo.id)
      for (const file of fs.readdirSync(logs)) expect(fs.readFileSync(path.join(logs, file), "utf8")).not.toContain(token)
    }))

  it.effect("--agent defaults to the only agent; otherwise the error lists the agents", () =>
    Effect.gen(function* () {
      const { duo, home, solo } = yield* Runs
      const sent = yield* ramure(home, ["send", solo.id.slice(0, 8), "hello solo"])
      expect(sent).toMatchObject({ code: 0, stdout: "sent to solo\n" })
      yield* eventually("solo's answer", Effect.sync(() => replies(home, solo, "solo").includes("solo got: hello solo") || undefined))

      const none = yield* ramure(home, ["send", duo.id, "hi"])
      expect(none.code).toBe(1)
      expect(none.stderr).toBe(`ramure: run ${duo.id.slice(0, 8)} has several agents, pass --agent (agents: alice, bob)\n`)
      const unknown = yield* ramure(home, ["send", duo.id, "--agent", "carol", "hi"])
      expect(unknown.stderr).toBe(`ramure: run ${duo.id.slice(0, 8)} has no agent "carol" (agents: alice, bob)\n`)
    }))

  it.effect("send reaches the agent (and only that one)", () =>
    Effect.gen(function* () {
      const { duo, home } = yield* Runs
      const sent = yield* ramure(home, ["send", "--agent", "bob", duo.id.slice(0, 8), "ping"])
      expect(sent.stdout).toBe("sent to bob\n")
      yield* eventually("bob's answer", Effect.sync(() => replies(home, duo, "bob").includes("bob got: ping") || undefined))
      expect(replies(home, duo, "alice")).toEqual([])
      const logged = readJsonl(agentLog(home, duo, "bob")).find((entry) => entry.event._tag === "MessageDelivered")
      expect(logged.event).toEqual({ _tag: "MessageDelivered", text: "ping", via: "control" })
    }))

  it.effect("call prints the endpoint's value; values are JSON when they parse; failures are one line", () =>
    Effect.gen(function* () {
      const { duo, home } = yield* Runs
      expect(yield* ramure(home, ["call", duo.id.slice(0, 8), "add", "a=2", "b=40"])).toMatchObject({ code: 0, stdout: "42\n" })
      const invalid = yield* ramure(home, ["call", duo.id.slice(0, 8), "add", "a=2", "b=forty"])
      expect(invalid.code).toBe(1)
      expect(invalid.stderr).toMatch(/^ramure: endpoint main\.add failed: invalid arguments: .*\n$/)
      const missing = yield* ramure(home, ["call", duo.id.slice(0, 8), "subtract"])
      expect(missing.stderr).toContain("subtract")
      expect(missing.stderr.split("\n")).toHaveLength(2)
      // A value JSON cannot carry is an answer too, not a call that waits forever.
      const big = yield* ramure(home, ["call", duo.id.slice(0, 8), "big"])
      expect(big).toMatchObject({
        code: 1,
        stderr: "ramure: endpoint main.big failed: the result cannot be sent: Do not know how to serialize a BigInt\n"
      })
    }))

  it.effect("tail prints recent entries: -n limits, --agent filters, --json gives log entries", () =>
    Effect.gen(function* () {
      const { duo, home } = yield* Runs
      const last = (yield* ramure(home, ["tail", duo.id.slice(0, 8), "-n", "3"])).stdout.trimEnd().split("\n")
      expect(last).toHaveLength(3)
      const bob = (yield* ramure(home, ["tail", duo.id.slice(0, 8), "--agent", "bob"])).stdout.trimEnd().split("\n")
      expect(bob.every((line) => / bob /.test(line))).toBe(true)
      expect(bob.some((line) => line.endsWith("assistant: bob got: ping"))).toBe(true)
      const json = (yield* ramure(home, ["tail", duo.id.slice(0, 8), "--json", "-n", "100"])).stdout.trimEnd().split("\n").map((line) => JSON.parse(line))
      expect(json[0]).toMatchObject({ n: 1, event: { _tag: "RunStarted" } })
      expect(json.map((entry) => entry.n)).toEqual(json.map((_, i) => i + 1))
      const unknown = yield* ramure(home, ["tail", duo.id.slice(0, 8), "--agent", "zed"])
      expect(unknown.stderr).toBe(`ramure: run ${duo.id.slice(0, 8)} has no agent "zed" (agents: alice, bob)\n`)
    }))

  it.scoped("tail -f gets events live; stop ends the run (process gone, registry entry removed); the follower prints the outcome", () =>
    Effect.gen(function* () {
      const { duo, home } = yield* Runs
      const follower = yield* background(process.execPath, [bin, "tail", "-f", "-n", "1", duo.id.slice(0, 8)], cliEnv(home))
      yield* eventually("the follower's first line", Effect.sync(() => follower.output().stdout.length > 0 || undefined))
      yield* ramure(home, ["send", duo.id.slice(0, 8), "--agent", "alice", "while following"])
      yield* eventually(
        "the live event",
        Effect.sync(() => follower.output().stdout.includes("assistant: alice got: while following") || undefined)
      )

      const stopped = yield* ramure(home, ["stop", duo.id.slice(0, 8)])
      expect(stopped.code).toBe(0)
      expect(stopped.stdout).toMatch(new RegExp(`^run ${duo.id.slice(0, 8)} stopped after [\\d.]+ s: cancelled\nno tmux sessions left\n$`))
      expect(isAlive(duo.pid)).toBe(false)
      expect(fs.existsSync(path.join(home, "runtimes", `${duo.id}.json`))).toBe(false)
      // The program (run with `Ramure.runMain`) says why it ended, in one line, without a stack trace.
      expect(yield* duo.process.exited).toBe(1)
      expect(duo.process.output().stderr).toBe("ProcessCancelled: process main was cancelled: ramure stop\n")

      expect(yield* follower.exited).toBe(0)
      const lines = follower.output().stdout.trimEnd().split("\n")
      expect(lines.at(-1)).toMatch(/run\s+run ended: cancelled$/)
      expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/main\s+process main cancelled/)]))
      expect(lines.filter((line) => line.includes("alice got: while following"))).toHaveLength(1)
    }))

  it.effect("a finished run: status and tail come from its logs; control verbs say it is not live", () =>
    Effect.gen(function* () {
      const { duo, home, solo } = yield* Runs
      const status = yield* ramure(home, ["status", duo.id.slice(0, 8)])
      expect(status.stdout).toContain(`run ${duo.id}  fixture  pid ${duo.pid}  ended: cancelled`)
      expect(status.stdout).toMatch(/alice\s+done/)
      expect(status.stdout).toMatch(/main\s+cancelled/)
      const tail = (yield* ramure(home, ["tail", duo.id.slice(0, 8), "--agent", "alice"])).stdout
      expect(tail).toContain("alice got: while following")
      expect(tail.trimEnd().split("\n").at(-1)).toMatch(/run ended: cancelled$/)
      const send = yield* ramure(home, ["send", duo.id.slice(0, 8), "--agent", "alice", "too late"])
      expect(send.stderr).toBe(`ramure: run ${duo.id.slice(0, 8)} is not live (it ended: cancelled)\n`)
      const listed = JSON.parse((yield* ramure(home, ["ls", "--all", "--json"])).stdout)
      expect(listed).toEqual(expect.arrayContaining([
        expect.objectContaining({ id: duo.id, live: false, outcome: "cancelled" }),
        expect.objectContaining({ id: solo.id, live: true })
      ]))
      // With one live run left, the id is optional.
      expect((yield* ramure(home, ["call", "add", "a=1", "b=1"])).stdout).toBe("2\n")
    }))

  it.effect("connect says so when the agent has no tmux session", () =>
    Effect.gen(function* () {
      const { home } = yield* Runs
      const result = yield* ramure(home, ["connect"])
      expect(result.code).toBe(1)
      expect(result.stderr).toBe("ramure: agent solo has no tmux session (it runs on a local machine); try ramure tail or ramure ssh\n")
    }))
})
