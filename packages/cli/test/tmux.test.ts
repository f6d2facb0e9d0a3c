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

  it.scoped("gc from another home kills only what is provably orphaned: never a live run, nor a session nobody owns", () =>
    Effect.gen(function* () {
      const { run, socket } = yield* Run
      // A home that does not know the live run: its gc must still leave that run's sessions alone.
      const other = yield* tempHome
      const env = { RAMURE_TMUX_SOCKET: socket }
      const dead = deadPid()
      const stale = writeEntry(other, { execution_id: "deadbeef-0000-4000-8000-000000000000", pid: dead })
      const label = `${dead}:1:deadbeef-0000-4000-8000-000000000000:/a/third/home`
      yield* tmux(socket, "new-session", "-d", "-s", "ramure-deadbeef-orphan", "sleep", "1000", ";", "set-option", "-t", "=ramure-deadbeef-orphan:", "@ramure_owner", label)
      yield* tmux(socket, "new-session", "-d", "-s", "ramure-0badc0de-unlabelled", "sleep", "1000")
      const gc = yield* ramure(other, ["gc"], { env })
      expect(gc.code).toBe(0)
      expect(gc.stdout).toBe(
        `removed stale registry entry deadbeef (ghost, pid ${dead} is gone)\n` +
          `killed orphaned tmux session ramure-deadbeef-orphan (run deadbeef of /a/third/home, pid ${dead} is gone)\n` +
          "left tmux session ramure-0badc0de-unlabelled alone: it has no owner label\n"
      )
      expect(fs.existsSync(stale)).toBe(false)
      const left = yield* sessions(socket)
      expect(left).not.toContain("ramure-deadbeef-orphan")
      expect(left).toEqual(expect.arrayContaining([`ramure-${run.id.slice(0, 8)}-alice`, `ramure-${run.id.slice(0, 8)}-bob`, "ramure-0badc0de-unlabelled"]))
      yield* tmux(socket, "kill-session", "-t", "=ramure-0badc0de-unlabelled")
      expect((yield* ramure(other, ["gc"], { env })).stdout).toBe("nothing to clean up\n")
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
