/**
 * How the CLI shows things: one line per log entry (shared by `tail` and
 * the last activity in `status`), tables, ages, and the status report.
 */
import type { MachineInfo } from "@ramure/core/Machine"
import type { LogEntry } from "@ramure/core/LogSink"
import type { RunStatus } from "@ramure/core/RunStatus"

/** `text` on one line, cut to `max` characters. */
export const oneLine = (text: string, max = 200): string => {
  const flat = text.replace(/\s*\n\s*/g, " ⏎ ").trim()
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

/** Left-aligned columns, two spaces apart. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>, indent = ""): string => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows
    .map((row) => (indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).trimEnd())
    .join("\n")
}

const agentEvent = (event: Record<string, any>): string => {
  switch (event._tag) {
    case "agent_start":
      return "working"
    case "agent_end":
      return "idle"
    case "turn_start":
      return "turn started"
    case "turn_end":
      return "turn ended"
    case "message_end": {
      const usage = event.usage ? ` (${event.usage.input}→${event.usage.output} tokens, $${Number(event.usage.cost).toFixed(4)})` : ""
      const calls = event.toolCalls?.length ? ` [calls ${event.toolCalls.join(", ")}]` : ""
      return `${event.role}: ${oneLine(String(event.text ?? ""))}${calls}${usage}`
    }
    case "tool_execution_start":
      return `running ${event.tool}`
    case "tool_execution_end":
      return `${event.tool} ${event.isError ? "failed" : "finished"}: ${oneLine(String(event.result ?? ""), 120)}`
    case "agent_error":
      return `error: ${oneLine(String(event.message ?? ""))}`
    default:
      return `${event._tag ?? "event"} ${json(event)}`
  }
}

/** What a log entry says, without its time and subject. */
export const describe = (entry: LogEntry): string => {
  const data = (typeof entry.data === "object" && entry.data !== null ? entry.data : {}) as Record<string, any>
  switch (entry.type) {
    case "run_started":
      return `run started: ${data.program} (pid ${data.pid})`
    case "run_ended":
      return `run ended: ${data.outcome}`
    case "process_started":
      return `process ${entry.process} started`
    case "process_ended":
      return `process ${entry.process} ${data.outcome}${data.error ? `: ${oneLine(String(data.error), 160)}` : ""}`
    case "process_event":
      return `event ${data.type}${data.data === undefined ? "" : ` ${json(data.data)}`}`
    case "endpoint_exposed":
      return `endpoint ${data.name} exposed`
    case "endpoint_called":
      return `endpoint ${data.name} called ${json(data.args)}`
    case "endpoint_returned":
      return `endpoint ${data.name} ${data.ok ? "returned" : `failed: ${oneLine(String(data.error ?? ""), 120)}`} in ${data.durationMs} ms`
    case "agent_created":
      return `created on ${data.machine?.kind ?? "?"} machine ${data.machine?.id ?? "?"}${data.machine?.host ? ` on host ${data.machine.host}` : ""}` +
        `${data.machine?.sandbox ? " (sandboxed)" : ""}${data.machine?.worktree ? ` on branch ${data.machine.worktree.branch}` : ""}` +
        `${data.session ? ` (tmux ${data.session})` : ""}`
    case "worktree_saved":
      return `worktree of ${data.machine} ${data.committed ? "committed" : "left nothing uncommitted"}: ${data.branch} at ${String(data.commit).slice(0, 12)}`
    case "worktree_save_failed":
      return `could not save the worktree of ${data.machine} to ${data.branch}: ${oneLine(String(data.message ?? ""), 160)} (files kept in ${data.path})`
    case "worktree_collected":
      return data._tag === "Saved"
        ? `saved the worktree of ${data.machine} (dead run ${String(data.executionId).slice(0, 8)}) to ${data.branch}`
        : `could not save the worktree of ${data.machine} (dead run ${String(data.executionId).slice(0, 8)}): ${oneLine(String(data.message ?? ""), 160)}`
    case "agent_connected":
      return data.first ? "connected" : `reconnected (after ${data.after})`
    case "agent_disconnected":
      return `disconnected (code ${data.code})`
    case "agent_crashed":
      return `crashed (exit code ${data.exitCode ?? "?"})${data.output ? `: ${oneLine(String(data.output), 160)}` : ""}`
    case "agent_start_failed":
      return `failed to start: ${oneLine(String(data.reason ?? ""))}`
    case "agent_released":
      return "released"
    case "message":
      return `message${data.from ? ` from ${data.from}` : data.via ? ` via ${data.via}` : ""}: ${oneLine(String(data.text ?? ""))}`
    case "tool_added":
      return `tool ${data.name} added`
    case "tool_removed":
      return `tool ${data.name} removed`
    case "tool_call":
      return `→ ${data.tool} ${json(data.args)}`
    case "tool_result":
      return `← ${data.tool} ${data.isError ? "error" : "ok"}: ${oneLine(String(data.text ?? ""), 120)} (${data.durationMs} ms)`
    case "connection_added":
      return `can message ${data.to}`
    case "event":
      return agentEvent((data.event ?? {}) as Record<string, any>)
    default:
      return `${entry.type}${entry.data === undefined ? "" : ` ${json(entry.data)}`}`
  }
}

/** `HH:MM:SS subject  what happened`: the subject is the agent, else the process, else `run`. */
export const entryLine = (entry: LogEntry): string =>
  `${time(entry.ts)} ${(entry.agent ?? (entry.process || "run")).padEnd(8)}  ${describe(entry)}`

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
  lines.push(`run ${run.id}  ${status.program ?? "?"}  pid ${status.pid ?? "?"}  ${state}`)
  lines.push(`started ${dateTime(status.startedAt)} (${age(status.startedAt)} ago)${status.endedAt ? `, ended ${dateTime(status.endedAt)}` : ""}`)
  lines.push("", "processes")
  lines.push(
    status.processes.length === 0 ? "  (none)" : table(
      status.processes.map((p) => [
        `${"  ".repeat(p.path.split("/").length - 1)}${p.path}`,
        p.state,
        p.endedAt ? `ran ${age(p.startedAt, Date.parse(p.endedAt))}` : `for ${age(p.startedAt)}`,
        p.error ? oneLine(p.error, 100) : ""
      ]),
      "  "
    )
  )
  lines.push("", "agents")
  lines.push(
    status.agents.length === 0 ? "  (none)" : table(
      [
        ["AGENT", "STATE", "MACHINE", "TMUX", "TOOLS", "TOKENS IN/OUT", "COST", "LAST ACTIVITY"],
        ...status.agents.map((a) => {
          const last = lastActivity.get(a.id)
          return [
            a.id,
            a.state,
            a.machine ? machineText(a.machine) : "-",
            a.session ?? "-",
            `${a.toolCalls}${a.toolErrors > 0 ? ` (${a.toolErrors} failed)` : ""}`,
            `${a.inputTokens}/${a.outputTokens}`,
            money(a.cost),
            last ? `${time(last.ts)} ${oneLine(describe(last), 80)}` : "-"
          ]
        })
      ],
      "  "
    )
  )
  if (status.connections.length > 0) {
    lines.push("", "connections")
    for (const c of status.connections) lines.push(`  ${c.from} → ${c.to}`)
  }
  if (status.endpoints.length > 0) {
    lines.push("", "endpoints")
    lines.push(table(status.endpoints.map((e) => [e.process, e.name, e.description]), "  "))
  }
  return lines.join("\n")
}
