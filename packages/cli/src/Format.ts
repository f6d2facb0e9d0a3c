/**
 * How the CLI shows things: one line per log entry (shared by `tail` and
 * the last activity in `status`), tables, ages, and the status report.
 */
import type * as RunEvent from "@ramure/core/RunEvent"
import type { LogEntry } from "@ramure/core/RunEvent"
import type { MachineInfo } from "@ramure/core/Machine"
import { budgetAmount, budgetAmounts, budgetRow, kindNames } from "@ramure/core/BudgetReport"
import type { RunStatus } from "@ramure/core/RunStatus"
import { describeEndpoint } from "@ramure/core/Signature"

export { budgetAmount, budgetAmounts, budgetRow } from "@ramure/core/BudgetReport"
import { visible } from "./Terminal.js"

/** `text` (from a run) fit for one line of a terminal: line breaks as `⏎`, tabs as spaces, controls visible. */
export const inline = (text: string): string => visible(text.replace(/\r?\n/g, " ⏎ ").replace(/\t/g, " "))

/** `text` on one line, cut to `max` characters. */
export const oneLine = (text: string, max = 200): string => {
  const flat = inline(text.replace(/\s*\n\s*/g, "\n")).trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

const json = (value: unknown, max = 120): string => oneLine(value === undefined ? "" : JSON.stringify(value) ?? "", max)

/** `5s`, `3m`, `2h`, `4d`. */
export const age = (from: string | undefined, now = Date.now()): string => {
  if (from === undefined) return "-"
  const seconds = Math.max(0, Math.round((now - Date.parse(from)) / 1000))
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86400)}d`
}

/** Local `YYYY-MM-DD HH:MM:SS`. */
export const dateTime = (ts: string | undefined): string => {
  if (ts === undefined) return "-"
  const date = new Date(ts)
  const pad = (n: number) => String(n).padStart(2, "0")
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time(ts)}`
}

/** Local `HH:MM:SS`. */
export const time = (ts: string): string => {
  const date = new Date(ts)
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":")
}

/** Left-aligned columns, two spaces apart; each cell on one line. */
export const table = (cells: ReadonlyArray<ReadonlyArray<string>>, indent = ""): string => {
  const rows = cells.map((row) => row.map(inline))
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows
    .map((row) => (indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).trimEnd())
    .join("\n")
}

/** `1 tool`, `2 tools`. */
const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`

const tokens = (usage: { readonly input: number; readonly output: number; readonly cost: number }) =>
  ` (${usage.input}→${usage.output} tokens, $${usage.cost.toFixed(4)})`

type Describe<T extends RunEvent.Tag> = (event: RunEvent.Of<T>, entry: LogEntry) => string

/** One line per event; a new `RunEvent` without a line here does not compile. */
const lines: { readonly [T in RunEvent.Tag]: Describe<T> } = {
  RunStarted: (e) =>
    `run started: ${e.program} (pid ${e.pid})${e.summary === undefined ? "" : ` — ${oneLine(e.summary, 120)}`}` +
    (e.traceId === undefined ? "" : ` (trace ${e.traceId})`),
  RunResumed: (e) => `run resumed (pid ${e.pid})${e.traceId === undefined ? "" : ` (trace ${e.traceId})`}`,
  RunEnded: (e) => `run ended: ${e.outcome}${e.error === undefined ? "" : `: ${oneLine(e.error, 160)}`}`,
  OrphansCollected: (e) =>
    `cleaned up dead run ${e.executionId.slice(0, 8)} (pid ${e.pid})${e.sessions.length > 0 ? `: ${e.sessions.join(", ")}` : ""}`,
  ConnectionRefused: (e) =>
    `refused a connection to ${e.path} (${e.reason})${e.suppressed === undefined ? "" : ` and ${e.suppressed} more`}`,
  ProtocolViolation: (e) =>
    `protocol error (${e.code}): ${oneLine(e.message, 160)}${e.suppressed ? ` (and ${e.suppressed} more not logged one by one)` : ""}`,
  ProcessStarted: (_, entry) => `process ${entry.process} started`,
  ProcessEnded: (e, entry) => `process ${entry.process} ${e.outcome}${e.error ? `: ${oneLine(e.error, 160)}` : ""}`,
  ProcessEmitted: (e) => `event ${e.type}${e.data === undefined ? "" : ` ${json(e.data)}`}`,
  StepCompleted: (e) => `step ${e.name} ${e.ok ? "done" : `failed: ${oneLine(e.error ?? "", 120)}`}`,
  EndpointExposed: (e) => `endpoint ${e.name} exposed`,
  EndpointCalled: (e) => `endpoint ${e.name} called${e.caller ? ` by ${e.caller}` : ""} ${json(e.args)}`,
  EndpointReturned: (e) =>
    `endpoint ${e.name} ${e.ok ? "returned" : `failed: ${oneLine(e.error ?? "", 120)}`} in ${e.durationMs} ms`,
  MachineCreated: (e) => `machine ${e.machine.id} (${e.machine.kind}) created`,
  AgentCreated: (e) =>
    `created on ${e.machine.kind} machine ${e.machine.id}${e.machine.host ? ` on host ${e.machine.host}` : ""}` +
    `${e.machine.sandbox ? " (sandboxed)" : ""}${e.machine.worktree ? ` on branch ${e.machine.worktree.branch}` : ""}` +
    `${e.session ? ` (tmux ${e.session})` : ""}`,
  AgentStartFailed: (e) => `failed to start: ${oneLine(e.reason)}`,
  AgentAdopted: (e) => `taken over by the resumed run (its pi${e.pid === undefined ? "" : ` ${e.pid}`} had kept running)`,
  AgentRestarted: (e) => `started again by the resumed run (pi${e.pid === undefined ? "" : ` ${e.pid}`}), continuing its conversation`,
  AgentConnected: (e) => (e.first ? "connected" : `reconnected (after ${e.after})`),
  AgentDisconnected: (e) => `disconnected (code ${e.code})`,
  AgentCrashed: (e) => `crashed (exit code ${e.exitCode ?? "?"})${e.output ? `: ${oneLine(e.output, 160)}` : ""}`,
  AgentReleased: () => "released",
  ConnectionAdded: (e) => `can message ${e.to}`,
  ToolAdded: (e) => `tool ${e.tool.name} added`,
  ToolRemoved: (e) => `tool ${e.name} removed`,
  ToolCalled: (e) => `→ ${e.tool} ${json(e.args)}`,
  ToolReturned: (e) => `← ${e.tool} ${e.isError ? "error" : "ok"}: ${oneLine(e.text, 120)} (${e.durationMs} ms)`,
  MessageDelivered: (e) => `message${e.from ? ` from ${e.from}` : e.via ? ` via ${e.via}` : ""}: ${oneLine(e.text)}`,
  ShutdownRequested: (e) => `asked to shut down: ${oneLine(e.reason, 120)}`,
  WorktreeReleased: (e) =>
    e.released._tag === "Saved"
      ? `worktree of ${e.machine} ${e.released.committed ? "committed" : "left nothing uncommitted"}: ${e.released.branch} at ${e.released.commit.slice(0, 12)}`
      : `could not save the worktree of ${e.machine} to ${e.released.branch}: ${oneLine(e.released.message, 160)} (files kept in ${e.released.path})`,
  WorktreeCollected: (e) =>
    e.released._tag === "Saved"
      ? `saved the worktree of ${e.machine} (dead run ${e.executionId.slice(0, 8)}) to ${e.released.branch}`
      : `could not save the worktree of ${e.machine} (dead run ${e.executionId.slice(0, 8)}): ${oneLine(e.released.message, 160)}`,
  PoolMemberReady: (e) => `pool member ${e.member} ready (${e.model || "default model"})`,
  PoolMemberAssigned: (e) => `took pool member ${e.member}`,
  PoolMemberDied: (e) => `pool member ${e.member} died`,
  PoolStartFailed: (e) => `a pool member failed to start: ${oneLine(e.error, 160)}`,
  BudgetSet: (e) =>
    `budget set: ${budgetAmounts(e.limits) || "no limits"} (on exceeded: ${e.onExceeded})` +
    (e.requested === undefined ? "" : `; asked for ${budgetAmounts(e.requested)}, more than its parents had left`),
  BudgetWarning: (e) =>
    `budget warning: ${kindNames[e.kind]} ${budgetAmount(e.kind, e.spent)} of ${budgetAmount(e.kind, e.limit)}`,
  BudgetExceeded: (e) =>
    `budget exceeded: ${kindNames[e.kind]} ${budgetAmount(e.kind, e.spent)} of ${budgetAmount(e.kind, e.limit)}` +
    (e.onExceeded === "pause" ? " — paused until it is raised" : " — failing"),
  BudgetRaised: (e) => `budget raised by ${budgetAmounts(e.by)}${e.caller ? ` (${e.caller})` : ""}: now ${budgetAmounts(e.limits)}`,
  WorkStarted: () => "working",
  WorkEnded: () => "idle",
  TurnStarted: () => "turn started",
  TurnEnded: () => "turn ended",
  MessageEnded: (e) =>
    `${e.role}: ${oneLine(e.text)}${e.toolCalls?.length ? ` [calls ${e.toolCalls.join(", ")}]` : ""}${e.usage ? tokens(e.usage) : ""}`,
  ToolExecutionStarted: (e) => `running ${e.tool}`,
  ToolExecutionEnded: (e) => `${e.tool} ${e.isError ? "failed" : "finished"}: ${oneLine(e.result, 120)}`,
  ModelError: (e) => `model error: ${oneLine(e.message)}`,
  EventDropped: (e) => `could not report a ${e.event} event: ${oneLine(e.reason, 160)}`,
  AgentPaused: (e) =>
    `resumed after its run was unreachable for ${(e.durationMs / 1000).toFixed(1)} s ` +
    `(held ${count(e.heldRequests, "model request")}, ${count(e.heldTools, "tool")})`
}

/** What a log entry says, without its time and subject. */
export const describe = (entry: LogEntry): string =>
  (lines[entry.event._tag] as Describe<RunEvent.Tag>)(entry.event, entry)

/** `HH:MM:SS subject  what happened`: the subject is the agent, else the process, else `run`. */
export const entryLine = (entry: LogEntry): string =>
  `${time(entry.ts)} ${inline(entry.agent ?? (entry.process || "run")).padEnd(8)}  ${inline(describe(entry))}`

const money = (cost: number): string => `$${cost.toFixed(4)}`

/** `kind [host:]cwd`, with the sandbox and the worktree's branch when there are. */
const machineText = (machine: MachineInfo): string =>
  `${machine.kind}${machine.sandbox === undefined ? "" : "+sandbox"} ${machine.host === undefined ? "" : `${machine.host}:`}${machine.cwd}` +
  (machine.worktree === undefined ? "" : ` (${machine.worktree.branch})`)

/** The human status report of a run. */
export const statusReport = (
  status: RunStatus,
  run: { readonly id: string; readonly live: boolean; readonly url?: string | undefined; readonly outcome?: string },
  lastActivity: ReadonlyMap<string, LogEntry>
): string => {
  const lines: Array<string> = []
  const state = run.live ? `live at ${run.url}` : `ended: ${run.outcome ?? status.outcome ?? "crashed?"}`
  lines.push(inline(`run ${run.id}  ${status.program ?? "?"}  pid ${status.pid ?? "?"}  ${state}`))
  if (status.summary !== undefined) lines.push(oneLine(status.summary))
  lines.push(`started ${dateTime(status.startedAt)} (${age(status.startedAt)} ago)${status.endedAt ? `, ended ${dateTime(status.endedAt)}` : ""}`)
  if (status.traceId !== undefined) lines.push(`trace ${status.traceId}`)
  lines.push("", "processes")
  lines.push(
    status.processes.length === 0 ? "  (none)" : table(
      status.processes.map((p) => [
        `${"  ".repeat(p.path.split("/").length - 1)}${p.path}`,
        p.state,
        p.endedAt ? `ran ${age(p.startedAt, Date.parse(p.endedAt))}` : `for ${age(p.startedAt)}`,
        `${money(p.spent.cost)}, ${count(p.spent.turns, "turn")}`,
        p.error ? oneLine(p.error, 100) : ""
      ]),
      "  "
    )
  )
  lines.push("", "agents")
  lines.push(
    status.agents.length === 0 ? "  (none)" : table(
      [
        ["AGENT", "STATE", "MACHINE", "TMUX", "TOOLS", "PI TOOLS", "TOKENS IN/OUT", "COST", "LAST ACTIVITY"],
        ...status.agents.map((a) => {
          const last = lastActivity.get(a.id)
          return [
            a.id,
            a.state,
            a.machine ? machineText(a.machine) : "-",
            a.session ?? "-",
            `${a.toolCalls}${a.toolErrors > 0 ? ` (${a.toolErrors} failed)` : ""}`,
            String(a.piToolCalls),
            `${a.inputTokens}/${a.outputTokens}`,
            money(a.cost),
            last ? `${time(last.ts)} ${oneLine(describe(last), 80)}` : "-"
          ]
        })
      ],
      "  "
    )
  )
  const totals = status.totals
  lines.push(
    "",
    `total: ${totals.toolCalls} tool calls, ${totals.piToolCalls} pi tool calls, ${count(totals.turns, "model turn")}, ` +
      `${totals.inputTokens}/${totals.outputTokens} tokens in/out, ${money(totals.cost)}`
  )
  if (status.budgets.length > 0) {
    lines.push("", "budgets")
    lines.push(table(
      [["BUDGET", "SPENT / LIMIT", "ON EXCEEDED", "STATE"], ...status.budgets.map((b) => budgetRow(b, status))],
      "  "
    ))
  }
  if (status.connections.length > 0) {
    lines.push("", "connections")
    for (const c of status.connections) lines.push(`  ${inline(c.from)} → ${inline(c.to)}`)
  }
  if (status.endpoints.length > 0) {
    lines.push("", "endpoints")
    lines.push(table(status.endpoints.map((e) => [e.process, describeEndpoint(e)]), "  "))
  }
  return lines.join("\n")
}
