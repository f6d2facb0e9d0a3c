/**
 * A run's living status file, `<home>/logs/<execution_id>/STATUS.md`, for a
 * person (or an agent) who opens the run's folder: what ramure is, the run,
 * its agents and their tmux sessions, its endpoints, the recent calls of
 * them, and how it ended. Rendered from the run's status as the log grows —
 * within 0.1 s for what changes the picture (an agent, an endpoint, a process
 * starting or ending; longer for a status that takes long to write), at most
 * once per `debounce` for the rest (tool calls, tokens) — and replaced atomically: a reader never sees half a file, and no
 * temporary file is left behind.
 */
import { budgetRow } from "@ramure/core/BudgetReport"
import { Duration, Effect, FiberHandle, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { LogEntry, RunEvent } from "@ramure/core/RunEvent"
import { logsDirectory, RunInfo } from "@ramure/core/RunInfo"
import { RunLog } from "@ramure/core/RunLog"
import type { RunStatus } from "@ramure/core/RunStatus"
import { describeEndpoint } from "@ramure/core/Signature"

export const FILE = "STATUS.md"

export interface Options {
  /** The longest a change that does not alter the picture waits to be written (default 1 s). */
  readonly debounce?: number
}

/** Events after which the file is rewritten at once. */
const structural: ReadonlySet<RunEvent["_tag"]> = new Set([
  "RunStarted",
  "RunEnded",
  "ProcessStarted",
  "ProcessEnded",
  "AgentCreated",
  "AgentConnected",
  "AgentStartFailed",
  "AgentCrashed",
  "AgentReleased",
  "ConnectionAdded",
  "EndpointExposed",
  "EndpointReturned",
  "BudgetExceeded",
  "BudgetRaised"
])

/** Text from the run, fit for one line of Markdown: no line breaks, no control characters, no table breaks. */
const plain = (text: string): string =>
  text
    .replace(/\r?\n/g, " ")
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/\|/g, "\\|")

const code = (text: string): string => `\`${plain(text).replace(/`/g, "'")}\``

const time = (ts: string | undefined): string => (ts === undefined ? "-" : ts.replace("T", " ").replace(/\.\d+Z$/, " UTC"))

/**
 * How the run ended, in words: `done`, `failed: …`, `cancelled: …` — a run
 * whose top process failed is never `done`, even when its program went on.
 */
export const outcomeOf = (status: RunStatus): string | undefined => {
  if (status.outcome === undefined) return undefined
  const root = status.processes.filter((p) => p.parent === undefined)
  const failed = root.find((p) => p.state === "failed" || p.state === "timeout")
  if (status.outcome === "done" && failed !== undefined) {
    return `failed: ${failed.error ?? `process ${failed.path} ${failed.state === "timeout" ? "timed out" : "failed"}`}`
  }
  if (status.outcome === "interrupted") return "cancelled (interrupted)"
  if (status.outcome === "cancelled") {
    const cancelled = root.find((p) => p.state === "cancelled")
    return `cancelled${cancelled?.error ? `: ${cancelled.error}` : ""}`
  }
  return status.error === undefined ? status.outcome : `${status.outcome}: ${status.error}`
}

export const render = (status: RunStatus, run: { readonly executionId: string; readonly program: string }): string => {
  const lines: Array<string> = []
  const id = status.executionId ?? run.executionId
  const outcome = outcomeOf(status)
  lines.push(
    `# ramure run ${id.slice(0, 8)}`,
    "",
    "ramure runs coding agents as structured, supervised programs: each agent is a pi coding agent in its own " +
      "tmux session, driven by a process that gives it tools, wires it to other agents and waits for a result. " +
      `This file is rewritten as the run goes; \`ramure status ${id.slice(0, 8)}\` shows the same live, and the ` +
      "`.jsonl` files beside it are the full log.",
    "",
    `- Run: ${code(id)}`,
    `- Program: ${code(status.program ?? run.program)}`
  )
  if (status.summary !== undefined) lines.push(`- Summary: ${plain(status.summary)}`)
  lines.push(
    `- Started: ${time(status.startedAt)}`,
    `- State: ${outcome === undefined ? "running" : `ended ${time(status.endedAt)}`}`,
    "",
    "## Agents",
    ""
  )
  if (status.agents.length === 0) lines.push("(none)")
  else {
    lines.push("| Agent | State | tmux session | Machine | Tool calls | Tokens in/out |", "|---|---|---|---|---|---|")
    for (const agent of status.agents) {
      const machine = agent.machine === undefined
        ? "-"
        : `${agent.machine.kind} ${agent.machine.host === undefined ? "" : `${agent.machine.host}:`}${agent.machine.cwd}`
      lines.push(
        `| ${plain(agent.id)} | ${agent.ended === undefined ? agent.state : `${agent.state}: ${plain(agent.ended)}`} | ` +
          `${agent.session === undefined ? "-" : code(agent.session)} | ${plain(machine)} | ` +
          `${agent.toolCalls} (+${agent.piToolCalls} pi) | ${agent.inputTokens}/${agent.outputTokens} |`
      )
    }
  }
  if (status.budgets.length > 0) {
    lines.push("", "## Budgets", "", "| Budget | Spent / limit | On exceeded | State |", "|---|---|---|---|")
    for (const budget of status.budgets) lines.push(`| ${budgetRow(budget, status).map(plain).join(" | ")} |`)
  }
  lines.push("", "## Endpoints", "")
  if (status.endpoints.length === 0) lines.push("(none)")
  for (const endpoint of status.endpoints) lines.push(`- ${code(endpoint.process)}: ${plain(describeEndpoint(endpoint))}`)
  lines.push("", "## Recent endpoint calls", "")
  if (status.calls.length === 0) lines.push("(none)")
  for (const call of status.calls) {
    const how = call.ok === undefined
      ? "running"
      : call.ok
      ? `ok in ${call.durationMs} ms`
      : `failed in ${call.durationMs} ms: ${plain(call.error ?? "")}`
    lines.push(`- ${time(call.at)} ${code(`${call.process}.${call.name}`)}${call.caller ? ` by ${plain(call.caller)}` : ""}: ${how}`)
  }
  lines.push("", "## Outcome", "", outcome === undefined ? "Still running." : plain(outcome), "")
  return lines.join("\n")
}

/** Replace `file` with `text` in one step: a new file beside it, renamed over it. */
const replace = (file: string, text: string) =>
  Effect.sync(() => {
    const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
      fs.writeFileSync(temporary, text, { mode: 0o600 })
      fs.renameSync(temporary, file)
    } catch (error) {
      fs.rmSync(temporary, { force: true })
      throw error
    }
  }).pipe(
    // The status file is a convenience: failing to write it never fails the run.
    Effect.catchAllDefect((error) => Effect.logWarning(`cannot write ${file}: ${error instanceof Error ? error.message : String(error)}`)),
    Effect.uninterruptible
  )

/** Keeps `<logs>/<execution_id>/STATUS.md` up to date for the lifetime of the layer; the last write is the run's end. */
export const layer = (options: Options = {}): Layer.Layer<never, never, RunLog | RunInfo> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const runLog = yield* RunLog
      const info = yield* RunInfo
      const file = path.join(logsDirectory(info.home, info.executionId), FILE)
      const lock = yield* Effect.makeSemaphore(1)
      /** A write is due soon (something structural changed), or later (anything else); how long the last one took. */
      let soon = false
      let later = false
      let lastWrite = Duration.zero
      const write = lock.withPermits(1)(
        Effect.suspend(() => {
          soon = false
          later = false
          return Effect.flatMap(runLog.status, (status) => replace(file, render(status, info)))
        }).pipe(Effect.timed, Effect.map(([took]) => void (lastWrite = took)))
      )
      const pending = yield* FiberHandle.make()
      const debounce = options.debounce ?? 1000
      // Written last, after everything the run logged (its end included) is in the status.
      yield* Effect.addFinalizer(() => Effect.zipRight(FiberHandle.clear(pending), write))
      // A structural change is written soon, not at once: a burst of agents starting or ending is one write, and a
      // large run's status (a write takes longer the more agents it has) costs at most a tenth of the run's time.
      const soonAfter = () => Duration.max(Duration.millis(100), Duration.times(lastWrite, 10))
      const isStructural = (entry: LogEntry) => structural.has(entry.event._tag)
      // While a write is due, only what makes it due sooner wakes this follower (not every tool call).
      const wanted = (entry: LogEntry) => (soon ? false : later ? isStructural(entry) : true)
      const follow = yield* runLog.follow((batch) => {
        if (!batch.some(isStructural)) {
          later = true
          return FiberHandle.run(pending, Effect.delay(write, Duration.millis(debounce)), { onlyIfMissing: true })
        }
        if (soon) return Effect.void
        soon = true
        return FiberHandle.run(pending, Effect.delay(write, soonAfter()))
      }, wanted)
      // What was logged before (the run's start) is in the status the first write shows.
      yield* Effect.forkScoped(Effect.zipRight(write, follow))
    })
  )
