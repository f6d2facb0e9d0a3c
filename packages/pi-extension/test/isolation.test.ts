/**
 * Real pi agents in real tmux on worktree machines in bubblewrap sandboxes,
 * against the scripted model: what the agent's own `bash` can reach, what
 * becomes of its work, and that the user's checkout is never touched.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as RunInfo from "@ramure/core/RunInfo"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import type * as Worktree from "@ramure/core/Worktree"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { checkoutState, git, makeRepo } from "../../node/test/gitHelpers.js"
import { expectToolResults, finish, finishTool, noLeftovers, piRun, type Provider, tempHome } from "./helpers.js"

const secretName = `.ramure-pi-sandbox-test-${crypto.randomUUID()}`
const homeSecret = path.join(os.homedir(), secretName)
fs.writeFileSync(homeSecret, "home secret", { mode: 0o600 })
afterAll(() => fs.rmSync(homeSecret, { force: true }))

/** Run `body` against a scripted model (every script ends with a plain turn) and a pi run (in tmux unless said). */
const scenario = <A, E>(
  scripts: Record<string, ScriptedModel.Script>,
  body: (server: ScriptedModel.ScriptedModelServer) => Effect.Effect<A, E, any>,
  provider: Provider = "tmux"
) =>
  Effect.gen(function* () {
    const server = yield* ScriptedModel.make({
      scripts: Object.fromEntries(Object.entries(scripts).map(([agent, script]) => [agent, [...script, { text: "(done)" }]]))
    })
    const home = yield* tempHome
    const result = yield* body(server).pipe(Effect.provide(piRun(server, provider, home)))
    expect(yield* server.failures).toEqual([])
    return result
  }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)) as Effect.Effect<A, E | ScriptedModel.ScriptedModelError>

const bash = (command: string): ScriptedModel.ToolCallTurn => ({ name: "bash", arguments: { command } })

describe("pi agents on worktrees, in a sandbox", () => {
  it.live("a sandboxed pi on a worktree cannot read a secret in the home nor write outside its directory; its work lands on its branch and the user's checkout is untouched", () => {
    const repo = makeRepo({ "greet.js": "module.exports = () => 'Helo'\n", ".gitignore": "build/\n" })
    // The user is in the middle of something: a change, a staged change, an untracked file and a stash.
    fs.writeFileSync(path.join(repo, "greet.js"), "module.exports = () => 'Helo' // wip\n")
    fs.writeFileSync(path.join(repo, "staged.txt"), "staged\n")
    git(repo, "add", "staged.txt")
    fs.writeFileSync(path.join(repo, "scratch.txt"), "untracked\n")
    fs.writeFileSync(path.join(repo, "stashed.txt"), "stashed\n")
    git(repo, "stash", "push", "--include-untracked", "--quiet", "--", "stashed.txt")
    const before = checkoutState(repo)
    let during: { commits: ReadonlyArray<Worktree.Commit>; diff: string } | undefined
    let machineCwd = ""

    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const fixer = yield* Agent.make("fixer", { worktree: { repo }, sandbox: true })
        machineCwd = fixer.machine.cwd
        yield* fixer.on("finish", finishTool, ({ result }) =>
          Effect.gen(function* () {
            during = { commits: yield* fixer.machine.worktree!.commits, diff: yield* fixer.machine.worktree!.diff }
            return yield* Process.done(result)
          }))
        yield* fixer.send("Fix the greeting in greet.js, commit it, then call finish.")
        return yield* Process.wait()
      }))

    return scenario(
      {
        fixer: [
          { toolCalls: [bash(`cat ${homeSecret}`)] },
          {
            expect: expectToolResults((r) => r[0]!.includes("No such file or directory") && !r[0]!.includes("home secret")),
            // The repository's objects are visible read-only (the worktree borrows them); its checkout is not there at all.
            toolCalls: [bash(`ls -A ${repo}; echo planted > ${path.join(repo, ".git", "objects", "planted")}`)]
          },
          {
            expect: expectToolResults((r) =>
              r[0]!.startsWith(`.git\n/bin/bash: line 1: ${path.join(repo, ".git", "objects", "planted")}: Read-only file system`)
            ),
            toolCalls: [bash(
              "sed -i s/Helo/Hello/ greet.js && git commit -qam 'Fix the greeting' && " +
                "echo 'remember: say hello' > notes.txt && mkdir -p build && echo junk > build/out.js && git log --format=%an:%s"
            )]
          },
          {
            expect: expectToolResults((r) => r[0]!.startsWith("fixer (ramure):Fix the greeting\n")),
            toolCalls: [finish("fixed")]
          }
        ]
      },
      () =>
        Effect.gen(function* () {
          const executionId = yield* RunInfo.executionId
          expect(yield* main()).toBe("fixed")
          const branch = `ramure/${executionId.slice(0, 8)}/fixer`

          // While it worked: its commit, and its uncommitted file in the diff against base.
          expect(during!.commits.map((c) => c.subject)).toEqual(["Fix the greeting"])
          expect(during!.diff).toContain("+module.exports = () => 'Hello'")
          expect(during!.diff).toContain("+remember: say hello")
          expect(during!.diff).not.toContain("build/out.js")

          // Released: what it left is committed on its branch, its checkout is gone, nothing runs.
          expect(git(repo, "log", "--format=%an|%s", branch).trim().split("\n")).toEqual([
            "fixer (ramure)|ramure: save the work left in fixer",
            "fixer (ramure)|Fix the greeting",
            "user|init"
          ])
          expect(git(repo, "show", `${branch}:notes.txt`)).toBe("remember: say hello\n")
          expect(git(repo, "ls-tree", "-r", "--name-only", branch).split("\n")).not.toContain("build/out.js")
          expect(fs.existsSync(machineCwd)).toBe(false)
          expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })

          // The user's checkout, index, stash and HEAD are as they were; nothing was planted in it.
          expect(checkoutState(repo)).toEqual(before)
          expect(fs.existsSync(path.join(repo, ".git", "objects", "planted"))).toBe(false)
        })
    )
  })

  // Headless (rpc mode, its commands on stdin) this time: the other way pi runs.
  it.live("without a network a sandboxed headless pi reaches its run and the model through forwarded ports, and its bash reaches nothing else", () =>
    Effect.gen(function* () {
      const other = yield* Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer((socket) => socket.end("should not be reachable\n"))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      const otherPort = (other.address() as net.AddressInfo).port
      const probe = `node -e 'require("node:net").connect(${otherPort}, "127.0.0.1").on("error", (e) => console.log(e.code)).on("data", (d) => console.log(String(d)))'`
      let modelPort = 0
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const agent = yield* Agent.make("offline", { sandbox: { network: "none", forwardPorts: [modelPort] } })
          yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* agent.send("Probe the port, then finish.")
          return yield* Process.wait()
        }))
      return yield* scenario(
        {
          offline: [
            { toolCalls: [bash(probe)] },
            { expect: expectToolResults((r) => r[0]!.trim() === "ECONNREFUSED"), toolCalls: [finish("isolated")] }
          ]
        },
        (server) =>
          Effect.gen(function* () {
            modelPort = Number(new URL(server.url).port)
            expect(yield* main()).toBe("isolated")
          }),
        "local"
      )
    }).pipe(Effect.scoped))
})
