/**
 * Figure 5 — cleanup: a program running real pi agents in tmux gets SIGINT
 * (Ctrl-C); time until every tmux session and every pi process of its run is
 * gone, and until the program itself has exited.
 */
import { readDirectory } from "@ramure/node/JsonlLogSink"
import type * as RunEvent from "@ramure/core/RunEvent"
import { logsDirectory } from "@ramure/core/RunInfo"
import { currentSocket } from "@ramure/node/TmuxMachineProvider"
import { defaultMaxStartingAgents } from "@ramure/core/RunLimits"
import { Data, Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { now, type FigureResult, type Size } from "./lib/Figure.js"
import { forkChild } from "./lib/child.js"
import type { Ready } from "./lib/cleanupChild.js"
import { tempDirectory } from "./lib/harness.js"
import { unavailable } from "./lib/pi.js"

const title = "Cleanup after interrupt (pi in tmux)"

/** tmux sessions of the run on ramure's socket. */
const sessionsOf = (executionId: string): Array<string> => {
  try {
    return execFileSync("tmux", ["-L", currentSocket(), "list-sessions", "-F", "#{session_name}"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"]
    })
      .split("\n")
      .filter((name) => name.startsWith(`ramure-${executionId.slice(0, 8)}-`))
  } catch {
    return []
  }
}

/** Live (non-zombie) processes whose environment names the run: its pi agents. */
const processesOf = (executionId: string): Array<number> => {
  const needle = `RAMURE_EXECUTION_ID=${executionId}\0`
  const found: Array<number> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (!fs.readFileSync(`/proc/${entry}/environ`, "latin1").includes(needle)) continue
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      if (stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z") found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

/** Last resort, so a failed sample leaves nothing behind. */
const forceClean = (executionId: string) => {
  for (const pid of processesOf(executionId)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  for (const session of sessionsOf(executionId)) {
    try {
      execFileSync("tmux", ["-L", currentSocket(), "kill-session", "-t", `=${session}`], { stdio: "ignore" })
    } catch {
      // gone
    }
  }
}

interface Sample {
  readonly piGoneMs: number
  readonly sessionsGoneMs: number
  readonly allGoneMs: number
  readonly exitMs: number
  /** From the run's log: the last agent to disconnect (pi exited gracefully) and to be released. */
  readonly disconnectedMs: number
  readonly releasedMs: number
}

/** Latest time (epoch ms) of a log entry of an event tagged `tag` over the run's logs. */
const lastOf = (home: string, executionId: string, tag: RunEvent.Tag): number => {
  let last = Number.NaN
  for (const entry of readDirectory(logsDirectory(home, executionId))) {
    if (entry.event._tag === tag) last = Number.isNaN(last) ? Date.parse(entry.ts) : Math.max(last, Date.parse(entry.ts))
  }
  return last
}

/** An agent connected before the interrupt meant to come while they all start. */
class ConnectedFirst extends Data.TaggedError("ConnectedFirst") {}

/** `live`: SIGINT once every agent is connected; `starting`: as soon as the first pis are starting, none connected. */
type When = "live" | "starting"

const once = (agents: number, when: When) =>
  Effect.scoped(
    Effect.gen(function* () {
      const home = yield* tempDirectory("cleanup")
      const child = yield* forkChild<Ready>("lib/cleanupChild.ts", [String(agents), home, when])
      const ready = yield* child.receive.pipe(Effect.timeoutFail({ duration: "240 seconds", onTimeout: () => new Error("agents did not start") }))
      const { executionId } = ready
      yield* Effect.addFinalizer(() => Effect.sync(() => forceClean(executionId)))
      if (when === "starting") {
        // The first batch of pis is up (loading), and none has connected yet.
        const batch = Math.min(agents, defaultMaxStartingAgents())
        while (processesOf(executionId).length < batch) yield* Effect.sleep("5 millis")
        // On a loaded machine a pi may connect first: then this round measures nothing, and is run again.
        if (lastOf(home, executionId, "AgentConnected") > 0) return yield* new ConnectedFirst()
      } else {
        const before = { sessions: sessionsOf(executionId).length, processes: processesOf(executionId).length }
        if (before.sessions !== agents || before.processes < agents) {
          return yield* Effect.dieMessage(`expected ${agents} sessions and pi processes, found ${JSON.stringify(before)}`)
        }
      }
      let exitAt: number | undefined
      child.process.once("exit", () => (exitAt = now()))
      const started = now()
      const startedAt = Date.now()
      child.process.kill("SIGINT")
      let piGone: number | undefined
      let sessionsGone: number | undefined
      while ((piGone === undefined || sessionsGone === undefined || exitAt === undefined) && now() - started < 30_000) {
        if (piGone === undefined && processesOf(executionId).length === 0) piGone = now()
        if (sessionsGone === undefined && sessionsOf(executionId).length === 0) sessionsGone = now()
        yield* Effect.sleep("5 millis")
      }
      if (piGone === undefined || sessionsGone === undefined || exitAt === undefined) {
        return yield* Effect.dieMessage(`run ${executionId} not cleaned up within 30 s`)
      }
      return {
        piGoneMs: piGone - started,
        sessionsGoneMs: sessionsGone - started,
        allGoneMs: Math.max(piGone, sessionsGone) - started,
        exitMs: exitAt - started,
        disconnectedMs: when === "starting" ? 0 : lastOf(home, executionId, "AgentDisconnected") - startedAt,
        releasedMs: lastOf(home, executionId, "AgentReleased") - startedAt
      } satisfies Sample
    })
  )

export const cleanup = (size: Size) =>
  Effect.gen(function* () {
    const missing = unavailable()
    if (missing !== undefined) return { id: 5, title, method: "", metrics: [], skipped: missing } satisfies FigureResult
    const agents = size === "full" ? 20 : 2
    const rounds = size === "full" ? 2 : 1
    const live: Array<Sample> = []
    const starting: Array<Sample> = []
    // Side by side: the two cases alternate.
    for (let i = 0; i < rounds; i++) {
      live.push(yield* once(agents, "live"))
      starting.push(yield* once(agents, "starting").pipe(Effect.retry({ times: 4 })))
    }
    const row = (samples: ReadonlyArray<Sample>, label: string, target: boolean) => [
      { name: `${label}: every pi process gone`, unit: "ms", samples: samples.map((s) => s.piGoneMs), digits: 0 },
      { name: `${label}: every tmux session gone`, unit: "ms", samples: samples.map((s) => s.sessionsGoneMs), digits: 0 },
      {
        name: `${label}: everything gone`,
        unit: "ms",
        samples: samples.map((s) => s.allGoneMs),
        ...(target ? { target: { op: "<" as const, value: 1000 } } : {}),
        digits: 0
      },
      { name: `${label}: program exited`, unit: "ms", samples: samples.map((s) => s.exitMs), digits: 0 }
    ]
    const result: FigureResult = {
      id: 5,
      title,
      method:
        `A program (\`NodeRuntime.runMain\`, \`Ramure.layer\` with tmux, scripted model) starts ${agents} real pi agents ` +
        `and gets SIGINT, either once they are all connected and idle ("live") or as soon as the first ` +
        `${Math.min(agents, defaultMaxStartingAgents())} pis are running and none has connected ("starting"); the bench polls ` +
        `(every ~5 ms) the tmux sessions \`ramure-<run>-*\` on the ramure socket and the live processes whose environment has ` +
        `the run's \`RAMURE_EXECUTION_ID\` (the pi agents). ${rounds} runs of each, alternating.`,
      metrics: [
        ...row(live, `${agents} live agents`, true),
        {
          name: `${agents} live agents: last agent disconnected (pi's graceful exit, from the log)`,
          unit: "ms",
          samples: live.map((s) => s.disconnectedMs),
          digits: 0
        },
        {
          name: `${agents} live agents: last agent released (tmux session killed, from the log)`,
          unit: "ms",
          samples: live.map((s) => s.releasedMs),
          digits: 0
        },
        ...row(starting, `${agents} agents starting`, true)
      ],
      counts: { agents: agents * rounds * 2 },
      notes: [
        "Where the time goes (rows from the run's log): SIGINT cancels the root process and every agent is sent `Shutdown`; " +
          "pi exits gracefully (drains terminal input for ≥ 50 ms, disposes its session, exits) and disconnects; then the " +
          "agent's tmux session is released: its pane's state is read, the pane's process group is signalled and watched " +
          "(its members' /proc entries every 10 ms), the session is killed. Agents are released in parallel and share their " +
          "tmux clients: one `list-panes -a` answers every agent that asked while the previous one ran, one client kills every " +
          "session released meanwhile (`kill-session -t a ; kill-session -t b …`), where each agent used to run ~3 tmux " +
          "clients of its own (~20 ms of blocked event loop each).",
        "An agent still starting has no pi session worth a graceful exit: its pane's group gets SIGTERM at once, and SIGKILL " +
          "after the grace period; a pane whose program already exited needs no grace (only the 0.2 s wrapper is left).",
        "Fixed in core (`TmuxMachineProvider`): the exit watcher ran `tmux display-message` every 200 ms for every agent for " +
          "its whole life; 20 idle pi agents kept the orchestrator at ~90 % of a core, which slowed every start and stop. It " +
          "now checks the pane's process in /proc every 200 ms and asks tmux only once that process has stopped: ~2 % of a " +
          "core for 20 idle agents."
      ]
    }
    return result
  })
