/**
 * Figure 11 — resume: a program with 10 idle pi agents in tmux is killed
 * (SIGKILL); `ramure resume` runs it again. Time from spawning `ramure
 * resume` until the resumed program has every agent back (taken over, its
 * pi reconnected), against the same program's cold start (spawn until every
 * agent is connected), in the same round.
 */
import { readDirectory } from "@ramure/node/JsonlLogSink"
import { logsDirectory } from "@ramure/core/RunInfo"
import { currentSocket } from "@ramure/node/TmuxMachineProvider"
import { Effect } from "effect"
import { execFileSync, spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { now, type FigureResult, type Size } from "./lib/Figure.js"
import { repoRoot } from "./lib/child.js"
import { tempDirectory } from "./lib/harness.js"
import { unavailable } from "./lib/pi.js"

const title = "Resume of a killed run (pi in tmux)"
const bin = path.join(repoRoot, "packages", "cli", "bin", "ramure.js")

/** A program started with `node args…`, and when it printed `ready <id>`; killed with the scope if still running. */
const started = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly readyMs: number; readonly id: string }, Error>((resume) => {
      const begun = now()
      const child = spawn(process.execPath, [...args], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      let err = ""
      child.stdout!.on("data", (chunk) => {
        out += chunk
        const id = /^ready (\S+)$/m.exec(out)?.[1]
        if (id !== undefined) resume(Effect.succeed({ child, readyMs: now() - begun, id }))
      })
      child.stderr!.on("data", (chunk) => (err += chunk))
      child.on("exit", (code) => resume(Effect.fail(new Error(`node ${args.join(" ")} exited ${code} before it was ready: ${err}`))))
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

const exited = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

const round = (agents: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const home = yield* tempDirectory("resume")
      const env = { ...process.env, RAMURE_HOME: home, RAMURE_TMUX_SOCKET: currentSocket() }
      const first = yield* started(["--import", "tsx", path.join(repoRoot, "bench", "lib", "resumeChild.ts"), String(agents), home], env)
      first.child.kill("SIGKILL")
      yield* exited(first.child)
      const resumed = yield* started([bin, "resume", first.id.slice(0, 8)], env)
      const log = readDirectory(logsDirectory(home, first.id))
      // ramure's part: from the resumed run's start (its RunResumed) to the last agent connected again.
      const resumedAt = log.find((entry) => entry.event._tag === "RunResumed")
      const back = log.filter((entry) => resumedAt !== undefined && entry.n > resumedAt.n && entry.event._tag === "AgentConnected")
      const takeOverMs = resumedAt === undefined || back.length === 0
        ? Number.NaN
        : Math.max(...back.map((entry) => Date.parse(entry.ts))) - Date.parse(resumedAt.ts)
      const adopted = log.filter((entry) => entry.event._tag === "AgentAdopted").length
      const restarted = log.filter((entry) => entry.event._tag === "AgentRestarted").length
      // The resumed program (its pid is in its log) stops like a program given Ctrl-C: its agents are released.
      const resumedPid = log.flatMap((entry) => (entry.event._tag === "RunResumed" ? [entry.event.pid] : [])).at(-1)
      if (resumedPid !== undefined) process.kill(resumedPid, "SIGINT")
      yield* exited(resumed.child).pipe(Effect.timeout("30 seconds"), Effect.ignore)
      // The floor under any run of such a program: node loading ramure through tsx.
      const loadStarted = now()
      yield* Effect.sync(() => execFileSync(process.execPath, ["--import", "tsx", "-e", 'import("ramure")'], { cwd: repoRoot, stdio: "ignore" }))
      const loadMs = now() - loadStarted
      return { coldMs: first.readyMs, resumeMs: resumed.readyMs, takeOverMs, loadMs, adopted, restarted }
    })
  )

export const resume = (size: Size) =>
  Effect.gen(function* () {
    const missing = unavailable() ?? (fs.existsSync(bin) ? undefined : "the ramure CLI is not built")
    if (missing !== undefined) return { id: 11, title, method: "", metrics: [], skipped: missing } satisfies FigureResult
    const agents = size === "full" ? 10 : 2
    const rounds = size === "full" ? 3 : 1
    const samples: Array<Effect.Effect.Success<ReturnType<typeof round>>> = []
    for (let i = 0; i < rounds; i++) samples.push(yield* round(agents))
    return {
      id: 11,
      title,
      method:
        `A program with ${agents} idle pi agents in tmux (scripted model) is killed with SIGKILL once they are connected; ` +
        "`ramure resume` runs it again. Resume: from spawning `ramure resume` until the resumed program has every agent " +
        "back (its pi taken over and reconnected) — node and the program loading included. Cold start: the same program's " +
        `first run, from spawn until every agent is connected. Take-over: from the resumed run's start (its RunResumed entry) ` +
        `to the last agent connected again (log timestamps). ${rounds} round(s); all in each round.`,
      metrics: [
        {
          name: `take-over of ${agents} live agents (resumed run's start → all back)`,
          unit: "ms",
          samples: samples.map((s) => s.takeOverMs),
          target: { op: "<", value: 1000 }
        },
        { name: `ramure resume → all ${agents} back`, unit: "ms", samples: samples.map((s) => s.resumeMs) },
        { name: "floor: node --import tsx loading ramure", unit: "ms", samples: samples.map((s) => s.loadMs) },
        { name: `cold start, ${agents} agents`, unit: "ms", samples: samples.map((s) => s.coldMs) },
        { name: "resume / cold start", unit: "×", samples: samples.map((s) => s.resumeMs / s.coldMs), digits: 2 }
      ],
      notes: [
        "`ramure resume` → all back is the program loading again (node and tsx compiling ramure: the floor measured beside it, " +
        "paid by any run of the program) plus the take-over itself: each pi, waiting for its run, reconnects as soon as its " +
        "address file is rewritten (it watches the file), with its conversation and its place in the agent's log."
      ],
      counts: {
        adopted: samples.reduce((sum, s) => sum + s.adopted, 0),
        restarted: samples.reduce((sum, s) => sum + s.restarted, 0)
      }
    } satisfies FigureResult
  })
