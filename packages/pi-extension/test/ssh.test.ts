/**
 * Real pi agents on two "remote" hosts (sshd in network namespaces, see
 * core's sshHosts.ts), driven by the scripted model through the connections'
 * tunnels. Needs root; CI runs it as root.
 */
import * as Command from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, layer } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as PiAgents from "@ramure/pi/PiAgents"
import * as Process from "@ramure/core/Process"
import * as Ramure from "ramure/Ramure"
import { RunLog } from "@ramure/core/RunLog"
import * as RunInfo from "@ramure/core/RunInfo"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as SshHosts from "../../ssh/test/sshHosts.js"
import { connectedAgents, countOf, eventually, expectToolResults, finish, finishTool, tempHome } from "./helpers.js"

/** The built `ramure` CLI. */
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../cli/bin/ramure.js")

class Hosts extends Context.Tag("test/Hosts")<Hosts, SshHosts.TestHosts>() {}

const unavailable = SshHosts.unavailable()
if (unavailable !== undefined) {
  if (process.env.CI) throw new Error(`pi agents over ssh cannot be tested here, and CI must test them: ${unavailable}`)
  console.warn(`pi agents over ssh: tests skipped: ${unavailable}`)
}


/** Run `body` in a pi run whose machines are on the test hosts and whose model is scripted. */
const scenario = <A, E>(
  scripts: Record<string, ScriptedModel.Script>,
  body: (hosts: SshHosts.TestHosts, home: string) => Effect.Effect<A, E, any>,
  options: { readonly register?: boolean } = {}
) =>
  Effect.gen(function* () {
    const hosts = yield* Hosts
    const server = yield* ScriptedModel.make({
      scripts: Object.fromEntries(Object.entries(scripts).map(([agent, script]) => [agent, [...script, { text: "(done)" }]]))
    })
    const home = yield* tempHome
    const run = Ramure.layer({
      home,
      program: "pi-ssh-test",
      register: options.register ?? false,
      handleSignals: false,
      model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
      modelsJson: (agent) => ScriptedModel.piModelsJson(server.baseUrl(agent)),
      ssh: {
        hosts: hosts.options([process.execPath, PiAgents.piCli()!]),
        forwardPorts: [Number(new URL(server.baseUrl("x")).port)],
        pollInterval: "250 millis"
      }
    })
    const result = yield* body(hosts, home).pipe(Effect.provide(run))
    expect(yield* server.failures).toEqual([])
    return result
  }).pipe(Effect.scoped) as Effect.Effect<A, E | ScriptedModel.ScriptedModelError, Hosts>

/** What a run left on a host, seen through ssh: tmux sessions, processes, machines' working directories. */
const leftOn = (hosts: SshHosts.TestHosts, host: SshHosts.TestHost, executionId: string) => ({
  sessions: hosts.remote(host, `tmux -L ${host.tmuxSocket} ls -F '#{session_name}' 2>/dev/null | grep ${executionId.slice(0, 8)} || true`).trim(),
  processes: hosts.remote(host, `grep -l 'RAMURE_EXECUTION_ID=${executionId}' /proc/[0-9]*/environ 2>/dev/null || true`).trim(),
  // The run's own files (dot files, tmux.conf) stay until the run ends.
  machines: hosts.remote(host, `ls ${host.root}/${executionId} 2>/dev/null | grep -vx tmux.conf || true`).trim()
})

/** The run's directory on each host (none once the run has ended). */
const runDirectories = (hosts: SshHosts.TestHosts, executionId: string) =>
  hosts.hosts.map((host) => hosts.remote(host, `ls -d ${host.root}/${executionId} 2>/dev/null || true`).trim()).join("")

const nothingLeft = (executionId: string) =>
  Effect.gen(function* () {
    const hosts = yield* Hosts
    const left = () => hosts.hosts.map((host) => leftOn(hosts, host, executionId))
    return yield* eventually(Effect.sync(left), (all) => all.every((l) => !l.sessions && !l.processes && !l.machines), "5 seconds").pipe(
      Effect.orElse(() => Effect.sync(left))
    )
  })

const clean = { sessions: "", processes: "", machines: "" }

describe.skipIf(unavailable !== undefined)("pi agents on ssh machines", () => {
  layer(Layer.scoped(Hosts, SshHosts.make(2)).pipe(Layer.provide(NodeContext.layer)), {
    excludeTestServices: true,
    timeout: "30 seconds"
  })((it) => {
    it.effect("agents on two hosts: a tool round trip, a file sent across hosts (and none escaping), nothing left after", () => {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const [alice, bob] = yield* Effect.all([Agent.make("alice", { host: "a" }), Agent.make("bob", { host: "b" })], {
            concurrency: "unbounded"
          })
          yield* Agent.connect(alice, bob, { direction: "a->b" })
          yield* alice.on(
            "add",
            { description: "Add two numbers", parameters: Schema.Struct({ a: Schema.Number, b: Schema.Number }) },
            ({ a, b }) => Effect.succeed({ sum: a + b })
          )
          yield* alice.machine.writeFile("report.txt", "made on a")
          yield* alice.on("finish", finishTool, ({ result }) =>
            Effect.gen(function* () {
              const received = new TextDecoder().decode(yield* bob.machine.readFile("inbox/report.txt"))
              const where = (yield* bob.exec(`echo "$SSH_CONNECTION"`)).stdout.trim().split(" ")[2]
              return yield* Process.done({ result, received, where, hosts: [alice.machine.describe.host, bob.machine.describe.host] })
            }))
          yield* alice.send("Add 2 and 3, send report.txt to bob, then finish.")
          return yield* Process.wait()
        }))
      let executionId = ""
      return scenario(
        {
          alice: [
            { toolCalls: [{ name: "add", arguments: { a: 2, b: 3 } }] },
            {
              expect: expectToolResults((r) => r[0] === '{"sum":5}'),
              toolCalls: [{ name: "send_file", arguments: { to: "bob", path: "report.txt", dest: "inbox/report.txt" } }]
            },
            {
              expect: expectToolResults((r) => r[0]?.startsWith("sent report.txt to bob as inbox/report.txt") === true),
              toolCalls: [{ name: "send_file", arguments: { to: "bob", path: "report.txt", dest: "../../escape.txt" } }]
            },
            { expect: expectToolResults((r) => r[0]?.includes("escapes") === true), toolCalls: [finish("sent")] }
          ],
          // Told about the file; may answer before the run ends.
          bob: []
        },
        (hosts) =>
          Effect.gen(function* () {
            executionId = yield* RunInfo.executionId
            const outcome = yield* main()
            expect(outcome).toEqual({ result: "sent", received: "made on a", where: hosts.hosts[1]!.address, hosts: ["a", "b"] })
            const created = (yield* (yield* RunLog).history()).flatMap((e) => (e.event._tag === "AgentCreated" ? [e.event] : []))
            expect(created.map((e) => e.machine)).toEqual(expect.arrayContaining([
              expect.objectContaining({ kind: "ssh", host: "a", ssh: expect.objectContaining({ tmuxSocket: hosts.hosts[0]!.tmuxSocket }) }),
              expect.objectContaining({ kind: "ssh", host: "b" })
            ]))
            expect(yield* nothingLeft(executionId)).toEqual([clean, clean])
          })
      ).pipe(Effect.zipLeft(Effect.flatMap(Hosts, (hosts) => Effect.sync(() => expect(runDirectories(hosts, executionId)).toBe("")))))
    })

    it.effect("`ramure ssh` reaches a remote agent; interrupting its process leaves nothing on either host", () => {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const agents = yield* Effect.all([Agent.make("one"), Agent.make("two")], { concurrency: "unbounded" })
          yield* Deferred.succeed(placed, agents.map((agent) => agent.machine.describe.host ?? ""))
          return yield* Effect.never
        }))
      const placed = Effect.runSync(Deferred.make<Array<string>>())
      return scenario({}, (hosts, home) =>
        Effect.gen(function* () {
          const executionId = yield* RunInfo.executionId
          const fiber = yield* Effect.fork(main())
          yield* connectedAgents(2)
          // Least-loaded placement spreads them.
          const placement = yield* Deferred.await(placed)
          expect(new Set(placement)).toEqual(new Set(["a", "b"]))

          // A shell on "two"'s machine: commands come from stdin (no terminal here).
          // Not a synchronous child: the CLI talks to this very run.
          const shell = yield* Command.make(process.execPath, cli, "ssh", "--agent", "two").pipe(
            Command.env({ RAMURE_HOME: home, SHELL: "/bin/sh" }),
            Command.feed('echo "$PWD|$RAMURE_AGENT|$SSH_CONNECTION"\nexit\n'),
            Command.string
          )
          const [cwd, agent, connection] = shell.trim().split("|")
          expect(cwd).toMatch(new RegExp(`${executionId}/two$`))
          expect(agent).toBe("two")
          expect(connection).toContain(hosts.hosts.find((h) => h.name === placement[1])!.address)

          const exit = yield* Fiber.interrupt(fiber)
          expect(Exit.isInterrupted(exit)).toBe(true)
          expect(yield* nothingLeft(executionId)).toEqual([clean, clean])
        }), { register: true })
    })

    it.effect("the master connection killed during a tool call: re-opened, the agent reconnects, the result arrives once", () => {
      let calls = 0
      let worker: Agent.Agent | undefined
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          worker = yield* Agent.make("worker", { host: "b" })
          const agent = worker
          const { controlPath, destination } = agent.machine.describe.ssh!
          yield* agent.on("slow", { description: "Takes a while", parameters: Schema.Struct({}) }, () =>
            Effect.gen(function* () {
              calls++
              const check = execFileSync("sh", ["-c", `ssh -S '${controlPath}' -O check '${destination}' 2>&1`], { encoding: "utf8" })
              process.kill(Number(/pid=(\d+)/.exec(check)![1]), "SIGKILL")
              // The tunnel is gone, so is the agent's WebSocket; the result is logged while it is away.
              yield* eventually(countOf(agent, "AgentDisconnected"), (n) => n > 0)
              return "slow result"
            }))
          yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* agent.send("Call slow.")
          return yield* Process.wait()
        }))
      return scenario(
        {
          worker: [
            { toolCalls: [{ name: "slow", arguments: {} }] },
            { expect: expectToolResults((r) => r[0] === "slow result"), toolCalls: [finish("survived")] }
          ]
        },
        () =>
          Effect.gen(function* () {
            expect(yield* main()).toBe("survived")
            expect(calls).toBe(1)
            expect(yield* countOf(worker!, "AgentConnected")).toBeGreaterThanOrEqual(2)
          })
      )
    })
  })
})
