import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import { background, bin, built, cliEnv, deadPid, eventually, exec, ramure, startRun, tempHome, tmuxSocket, writeEntry, type FixtureRun } from "./helpers.js"

/** A live run whose agents alice and bob each have a tmux session on a private socket. */
class Run extends Context.Tag("cli-test/TmuxRun")<Run, { readonly home: string; readonly socket: string; readonly run: FixtureRun }>() {}

const tmuxRun = Layer.scoped(
  Run,
  Effect.gen(function* () {
    const home = yield* tempHome
    const socket = yield* tmuxSocket
    const run = yield* startRun(home, ["--tmux", socket], { RAMURE_TMUX_SOCKET: socket })
    return { home, socket, run }
  })
).pipe(Layer.provideMerge(built))

const tmux = (socket: string, ...args: Array<string>) => exec("tmux", ["-L", socket, ...args])
const sessions = (socket: string) =>
  Effect.map(tmux(socket, "list-sessions", "-F", "#{session_name}"), (result) => result.stdout.split("\n").filter((name) => name.length > 0))

layer(tmuxRun, { timeout: "180 seconds", excludeTestServices: true })("ramure and tmux", (it) => {
  it.effect("status shows each agent's tmux session", () =>
    Effect.gen(function* () {
      const { home, run, socket } = yield* Run
      const status = yield* ramure(home, ["status"], { env: { RAMURE_TMUX_SOCKET: socket } })
      const id8 = run.id.slice(0, 8)
      expect(status.stdout).toMatch(new RegExp(`alice\\s+idle\\s+tmux /\\S+\\s+ramure-${id8}-alice`))
      expect(yield* sessions(socket)).toEqual(expect.arrayContaining([`ramure-${id8}-alice`, `ramure-${id8}-bob`]))
    }))

  for (const readOnly of [false, true]) {
    it.scoped(`connect${readOnly ? " --read-only" : ""} attaches this terminal to the agent's session`, () =>
      Effect.gen(function* () {
        const { home, run, socket } = yield* Run
        const session = `ramure-${run.id.slice(0, 8)}-bob`
        const command = `${process.execPath} ${bin} connect --agent bob${readOnly ? " -r" : ""}`
        // `script` gives the CLI a terminal, as a person's shell would.
        const client = yield* background("script", ["-qec", command, "/dev/null"], cliEnv(home, { RAMURE_TMUX_SOCKET: socket }))
        const attached = yield* eventually(
          "a client on the session",
          Effect.map(tmux(socket, "list-clients", "-t", session, "-F", "#{session_name} #{client_readonly}"), (result) =>
            result.stdout.trim() || undefined)
        )
        expect(attached).toBe(`${session} ${readOnly ? 1 : 0}`)
        yield* tmux(socket, "detach-client", "-s", session)
        expect(yield* client.exited).toBe(0)
      }))
  }

  it.effect("ssh opens a shell on the agent's machine, in its working directory", () =>
    Effect.gen(function* () {
      const { home, socket } = yield* Run
      const env = { RAMURE_TMUX_SOCKET: socket, SHELL: "/bin/sh" }
      const status = JSON.parse((yield* ramure(home, ["status", "--json"], { env })).stdout)
      const cwd = status.agents.find((agent: { id: string }) => agent.id === "bob").machine.cwd
      expect(fs.existsSync(cwd)).toBe(true)
      const shell = yield* ramure(home, ["ssh", "--agent", "bob"], { env, input: "pwd\necho agent=$RAMURE_AGENT\n" })
      expect(shell).toMatchObject({ code: 0, stdout: `${cwd}\nagent=bob\n` })
    }))

  it.effect("gc removes stale entries and orphaned sessions, and leaves the live run's", () =>
    Effect.gen(function* () {
      const { home, run, socket } = yield* Run
      const env = { RAMURE_TMUX_SOCKET: socket }
      const stale = writeEntry(home, { execution_id: "deadbeef-0000-4000-8000-000000000000", pid: deadPid() })
      yield* tmux(socket, "new-session", "-d", "-s", "ramure-deadbeef-orphan", "sleep", "1000")
      const gc = yield* ramure(home, ["gc"], { env })
      expect(gc.code).toBe(0)
      expect(gc.stdout).toMatch(/^removed stale registry entry deadbeef \(ghost, pid \d+ is gone\)\nkilled orphaned tmux session ramure-deadbeef-orphan\n$/)
      expect(fs.existsSync(stale)).toBe(false)
      const left = yield* sessions(socket)
      expect(left).not.toContain("ramure-deadbeef-orphan")
      expect(left).toContain(`ramure-${run.id.slice(0, 8)}-alice`)
      expect((yield* ramure(home, ["gc"], { env })).stdout).toBe("nothing to clean up\n")
    }))

  it.effect("stop ends the run and its tmux sessions", () =>
    Effect.gen(function* () {
      const { home, run, socket } = yield* Run
      const stopped = yield* ramure(home, ["stop"], { env: { RAMURE_TMUX_SOCKET: socket } })
      expect(stopped.stdout).toMatch(/stopped after [\d.]+ s: cancelled\nno tmux sessions left\n$/)
      expect((yield* sessions(socket)).filter((name) => name.startsWith(`ramure-${run.id.slice(0, 8)}-`))).toEqual([])
      const connect = yield* ramure(home, ["connect", run.id.slice(0, 6)], { env: { RAMURE_TMUX_SOCKET: socket } })
      expect(connect.stderr).toBe(`ramure: run ${run.id.slice(0, 8)} is not live (it ended: cancelled)\n`)
    }))
})
