/**
 * The CLI with sandboxed and worktree machines: `ramure ssh` and `ramure
 * connect` enter an agent's sandbox, and `ramure gc` saves the worktrees a
 * dead run left.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { git, makeRepo } from "../../node/test/gitHelpers.js"
import { background, bin, built, cliEnv, eventually, exec, ramure, repoRoot, startRun, tempHome, tmuxSocket } from "./helpers.js"

const secretName = `.ramure-cli-sandbox-test-${crypto.randomUUID()}`
const homeSecret = path.join(os.homedir(), secretName)

const withHomeSecret = Effect.acquireRelease(
  Effect.sync(() => fs.writeFileSync(homeSecret, "home secret", { mode: 0o600 })),
  () => Effect.sync(() => fs.rmSync(homeSecret, { force: true }))
)

layer(built, { timeout: "180 seconds", excludeTestServices: true })("ramure with worktree and sandboxed machines", (it) => {
  it.scoped("ssh opens a shell in a sandboxed agent's sandbox, and connect attaches to its session", () =>
    Effect.gen(function* () {
      yield* withHomeSecret
      const home = yield* tempHome
      const socket = yield* tmuxSocket
      const env = { RAMURE_TMUX_SOCKET: socket, SHELL: "/bin/sh" }
      const run = yield* startRun(home, ["--tmux", socket, "--agents", "carol", "--sandboxed", "carol"], { RAMURE_TMUX_SOCKET: socket })
      const status = JSON.parse((yield* ramure(home, ["status", "--json"], { env })).stdout)
      const machine = status.agents.find((agent: { id: string }) => agent.id === "carol").machine
      expect(machine.sandbox.network).toBe("host")
      expect((yield* ramure(home, ["status"], { env })).stdout).toMatch(new RegExp(`carol\\s+idle\\s+tmux\\+sandbox /\\S+\\s+ramure-${run.id.slice(0, 8)}-carol`))
      expect((yield* ramure(home, ["tail", "--agent", "carol"], { env })).stdout).toContain(
        `created on tmux machine carol (sandboxed) (tmux ramure-${run.id.slice(0, 8)}-carol)`
      )

      const shell = yield* ramure(home, ["ssh", "--agent", "carol"], {
        env,
        input: `pwd\necho agent=$RAMURE_AGENT\ncat ${homeSecret} 2>&1\nls -A ${home}\n`
      })
      expect(shell).toMatchObject({ code: 0, stdout: `${machine.cwd}\nagent=carol\ncat: ${homeSecret}: No such file or directory\nwork\n` })

      const session = `ramure-${run.id.slice(0, 8)}-carol`
      const client = yield* background("script", ["-qec", `${process.execPath} ${bin} connect --agent carol`, "/dev/null"], cliEnv(home, env))
      const attached = yield* eventually(
        "a client on carol's session",
        Effect.map(exec("tmux", ["-L", socket, "list-clients", "-t", session, "-F", "#{session_name}"]), (r) => r.stdout.trim() || undefined)
      )
      expect(attached).toBe(session)
      yield* exec("tmux", ["-L", socket, "detach-client", "-s", session])
      expect(yield* client.exited).toBe(0)
    }))

  it.scoped("gc commits what a dead run left in its worktrees to their branches and removes them", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const repo = makeRepo({ "a.txt": "a\n" })
      const fixture = path.join(repoRoot, "packages/node/test/fixtures/worktree-run.ts")
      const run = yield* background(process.execPath, ["--import", "tsx", fixture, repo, home], cliEnv(home))
      const ready = yield* eventually(
        "the run's worktree",
        Effect.sync(() => run.output().stdout.split("\n").find((line) => line.startsWith("{"))),
        "90 seconds"
      )
      const { path: checkout, ready: executionId } = JSON.parse(ready)
      run.child.kill("SIGKILL")
      yield* run.exited
      const id8 = executionId.slice(0, 8)
      const gc = yield* ramure(home, ["gc"])
      expect(gc.code).toBe(0)
      expect(gc.stdout).toContain(`saved the work of keeper (run ${id8}) to branch ramure/${id8}/keeper of ${repo} and removed its worktree\n`)
      expect(git(repo, "log", "--format=%s", `ramure/${id8}/keeper`).trim().split("\n")).toEqual([
        "ramure: save the work left in keeper",
        "Keep this",
        "init"
      ])
      expect(fs.existsSync(checkout)).toBe(false)
      expect((yield* ramure(home, ["gc"])).stdout).toBe("nothing to clean up\n")
    }))
})
