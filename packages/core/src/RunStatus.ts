/**
 * The state of a run as a fold over its log entries. The live runtime keeps
 * it up to date as it logs; the CLI rebuilds it from the log files of a
 * finished run — one definition for both.
 */
import type { LogEntry } from "./LogSink.js"
import type { MachineInfo } from "./Machine.js"

export type AgentState = "starting" | "idle" | "working" | "done" | "crashed"
export type ProcessState = "running" | "done" | "failed" | "cancelled" | "timeout"

export interface ProcessStatus {
  readonly path: string
  readonly name: string
  readonly parent: string | undefined
  state: ProcessState
  error: string | undefined
  readonly startedAt: string
  endedAt: string | undefined
}

export interface AgentStatus {
  readonly id: string
  readonly process: string
  state: AgentState
  machine: MachineInfo | undefined
  session: string | undefined
  toolCalls: number
  toolErrors: number
  inputTokens: number
  outputTokens: number
  cost: number
  lastActivity: string | undefined
}

export interface RunStatus {
  executionId: string | undefined
  program: string | undefined
  pid: number | undefined
  startedAt: string | undefined
  endedAt: string | undefined
  outcome: string | undefined
  readonly processes: Array<ProcessStatus>
  readonly agents: Array<AgentStatus>
  readonly connections: Array<{ readonly from: string; readonly to: string }>
  readonly endpoints: Array<{ readonly process: string; readonly name: string; readonly description: string }>
}

export const empty = (): RunStatus => ({
  executionId: undefined,
  program: undefined,
  pid: undefined,
  startedAt: undefined,
  endedAt: undefined,
  outcome: undefined,
  processes: [],
  agents: [],
  connections: [],
  endpoints: []
})

const record = (entry: LogEntry): Record<string, any> =>
  typeof entry.data === "object" && entry.data !== null ? (entry.data as Record<string, any>) : {}

const newAgent = (status: RunStatus, entry: LogEntry): AgentStatus => {
  const agent: AgentStatus = {
    id: entry.agent!,
    process: entry.process,
    state: "starting",
    machine: undefined,
    session: undefined,
    toolCalls: 0,
    toolErrors: 0,
    inputTokens: 0,
    outputTokens: 0,
    cost: 0,
    lastActivity: entry.ts
  }
  status.agents.push(agent)
  return agent
}

/** Apply one log entry (mutates and returns `status`). */
export const step = (status: RunStatus, entry: LogEntry): RunStatus => {
  const data = record(entry)
  const agent = entry.agent === undefined ? undefined : status.agents.find((a) => a.id === entry.agent)
  if (agent) agent.lastActivity = entry.ts
  switch (entry.type) {
    case "run_started":
      status.executionId = data.executionId
      status.program = data.program
      status.pid = data.pid
      status.startedAt = entry.ts
      break
    case "run_ended":
      status.endedAt = entry.ts
      status.outcome = data.outcome
      break
    case "process_started":
      status.processes.push({
        path: entry.process,
        name: data.name ?? entry.process,
        parent: data.parent,
        state: "running",
        error: undefined,
        startedAt: entry.ts,
        endedAt: undefined
      })
      break
    case "process_ended": {
      const process = status.processes.find((p) => p.path === entry.process && p.state === "running")
      if (process) {
        process.state = data.outcome
        process.error = data.error
        process.endedAt = entry.ts
      }
      break
    }
    case "endpoint_exposed":
      status.endpoints.push({ process: entry.process, name: data.name, description: data.description ?? "" })
      break
    case "agent_created": {
      if (entry.agent === undefined) break
      const created = agent ?? newAgent(status, entry)
      created.machine = data.machine
      created.session = data.session
      break
    }
    case "agent_connected": {
      // An agent can connect before its creation is logged.
      const connected = agent ?? (entry.agent === undefined ? undefined : newAgent(status, entry))
      if (connected && connected.state === "starting") connected.state = "idle"
      break
    }
    case "agent_crashed":
      if (agent) agent.state = "crashed"
      break
    case "agent_released":
      if (agent && agent.state !== "crashed") agent.state = "done"
      break
    case "tool_call":
      if (agent) agent.toolCalls++
      break
    case "tool_result":
      if (agent && data.isError) agent.toolErrors++
      break
    case "connection_added":
      status.connections.push({ from: data.from, to: data.to })
      break
    case "event": {
      if (!agent) break
      const event = data.event ?? {}
      if (event._tag === "agent_start" && agent.state !== "crashed" && agent.state !== "done") agent.state = "working"
      if (event._tag === "agent_end" && agent.state === "working") agent.state = "idle"
      if (event._tag === "message_end" && event.usage) {
        agent.inputTokens += event.usage.input ?? 0
        agent.outputTokens += event.usage.output ?? 0
        agent.cost += event.usage.cost ?? 0
      }
      break
    }
  }
  return status
}

export const fromEntries = (entries: Iterable<LogEntry>): RunStatus => {
  const status = empty()
  for (const entry of entries) step(status, entry)
  return status
}
