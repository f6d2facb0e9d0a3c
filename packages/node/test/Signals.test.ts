/**
 * Real signals to a real program running real pi agents in tmux: every way
 * the orchestrator can be stopped leaves no session, no pi and no registry
 * entry behind, and no log line is lost.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { alive, readJsonl, tmuxSessionsOf as sessionsOf } from "../../core/test/helpers.js"

const root = path.resolve(__dirname, "../../..")
const fixture = path.join(__dirname, "fixtures/idle-run.ts")

interface Started {
  readonly child: ChildProcess
  readonly executionId: string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly output: () => string
}

const start = (home: string, crash?: "throw" | "reject", env: NodeJS.ProcessEnv = {}): Promise<Started> =>
  new Promise((resolve, reject) => {
    // node itself (not the tsx wrapper), so that signals reach the program.
    const child = spawn(process.execPath, ["--import", "tsx", fixture, ...(crash === undefined ? [] : [crash])], {
      cwd: root,
      env: { ...process.env, RAMURE_HOME: home, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on("exit", (code, signal) => done({ code, signal }))
    )
    const timer = setTimeout(() => reject(new Error(`fixture did not start:\n${output}`)), 90_000)
    child.stderr!.on("data", (data) => (output += data))
    child.stdout!.on("data", (data) => {
      output += data
      const match = /ready (\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve({ child, executionId: match[1]!, exited, output: () => output })
      }
    })
    exited.then(() => reject(new Error(`fixture exited early:\n${output}`)))
  })

const logOf = (home: string, executionId: string) => {
  const directory = path.join(home, "logs", executionId)
  return fs.readdirSync(directory).filter((file) => file.endsWith(".jsonl")).flatMap((file) => readJsonl(path.join(directory, file)))
}

const agentPids = (home: string, executionId: string): Array<number> =>
  logOf(home, executionId).filter((e) => e.event._tag === "AgentCreated").map((e) => e.event.pid as number)

/** Whether `pid` is gone within 5 s: a forced exit sends SIGKILL, which a loaded machine may take a moment to carry out. */
const gone = async (pid: number): Promise<boolean> => {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  return !alive(pid)
}

const expectNothingLeft = async (home: string, executionId: string) => {
  expect(sessionsOf(executionId)).toEqual([])
  const pids = agentPids(home, executionId)
  expect(pids).toHaveLength(2)
  for (const pid of pids) expect(await gone(pid)).toBe(true)
  expect(fs.readdirSync(path.join(home, "runtimes"))).toEqual([])
}

const tempHome = () => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-signals-"))

/** Every agent released, the root process cancelled, the run's end logged, no entry missing. */
const expectCompleteLog = (home: string, executionId: string) => {
  const log = logOf(home, executionId)
  expect(log.filter((e) => e.event._tag === "AgentReleased").map((e) => e.agent).sort()).toEqual(["one", "two"])
  expect(log.find((e) => e.event._tag === "ProcessEnded")?.event.outcome).toBe("cancelled")
  expect(log.some((e) => e.event._tag === "RunEnded")).toBe(true)
  const numbers = log.map((e) => e.n).sort((a, b) => a - b)
  expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1))
  return log
}

describe("signals to a program with real agents", () => {
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    it(`${signal} runs every finalizer (agents released, sessions killed, registry removed, logs complete) and exits ${codes[signal]}`, async () => {
      const home = tempHome()
      const run = await start(home)
      expect(sessionsOf(run.executionId)).toHaveLength(2)
      run.child.kill(signal)
      const exit = await run.exited
      expect(exit).toEqual({ code: codes[signal], signal: null })
      await expectNothingLeft(home, run.executionId)
      expectCompleteLog(home, run.executionId)
      // A stop is no bug: no stack trace.
      expect(run.output()).not.toMatch(/^\s+at /m)
    }, 120_000)
  }

  for (const crash of ["throw", "reject"] as const) {
    const what = crash === "throw" ? "an uncaught exception" : "an unhandled rejection"
    it(`${what} outside Effect stops the run gracefully: every finalizer runs, exit code 1`, async () => {
      const home = tempHome()
      const run = await start(home, crash)
      expect(sessionsOf(run.executionId)).toHaveLength(2)
      run.child.kill("SIGUSR2")
      const exit = await run.exited
      expect(exit).toEqual({ code: 1, signal: null })
      await expectNothingLeft(home, run.executionId)
      const log = expectCompleteLog(home, run.executionId)
      const message = crash === "throw" ? "thrown outside Effect" : "rejected outside Effect"
      expect(log.find((e) => e.event._tag === "ProcessEnded")?.event.error).toContain(message)
      // The run failed, and says why (`ramure ls --all` shows it).
      expect(log.find((e) => e.event._tag === "RunEnded")?.event).toEqual({ _tag: "RunEnded", outcome: "failed", error: `uncaught Error: ${message}` })
      // A bug: reported with its stack.
      expect(run.output()).toContain(`ramure: uncaught Error: ${message}`)
      expect(run.output()).toMatch(/^\s+at /m)
    }, 120_000)
  }

  it("a second SIGINT forces the exit but still kills the sessions and agents", async () => {
    const home = tempHome()
    const run = await start(home)
    run.child.kill("SIGINT")
    await new Promise((resolve) => setTimeout(resolve, 30))
    run.child.kill("SIGINT")
    const exit = await run.exited
    expect(exit.code).toBe(130)
    await expectNothingLeft(home, run.executionId)
  }, 120_000)

  it("after a SIGKILL, the next run removes the stale entry and the orphaned sessions of a run that keeps none for a resume, and says so", async () => {
    const home = tempHome()
    const first = await start(home, undefined, { RESUMABLE_FOR_MS: "0" })
    first.child.kill("SIGKILL")
    await first.exited
    expect(sessionsOf(first.executionId)).toHaveLength(2)
    expect(fs.readdirSync(path.join(home, "runtimes"))).toEqual([`${first.executionId}.json`])

    const second = await start(home)
    expect(sessionsOf(first.executionId)).toEqual([])
    expect(fs.readdirSync(path.join(home, "runtimes"))).toEqual([`${second.executionId}.json`])
    expect(second.output()).toContain(`run ${first.executionId.slice(0, 8)}`)
    const gc = logOf(home, second.executionId).find((e) => e.event._tag === "OrphansCollected")
    expect(gc?.event.sessions.sort()).toEqual([`ramure-${first.executionId.slice(0, 8)}-one`, `ramure-${first.executionId.slice(0, 8)}-two`])
    for (const pid of agentPids(home, first.executionId)) expect(await gone(pid)).toBe(true)
    second.child.kill("SIGTERM")
    await second.exited
    await expectNothingLeft(home, second.executionId)
  }, 180_000)
})
