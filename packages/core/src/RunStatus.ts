/**
 * The state of a run as a fold over its log. The live run keeps it up to date
 * as it logs and answers `ramure status` with it; the CLI rebuilds it from the
 * log files of a finished run — one definition for both. The fold handles
 * every `RunEvent` (the handler table is checked to be exhaustive).
 */
import { Schema, type Types } from "effect"
import * as Spend from "./internal/spend.js"
import { MachineInfo } from "./MachineInfo.js"
import { BudgetAmounts, BudgetKind, BudgetPolicy, type LogEntry, type RunEvent, type Tag } from "./RunEvent.js"

export const AgentState = Schema.Literal("starting", "idle", "working", "done", "crashed")
export type AgentState = typeof AgentState.Type

export const ProcessState = Schema.Literal("running", "done", "failed", "cancelled", "timeout")
export type ProcessState = typeof ProcessState.Type

/** What was spent: tokens (input counts cache reads and writes), dollars and model turns. */
export const Spent = Schema.Struct({
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  totalTokens: Schema.Number,
  cost: Schema.Number,
  turns: Schema.Number
})
export type Spent = typeof Spent.Type

const noSpend = () => ({ ...Spend.zero })

export const ProcessStatus = Schema.Struct({
  path: Schema.String,
  name: Schema.String,
  parent: Schema.optional(Schema.String),
  state: ProcessState,
  error: Schema.optional(Schema.String),
  startedAt: Schema.String,
  endedAt: Schema.optional(Schema.String),
  /** What its agents and everything beneath it spent. */
  spent: Schema.optionalWith(Spent, { default: noSpend })
})
export type ProcessStatus = typeof ProcessStatus.Type

export const AgentStatus = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  process: Schema.String,
  state: AgentState,
  machine: Schema.optional(MachineInfo),
  session: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  /** Calls of ramure's tools (the process's handlers). */
  toolCalls: Schema.Number,
  toolErrors: Schema.Number,
  /** Calls of pi's own tools (`bash`, `read`, `edit`, …). */
  piToolCalls: Schema.Number,
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  cost: Schema.Number,
  /** Model turns (answers of the model). */
  turns: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  lastActivity: Schema.optional(Schema.String),
  /** How it ended, once it has: released with its process, crashed (with its exit code), or did not start. */
  ended: Schema.optional(Schema.String)
})
export type AgentStatus = typeof AgentStatus.Type

export const EndpointStatus = Schema.Struct({
  process: Schema.String,
  name: Schema.String,
  description: Schema.String,
  /** JSON Schema of the arguments. */
  parameters: Schema.Unknown
})
export type EndpointStatus = typeof EndpointStatus.Type

/** A call of an endpoint, and how it went once it returned. */
export const EndpointCall = Schema.Struct({
  process: Schema.String,
  name: Schema.String,
  caller: Schema.optional(Schema.String),
  at: Schema.String,
  ok: Schema.optional(Schema.Boolean),
  error: Schema.optional(Schema.String),
  durationMs: Schema.optional(Schema.Number)
})
export type EndpointCall = typeof EndpointCall.Type

/** A budget of a process (with everything beneath it) or of an agent, against what was spent under it. */
export const BudgetStatus = Schema.Struct({
  process: Schema.String,
  /** Set for an agent's own budget. */
  agent: Schema.optional(Schema.String),
  limits: BudgetAmounts,
  onExceeded: BudgetPolicy,
  warnAt: Schema.Number,
  /** When it was set: its time is counted from then. */
  since: Schema.String,
  /** Until its process or agent ended. */
  until: Schema.optional(Schema.String),
  spent: Spent,
  /** The limit it ran out of, while it has not been raised past it. */
  exceeded: Schema.optional(Schema.Struct({ kind: BudgetKind, limit: Schema.Number, spent: Schema.Number })),
  /** Kinds whose warning threshold was reached. */
  warned: Schema.Array(BudgetKind)
})
export type BudgetStatus = typeof BudgetStatus.Type

/** How many recent endpoint calls the status keeps. */
export const recentCalls = 20

export const Totals = Schema.Struct({
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  cost: Schema.Number,
  toolCalls: Schema.Number,
  piToolCalls: Schema.Number,
  turns: Schema.optionalWith(Schema.Number, { default: () => 0 })
})
export type Totals = typeof Totals.Type

export const RunStatus = Schema.Struct({
  executionId: Schema.optional(Schema.String),
  program: Schema.optional(Schema.String),
  summary: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Number),
  /** The OpenTelemetry trace of the run, when its traces are exported. */
  traceId: Schema.optional(Schema.String),
  startedAt: Schema.optional(Schema.String),
  endedAt: Schema.optional(Schema.String),
  outcome: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String),
  /** How many times the run was resumed after its orchestrator died. */
  resumes: Schema.optional(Schema.Number),
  processes: Schema.Array(ProcessStatus),
  agents: Schema.Array(AgentStatus),
  connections: Schema.Array(Schema.Struct({ from: Schema.String, to: Schema.String })),
  endpoints: Schema.Array(EndpointStatus),
  /** The most recent endpoint calls, oldest first (a status from an older run has none). */
  calls: Schema.optionalWith(Schema.Array(EndpointCall), { default: () => [] }),
  /** Every budget of the run, in the order they were set. */
  budgets: Schema.optionalWith(Schema.Array(BudgetStatus), { default: () => [] }),
  totals: Totals
})
export type RunStatus = typeof RunStatus.Type

type DraftAgent = Types.Mutable<AgentStatus>
type DraftBudget = Types.Mutable<Omit<BudgetStatus, "warned">> & { warned: Array<BudgetKind> }

/** The fold's working copy; snapshots are taken with `snapshot`. */
export type Draft =
  & Types.Mutable<Omit<RunStatus, "processes" | "agents" | "connections" | "endpoints" | "calls" | "budgets" | "totals">>
  & {
    readonly budgets: Array<DraftBudget>
    readonly processes: Array<Types.Mutable<ProcessStatus>>
    readonly agents: Array<DraftAgent>
    readonly connections: Array<{ readonly from: string; readonly to: string }>
    readonly endpoints: Array<EndpointStatus>
    readonly calls: Array<Types.Mutable<EndpointCall>>
    readonly totals: Types.Mutable<Totals>
    /** `agents` by id: a run with many agents finds one without scanning them all. */
    readonly agentsById: Map<string, DraftAgent>
  }

export const empty = (): Draft => ({
  processes: [],
  agents: [],
  connections: [],
  endpoints: [],
  calls: [],
  budgets: [],
  totals: { inputTokens: 0, outputTokens: 0, cost: 0, toolCalls: 0, piToolCalls: 0, turns: 0 },
  agentsById: new Map()
})

/** An immutable copy of the fold's current state. */
export const snapshot = ({ agentsById: _, ...status }: Draft): RunStatus => structuredClone(status)

const agentOf = (status: Draft, entry: LogEntry): DraftAgent | undefined => {
  if (entry.agent === undefined) return undefined
  let agent = status.agentsById.get(entry.agent)
  if (agent === undefined) {
    // An agent can connect before its creation is logged.
    agent = {
      id: entry.agent,
      name: entry.agent,
      process: entry.process,
      state: "starting",
      toolCalls: 0,
      toolErrors: 0,
      piToolCalls: 0,
      inputTokens: 0,
      outputTokens: 0,
      cost: 0,
      turns: 0
    }
    status.agents.push(agent)
    status.agentsById.set(agent.id, agent)
  }
  return agent
}

/** Whether `path` is `ancestor` or beneath it. */
const within = (path: string, ancestor: string) => path === ancestor || path.startsWith(`${ancestor}/`)

/** The live budget of this entry's subject (its agent's own, or its process's). */
const budgetOf = (status: Draft, entry: LogEntry): DraftBudget | undefined =>
  [...status.budgets].reverse().find((b) => b.until === undefined && b.process === entry.process && b.agent === entry.agent)

/** The budgets a subject's end closes: an agent's own, or a process's. */
const closeBudget = (status: Draft, entry: LogEntry) => {
  const budget = budgetOf(status, entry)
  if (budget !== undefined) budget.until = entry.ts
}

const live = (agent: DraftAgent) => agent.state !== "done" && agent.state !== "crashed"

type Step<T extends Tag> = (status: Draft, event: Extract<RunEvent, { readonly _tag: T }>, entry: LogEntry) => void
const none = () => {}

/** One handler per event: adding a `RunEvent` without deciding what it does to the status does not compile. */
const steps: { readonly [T in Tag]: Step<T> } = {
  RunStarted: (status, event, entry) => {
    status.executionId = event.executionId
    status.program = event.program
    status.pid = event.pid
    if (event.summary !== undefined) status.summary = event.summary
    if (event.traceId !== undefined) status.traceId = event.traceId
    status.startedAt = entry.ts
  },
  RunResumed: (status, event) => {
    status.pid = event.pid
    delete status.endedAt
    delete status.outcome
    delete status.error
    status.resumes = (status.resumes ?? 0) + 1
  },
  RunEnded: (status, event, entry) => {
    status.endedAt = entry.ts
    status.outcome = event.outcome
    if (event.error !== undefined) status.error = event.error
  },
  OrphansCollected: none,
  ConnectionRefused: none,
  ProtocolViolation: none,
  ProcessStarted: (status, event, entry) => {
    status.processes.push({
      path: entry.process,
      name: event.name,
      ...(event.parent === undefined ? {} : { parent: event.parent }),
      state: "running",
      startedAt: entry.ts,
      spent: noSpend()
    })
  },
  ProcessEnded: (status, event, entry) => {
    const process = status.processes.find((p) => p.path === entry.process && p.state === "running")
    if (process === undefined) return
    process.state = event.outcome
    if (event.error !== undefined) process.error = event.error
    process.endedAt = entry.ts
    closeBudget(status, entry)
  },
  ProcessEmitted: none,
  StepCompleted: none,
  EndpointExposed: (status, event, entry) => {
    const endpoint = { process: entry.process, name: event.name, description: event.description, parameters: event.parameters }
    const at = status.endpoints.findIndex((e) => e.process === entry.process && e.name === event.name)
    if (at >= 0) status.endpoints[at] = endpoint
    else status.endpoints.push(endpoint)
  },
  EndpointCalled: (status, event, entry) => {
    status.calls.push({
      process: entry.process,
      name: event.name,
      ...(event.caller === undefined ? {} : { caller: event.caller }),
      at: entry.ts
    })
    if (status.calls.length > recentCalls) status.calls.shift()
  },
  EndpointReturned: (status, event, entry) => {
    const call = [...status.calls].reverse().find((c) =>
      c.process === entry.process && c.name === event.name && c.caller === event.caller && c.ok === undefined)
    if (call === undefined) return
    call.ok = event.ok
    call.durationMs = event.durationMs
    if (event.error !== undefined) call.error = event.error
  },
  MachineCreated: none,
  AgentCreated: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent === undefined) return
    agent.name = event.name
    agent.machine = event.machine
    if (event.session !== undefined) agent.session = event.session
    if (event.model !== undefined) agent.model = event.model
  },
  AgentStartFailed: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent === undefined) return
    agent.state = "crashed"
    agent.ended = `did not start: ${event.reason}`
  },
  AgentAdopted: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent !== undefined && event.session !== undefined) agent.session = event.session
  },
  AgentRestarted: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent === undefined) return
    agent.state = "starting"
    if (event.session !== undefined) agent.session = event.session
  },
  AgentConnected: (status, _event, entry) => {
    const agent = agentOf(status, entry)
    if (agent !== undefined && agent.state === "starting") agent.state = "idle"
  },
  AgentDisconnected: none,
  AgentCrashed: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent === undefined) return
    agent.state = "crashed"
    agent.ended = `crashed (exit code ${event.exitCode ?? "unknown"})`
  },
  AgentReleased: (status, _event, entry) => {
    const agent = agentOf(status, entry)
    if (agent === undefined) return
    if (agent.state !== "crashed") agent.state = "done"
    agent.ended ??= `released when its process ${agent.process} ended`
    closeBudget(status, entry)
  },
  ConnectionAdded: (status, event, entry) => {
    if (entry.agent !== undefined) status.connections.push({ from: entry.agent, to: event.to })
  },
  ToolAdded: none,
  ToolRemoved: none,
  ToolCalled: (status, _event, entry) => {
    const agent = agentOf(status, entry)
    if (agent !== undefined) agent.toolCalls++
    status.totals.toolCalls++
  },
  ToolReturned: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent !== undefined && event.isError) agent.toolErrors++
  },
  MessageDelivered: none,
  ShutdownRequested: none,
  WorktreeReleased: none,
  WorktreeCollected: none,
  PoolMemberReady: none,
  PoolMemberAssigned: none,
  PoolMemberDied: none,
  PoolStartFailed: none,
  BudgetSet: (status, event, entry) => {
    status.budgets.push({
      process: entry.process,
      ...(entry.agent === undefined ? {} : { agent: entry.agent }),
      limits: event.limits,
      onExceeded: event.onExceeded,
      warnAt: event.warnAt,
      since: entry.ts,
      spent: noSpend(),
      warned: []
    })
  },
  BudgetWarning: (status, event, entry) => {
    const budget = budgetOf(status, entry)
    if (budget !== undefined && !budget.warned.includes(event.kind)) budget.warned.push(event.kind)
  },
  BudgetExceeded: (status, event, entry) => {
    const budget = budgetOf(status, entry)
    if (budget !== undefined) budget.exceeded = { kind: event.kind, limit: event.limit, spent: event.spent }
  },
  BudgetRaised: (status, event, entry) => {
    const budget = budgetOf(status, entry)
    if (budget === undefined) return
    budget.limits = event.limits
    budget.warned = budget.warned.filter((kind) => event.by[kind] === undefined)
    const exceeded = budget.exceeded
    if (exceeded !== undefined && event.limits[exceeded.kind] !== undefined && exceeded.spent < event.limits[exceeded.kind]!) {
      delete budget.exceeded
    }
  },
  WorkStarted: (status, _event, entry) => {
    const agent = agentOf(status, entry)
    if (agent !== undefined && live(agent)) agent.state = "working"
  },
  WorkEnded: (status, _event, entry) => {
    const agent = agentOf(status, entry)
    if (agent !== undefined && agent.state === "working") agent.state = "idle"
  },
  TurnStarted: none,
  TurnEnded: none,
  MessageEnded: (status, event, entry) => {
    const agent = agentOf(status, entry)
    if (agent === undefined || event.role !== "assistant") return
    agent.turns++
    status.totals.turns++
    // What each process above the agent, and each budget it is under, has spent.
    const spent = Spend.ofAnswer(event.usage)
    for (const process of status.processes) {
      if (process.state === "running" && within(entry.process, process.path)) process.spent = Spend.add(process.spent, spent)
    }
    for (const budget of status.budgets) {
      if (budget.until !== undefined || !within(entry.process, budget.process)) continue
      if (budget.agent === undefined || budget.agent === entry.agent) budget.spent = Spend.add(budget.spent, spent)
    }
    if (event.usage === undefined) return
    agent.inputTokens += event.usage.input
    agent.outputTokens += event.usage.output
    agent.cost += event.usage.cost
    status.totals.inputTokens += event.usage.input
    status.totals.outputTokens += event.usage.output
    status.totals.cost += event.usage.cost
  },
  ToolExecutionStarted: none,
  ToolExecutionEnded: (status, _event, entry) => {
    // The extension reports only pi's own tools (bash, read, edit, …): ramure's are `ToolCalled`.
    const agent = agentOf(status, entry)
    if (agent === undefined) return
    agent.piToolCalls++
    status.totals.piToolCalls++
  },
  ModelError: none,
  EventDropped: none,
  AgentPaused: none
}

/** Apply one log entry to `status` (mutates it). */
export const step = (status: Draft, entry: LogEntry): void => {
  if (entry.agent !== undefined) {
    const agent = status.agentsById.get(entry.agent)
    if (agent !== undefined) agent.lastActivity = entry.ts
  }
  ;(steps[entry.event._tag] as Step<Tag>)(status, entry.event, entry)
}

export const fromEntries = (entries: Iterable<LogEntry>): RunStatus => {
  const status = empty()
  for (const entry of entries) step(status, entry)
  return status
}
