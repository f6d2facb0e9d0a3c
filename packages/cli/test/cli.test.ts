import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { background, built, deadPid, ramure, tempHome, writeEntry } from "./helpers.js"

const verbs = ["ls", "status", "tail", "send", "call", "budget", "stop", "connect", "ssh", "gc"]

/** One line on stderr, a non-zero exit code, no stack trace. */
const expectUserError = (result: { code: number | null; stderr: string }, text: string) => {
  expect(result.code).not.toBe(0)
  expect(result.code).not.toBe(null)
  expect(result.stderr.trimEnd().split("\n")).toHaveLength(1)
  expect(result.stderr).toMatch(/^ramure: /)
  expect(result.stderr).toContain(text)
  expect(result.stderr).not.toMatch(/\n\s+at /)
}

/** A finished run's log directory, written by hand (its entries dated `ts`). */
const writeLog = (home: string, id: string, ended: string | undefined, ts = new Date().toISOString()) => {
  const directory = path.join(home, "logs", id)
  fs.mkdirSync(directory, { recursive: true })
  const entries = [
    { ts, n: 1, process: "", event: { _tag: "RunStarted", executionId: id, program: "old", pid: 1, url: "ws://127.0.0.1:1" } },
    { ts, n: 2, process: "main", event: { _tag: "ProcessStarted", name: "main" } },
    ...(ended === undefined ? [] : [{ ts, n: 4, process: "", event: { _tag: "RunEnded", outcome: ended } }])
  ]
  fs.writeFileSync(path.join(directory, "_runtime.jsonl"), entries.map((e) => JSON.stringify(e)).join("\n") + "\n")
  const agent = {
    ts,
    n: 3,
    process: "main",
    agent: "worker",
    event: { _tag: "AgentCreated", name: "worker", machine: { id: "worker", kind: "local", cwd: "/tmp" } }
  }
  fs.writeFileSync(path.join(directory, "worker.jsonl"), JSON.stringify(agent) + "\n")
}

const freePort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

layer(built, { timeout: "120 seconds", excludeTestServices: true })("ramure without a live run", (it) => {
  it.scoped("--help works on every verb; --version and completions are built in", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const results = yield* Effect.forEach(verbs, (verb) => ramure(home, [verb, "--help"]), { concurrency: 3 })
      results.forEach((result, i) => {
        expect(result.code, verbs[i]).toBe(0)
        expect(result.stdout).toContain("USAGE")
        expect(result.stdout).toContain(`$ ${verbs[i]}`)
      })
      const version = yield* ramure(home, ["--version"])
      expect(version.stdout.trim()).toBe("0.1.0")
      const completions = yield* ramure(home, ["--completions", "bash"])
      expect(completions.code).toBe(0)
      expect(completions.stdout).toContain("ramure")
    }))

  it.scoped("ls with no runs says so; --json is an empty list", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const text = yield* ramure(home, ["ls"])
      expect(text).toMatchObject({ code: 0, stderr: "" })
      expect(text.stdout).toContain("no live runs")
      expect(JSON.parse((yield* ramure(home, ["ls", "--json"])).stdout)).toEqual([])
    }))

  it.scoped("ls reports a registry entry whose process is gone and keeps it for gc, which removes it", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const file = writeEntry(home, { execution_id: "5ca1ab1e-0000-4000-8000-000000000000", pid: deadPid() })
      const result = yield* ramure(home, ["ls"])
      expect(result.code).toBe(0)
      expect(result.stderr).toMatch(/^ramure: run 5ca1ab1e \(ghost, pid \d+\) is gone but left its registry entry; ramure gc cleans up after it\n$/)
      expect(result.stdout).toContain("no live runs")
      expect(fs.existsSync(file)).toBe(true)
      const gc = yield* ramure(home, ["gc"])
      expect(gc.stdout).toMatch(/^removed stale registry entry 5ca1ab1e \(ghost, pid \d+ is gone\)\n/)
      expect(fs.existsSync(file)).toBe(false)
    }))

  it.scoped("gc --older-than removes the logs and working directories of runs that ended longer ago, never a live run's", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000)
      const work = (id: string) => {
        const directory = path.join(home, "work", id, "worker")
        fs.mkdirSync(directory, { recursive: true })
        fs.writeFileSync(path.join(directory, "notes.md"), "x".repeat(2000))
        return path.dirname(directory)
      }
      const ids = {
        old: "01d00000-0000-4000-8000-000000000001",
        recent: "2ece0000-0000-4000-8000-000000000002",
        crashed: "c2a50000-0000-4000-8000-000000000003",
        live: "11fe0000-0000-4000-8000-000000000004"
      }
      writeLog(home, ids.old, "done", daysAgo(10).toISOString())
      writeLog(home, ids.recent, "failed", daysAgo(1).toISOString())
      // A run killed without a trace of its end: its files' age counts.
      writeLog(home, ids.crashed, undefined, daysAgo(30).toISOString())
      writeLog(home, ids.live, undefined, daysAgo(30).toISOString())
      writeEntry(home, { execution_id: ids.live, pid: process.pid })
      for (const id of Object.values(ids)) work(id)
      for (const id of [ids.crashed, ids.live]) {
        for (const directory of [path.join(home, "logs", id), path.join(home, "work", id)]) {
          for (const name of [...fs.readdirSync(directory), "."]) fs.utimesSync(path.join(directory, name), daysAgo(20), daysAgo(20))
        }
      }

      const gc = yield* ramure(home, ["gc", "--older-than", "7d"])
      expect(gc.code).toBe(0)
      expect(gc.stdout).toMatch(/^removed finished run 01d00000 \(old\), ended 10d ago: its logs and working directories, \d+ kB$/m)
      expect(gc.stdout).toMatch(/^removed finished run c2a50000 \(old\), ended 20d ago: its logs and working directories, \d+ kB$/m)
      const left = (parent: string) => fs.readdirSync(path.join(home, parent)).sort()
      expect(left("logs")).toEqual([ids.live, ids.recent].sort())
      expect(left("work")).toEqual([ids.live, ids.recent].sort())

      expectUserError(yield* ramure(home, ["gc", "--older-than", "soon"]), `--older-than takes an age such as 7d, 12h, 30m or 2w, not "soon"`)
      expect((yield* ramure(home, ["gc"])).stdout).toBe("nothing to clean up\n")
      expect(left("logs")).toEqual([ids.live, ids.recent].sort())
    }))

  it.scoped("a registry entry of a recycled pid (another start time) is stale", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      // This test's own pid, but a start time it never had: the run that wrote the entry is gone.
      writeEntry(home, { execution_id: "5ca1ab1e-0000-4000-8000-000000000000", pid: process.pid, pid_started: "1" })
      const result = yield* ramure(home, ["ls", "--json"])
      expect(JSON.parse(result.stdout)).toEqual([])
      expect(result.stderr).toContain("run 5ca1ab1e")
    }))

  it.scoped("an unreadable registry entry is reported with its path and why, never silently dropped", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const corrupt = writeEntry(home, { execution_id: "c0ffee00-0000-4000-8000-000000000000", pid: deadPid() })
      fs.writeFileSync(corrupt, "{ not json")
      const ls = yield* ramure(home, ["ls", "--all"])
      expect(ls.code).toBe(0)
      expect(ls.stderr).toContain(`ramure: cannot read registry entry ${corrupt}: `)
      const gc = yield* ramure(home, ["gc"])
      expect(gc.stdout).toContain(`left unreadable registry entry ${corrupt} alone: `)
      expect(fs.existsSync(corrupt)).toBe(true)
    }))

  it.scoped("an unknown id, no live run and bad usage are one line on stderr and a non-zero exit", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      expectUserError(yield* ramure(home, ["status", "zzz"]), 'no run matches "zzz"')
      expectUserError(yield* ramure(home, ["status"]), "no live run")
      expectUserError(yield* ramure(home, ["send"]), "send needs a message")
      expectUserError(yield* ramure(home, ["call", "a=1"]), "usage: ramure call")
      expectUserError(yield* ramure(home, ["tail", "--lines", "many"]), "many")
      expectUserError(yield* ramure(home, ["frobnicate"]), "Invalid subcommand")
    }))

  it.scoped("a live entry whose control channel does not answer gives a clear error", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const port = yield* freePort
      writeEntry(home, { execution_id: "dead0000-0000-4000-8000-000000000000", pid: process.pid, server_url: `ws://127.0.0.1:${port}` })
      expectUserError(yield* ramure(home, ["status"]), "cannot reach run dead0000")
      expectUserError(yield* ramure(home, ["send", "dead", "hello"]), "ECONNREFUSED")
    }))

  it.scoped("stop terminates a run whose control channel does not answer", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const port = yield* freePort
      const hung = yield* background("sleep", ["1000"], process.env)
      writeEntry(home, { execution_id: "0dd00000-0000-4000-8000-000000000000", pid: hung.child.pid!, server_url: `ws://127.0.0.1:${port}` })
      const stopped = yield* ramure(home, ["stop", "--grace", "0.5"])
      expect(stopped.code).toBe(0)
      expect(stopped.stderr).toMatch(/^ramure: cannot reach run 0dd00000: .*ECONNREFUSED.*; sending SIGTERM to pid \d+\n$/)
      expect(stopped.stdout).toMatch(/^run 0dd00000 terminated \(SIGTERM\) after [\d.]+ s: crashed\?\nno tmux sessions left\n$/)
      expect(yield* hung.exited).toBe(null)
      expect(fs.existsSync(path.join(home, "runtimes", "0dd00000-0000-4000-8000-000000000000.json"))).toBe(false)
    }))

  it.scoped("finished runs: an ambiguous prefix lists the candidates, a unique one picks the run", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      writeLog(home, "abcd1111-0000-4000-8000-000000000000", "done")
      writeLog(home, "abcd2222-0000-4000-8000-000000000000", undefined)
      expectUserError(yield* ramure(home, ["status", "abcd"]), '"abcd" matches 2 runs, pass an id: abcd1111 (finished), abcd2222 (finished)')

      const done = yield* ramure(home, ["status", "abcd1"])
      expect(done.code).toBe(0)
      expect(done.stdout).toContain("run abcd1111-0000-4000-8000-000000000000  old  pid 1  ended: done")
      expect(done.stdout).toMatch(/worker\s+starting\s+local \/tmp/)

      const listed = yield* ramure(home, ["ls", "--all", "--json"])
      expect(JSON.parse(listed.stdout)).toEqual([
        expect.objectContaining({ id: "abcd1111-0000-4000-8000-000000000000", live: false, outcome: "done", agents: 1 }),
        expect.objectContaining({ id: "abcd2222-0000-4000-8000-000000000000", live: false, outcome: "crashed?", agents: 1 })
      ])
      const tail = yield* ramure(home, ["tail", "abcd2", "-f"])
      expect(tail.code).toBe(0)
      expect(tail.stdout.trimEnd().split("\n").slice(-2)).toEqual([
        expect.stringMatching(/worker\s+created on local machine worker$/),
        "run abcd2222 ended: crashed?"
      ])
    }))
})
