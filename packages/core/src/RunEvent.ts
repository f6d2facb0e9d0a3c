/**
 * Everything that happens in a run, as one Schema union. The run's log is a
 * sequence of `LogEntry`s — each a `RunEvent` with its number, time, process
 * and agent — written once: the same entries feed the log files, the status
 * fold, `agent.events`, the CLI and an agent's replication (what an agent is
 * told is an entry of its log).
 */
import { Schema } from "effect"
import { MachineInfo } from "./MachineInfo.js"
import * as Protocol from "@ramure/protocol/Protocol"

// ---------------------------------------------------------------------------
// The run

/**
 * How the program was started, so that `ramure resume` can start it again:
 * node's arguments, the working directory and the environment — without the
 * values of variables that look like secrets (`redacted` names them; a resume
 * takes them from its own environment).
 */
export const Invocation = Schema.Struct({
  execPath: Schema.String,
  execArgv: Schema.Array(Schema.String),
  argv: Schema.Array(Schema.String),
  cwd: Schema.String,
  env: Schema.Record({ key: Schema.String, value: Schema.String }),
  redacted: Schema.Array(Schema.String)
})
export type Invocation = typeof Invocation.Type

export const RunStarted = Schema.TaggedStruct("RunStarted", {
  executionId: Schema.String,
  program: Schema.String,
  pid: Schema.Number,
  url: Schema.String,
  /** A one-line description of the run, when the program gave one. */
  summary: Schema.optional(Schema.String),
  invocation: Schema.optional(Invocation),
  /** The OpenTelemetry trace of the run, when its traces are exported. */
  traceId: Schema.optional(Schema.String)
})

/** The run goes on in a new orchestrator (`ramure resume`): the log so far is its journal. */
export const RunResumed = Schema.TaggedStruct("RunResumed", {
  pid: Schema.Number,
  url: Schema.String,
  /** The OpenTelemetry trace of the resumed run, when its traces are exported. */
  traceId: Schema.optional(Schema.String)
})

export const RunOutcome = Schema.Literal("done", "failed", "cancelled", "interrupted")
export type RunOutcome = typeof RunOutcome.Type

export const RunEnded = Schema.TaggedStruct("RunEnded", {
  outcome: RunOutcome,
  error: Schema.optional(Schema.String)
})

/** What was left of a dead run (of this home or another) and has been cleaned up. */
export const OrphansCollected = Schema.TaggedStruct("OrphansCollected", {
  executionId: Schema.String,
  /** The dead orchestrator's pid, and its `RAMURE_HOME`. */
  pid: Schema.Number,
  home: Schema.String,
  sessions: Schema.Array(Schema.String),
  /** Process groups of its local machines. */
  processes: Schema.Array(Schema.Number),
  /** Whether its registry entry was removed. */
  entry: Schema.Boolean
})

/** A connection attempt the server refused before it became a WebSocket. */
export const ConnectionRefused = Schema.TaggedStruct("ConnectionRefused", {
  path: Schema.String,
  reason: Schema.Literal("unauthorized", "not_found", "bad_path"),
  remote: Schema.optional(Schema.String),
  /** Refusals not logged one by one since the previous entry (logging is rate-limited). */
  suppressed: Schema.optional(Schema.Number)
})

/** A frame the run could not act on, or a connection it closed for misbehaving. */
export const ProtocolViolation = Schema.TaggedStruct("ProtocolViolation", {
  code: Schema.String,
  message: Schema.String,
  path: Schema.optional(Schema.String),
  /** Violations not logged one by one since the previous entry of the connection (logging is rate-limited). */
  suppressed: Schema.optional(Schema.Number)
})

// ---------------------------------------------------------------------------
// Processes

export const ProcessStarted = Schema.TaggedStruct("ProcessStarted", {
  name: Schema.String,
  parent: Schema.optional(Schema.String)
})

export const ProcessOutcome = Schema.Literal("done", "failed", "cancelled", "timeout")
export type ProcessOutcome = typeof ProcessOutcome.Type

export const ProcessEnded = Schema.TaggedStruct("ProcessEnded", {
  outcome: ProcessOutcome,
  error: Schema.optional(Schema.String),
  /** The value it completed with, as JSON (what a resumed run returns for it without running it again). */
  value: Schema.optional(Schema.Unknown)
})

/** `Process.step(name, effect)` ran: its result, which a resumed run returns without running it again. */
export const StepCompleted = Schema.TaggedStruct("StepCompleted", {
  name: Schema.String,
  ok: Schema.Boolean,
  value: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.String)
})

/** `Process.emit(type, data)`. */
export const ProcessEmitted = Schema.TaggedStruct("ProcessEmitted", {
  type: Schema.String,
  data: Schema.optional(Schema.Unknown)
})

export const EndpointExposed = Schema.TaggedStruct("EndpointExposed", {
  name: Schema.String,
  description: Schema.String,
  /** JSON Schema of the arguments. */
  parameters: Schema.Unknown
})

export const EndpointCalled = Schema.TaggedStruct("EndpointCalled", {
  name: Schema.String,
  args: Schema.Unknown,
  /** Who called: `cli`, a process path, or `agent:<id>`. */
  caller: Schema.optional(Schema.String)
})

export const EndpointReturned = Schema.TaggedStruct("EndpointReturned", {
  name: Schema.String,
  ok: Schema.Boolean,
  durationMs: Schema.Number,
  error: Schema.optional(Schema.String),
  caller: Schema.optional(Schema.String)
})

export const MachineCreated = Schema.TaggedStruct("MachineCreated", { machine: MachineInfo })

// ---------------------------------------------------------------------------
// Agents (the entry's `agent` names the agent)

export const AgentCreated = Schema.TaggedStruct("AgentCreated", {
  name: Schema.String,
  machine: MachineInfo,
  session: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Number),
  model: Schema.optional(Schema.String)
})

/** A resumed run took the agent over: its program had kept running, and now works for this run. */
export const AgentAdopted = Schema.TaggedStruct("AgentAdopted", {
  session: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Number)
})

/** A resumed run started the agent's program again (it had died): it continues its conversation from its saved session. */
export const AgentRestarted = Schema.TaggedStruct("AgentRestarted", {
  session: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Number)
})

export const AgentStartFailed = Schema.TaggedStruct("AgentStartFailed", {
  reason: Schema.String,
  output: Schema.optional(Schema.String)
})

export const AgentConnected = Schema.TaggedStruct("AgentConnected", {
  /** The last entry the agent had applied. */
  after: Schema.Number,
  first: Schema.Boolean
})

export const AgentDisconnected = Schema.TaggedStruct("AgentDisconnected", {
  code: Schema.Number,
  reason: Schema.String
})

export const AgentCrashed = Schema.TaggedStruct("AgentCrashed", {
  exitCode: Schema.optional(Schema.Number),
  output: Schema.String
})

export const AgentReleased = Schema.TaggedStruct("AgentReleased", {})

/** An agent was connected to another: it can message it (and send it files). */
export const ConnectionAdded = Schema.TaggedStruct("ConnectionAdded", { to: Schema.String })

// Replicated: each of these is an entry of the agent's replication log, numbered by `seq`.

export const ToolAdded = Schema.TaggedStruct("ToolAdded", { tool: Protocol.ToolDefinition })
export const ToolRemoved = Schema.TaggedStruct("ToolRemoved", { name: Schema.String })
export const ToolReturned = Schema.TaggedStruct("ToolReturned", {
  callId: Schema.String,
  tool: Schema.String,
  isError: Schema.Boolean,
  text: Schema.String,
  durationMs: Schema.Number,
  /** The pretty cause of a handler's defect. */
  cause: Schema.optional(Schema.String)
})
export const MessageDelivered = Schema.TaggedStruct("MessageDelivered", {
  text: Schema.String,
  /** The sending agent, for messages along a `connect` edge. */
  from: Schema.optional(Schema.String),
  /** `control` for a message from `ramure send`. */
  via: Schema.optional(Schema.String)
})
export const ShutdownRequested = Schema.TaggedStruct("ShutdownRequested", { reason: Schema.String })

export const ToolCalled = Schema.TaggedStruct("ToolCalled", {
  callId: Schema.String,
  tool: Schema.String,
  args: Schema.Unknown
})

// ---------------------------------------------------------------------------
// Worktrees

/** What became of a worktree when its machine was released: its work committed to its branch, or not. */
export const WorktreeOutcome = Schema.Union(
  Schema.TaggedStruct("Saved", {
    branch: Schema.String,
    commit: Schema.String,
    /** Whether there was uncommitted work to commit. */
    committed: Schema.Boolean,
    warnings: Schema.String
  }),
  Schema.TaggedStruct("SaveFailed", {
    branch: Schema.String,
    /** Where the files still are. */
    path: Schema.String,
    message: Schema.String
  })
)

export const WorktreeReleased = Schema.TaggedStruct("WorktreeReleased", { machine: Schema.String, released: WorktreeOutcome })

/** The worktree of a dead run, saved and removed by this one. */
export const WorktreeCollected = Schema.TaggedStruct("WorktreeCollected", {
  executionId: Schema.String,
  machine: Schema.String,
  repo: Schema.String,
  released: WorktreeOutcome
})

// ---------------------------------------------------------------------------
// Budgets (the entry's process, and agent for an agent's budget, say whose budget it is)

/** What a budget counts: tokens, dollars, model turns, wall-clock milliseconds. */
export const BudgetKind = Schema.Literal("inputTokens", "outputTokens", "totalTokens", "cost", "turns", "time")
export type BudgetKind = typeof BudgetKind.Type

/** An amount of each kind a budget counts (limits, spend, raises); a kind left out has no limit. */
export const BudgetAmounts = Schema.Struct({
  inputTokens: Schema.optional(Schema.Number),
  outputTokens: Schema.optional(Schema.Number),
  totalTokens: Schema.optional(Schema.Number),
  cost: Schema.optional(Schema.Number),
  turns: Schema.optional(Schema.Number),
  /** Milliseconds of wall-clock time. */
  time: Schema.optional(Schema.Number)
})
export type BudgetAmounts = typeof BudgetAmounts.Type

export const BudgetPolicy = Schema.Literal("fail", "pause")
export type BudgetPolicy = typeof BudgetPolicy.Type

/** A process or agent got a budget: `limits` is what it was granted (a child's is carved out of what its parents had left). */
export const BudgetSet = Schema.TaggedStruct("BudgetSet", {
  limits: BudgetAmounts,
  /** What was asked for, when more than the parents had left. */
  requested: Schema.optional(BudgetAmounts),
  onExceeded: BudgetPolicy,
  /** The fraction of a limit at which `BudgetWarning` is logged. */
  warnAt: Schema.Number
})

/** Spend of one kind reached the warning threshold of its limit. */
export const BudgetWarning = Schema.TaggedStruct("BudgetWarning", {
  kind: BudgetKind,
  limit: Schema.Number,
  spent: Schema.Number
})

/** A budget ran out: its spend passed the limit, or a model turn was asked for with none left. */
export const BudgetExceeded = Schema.TaggedStruct("BudgetExceeded", {
  kind: BudgetKind,
  limit: Schema.Number,
  spent: Schema.Number,
  onExceeded: BudgetPolicy
})

/** A budget was raised (from the program or `ramure budget`): `limits` is what it is now. */
export const BudgetRaised = Schema.TaggedStruct("BudgetRaised", {
  by: BudgetAmounts,
  limits: BudgetAmounts,
  /** `cli`, or a process path. */
  caller: Schema.optional(Schema.String)
})

// ---------------------------------------------------------------------------
// Warm pool

export const PoolMemberReady = Schema.TaggedStruct("PoolMemberReady", {
  member: Schema.String,
  model: Schema.String,
  pid: Schema.optional(Schema.Number)
})
export const PoolMemberAssigned = Schema.TaggedStruct("PoolMemberAssigned", { member: Schema.String })
export const PoolMemberDied = Schema.TaggedStruct("PoolMemberDied", { member: Schema.String })
export const PoolStartFailed = Schema.TaggedStruct("PoolStartFailed", { model: Schema.String, error: Schema.String })

// ---------------------------------------------------------------------------

export const RunEvent = Schema.Union(
  RunStarted,
  RunResumed,
  RunEnded,
  OrphansCollected,
  ConnectionRefused,
  ProtocolViolation,
  ProcessStarted,
  ProcessEnded,
  ProcessEmitted,
  StepCompleted,
  EndpointExposed,
  EndpointCalled,
  EndpointReturned,
  MachineCreated,
  AgentCreated,
  AgentStartFailed,
  AgentAdopted,
  AgentRestarted,
  AgentConnected,
  AgentDisconnected,
  AgentCrashed,
  AgentReleased,
  ConnectionAdded,
  ToolAdded,
  ToolRemoved,
  ToolCalled,
  ToolReturned,
  MessageDelivered,
  ShutdownRequested,
  WorktreeReleased,
  WorktreeCollected,
  PoolMemberReady,
  PoolMemberAssigned,
  PoolMemberDied,
  PoolStartFailed,
  BudgetSet,
  BudgetWarning,
  BudgetExceeded,
  BudgetRaised,
  // What the agent reports about its own work (pi's events), recorded as they come.
  Protocol.WorkStarted,
  Protocol.WorkEnded,
  Protocol.TurnStarted,
  Protocol.TurnEnded,
  Protocol.MessageEnded,
  Protocol.ToolExecutionStarted,
  Protocol.ToolExecutionEnded,
  Protocol.ModelError,
  Protocol.EventDropped,
  Protocol.AgentPaused
)
export type RunEvent = typeof RunEvent.Type
export type Tag = RunEvent["_tag"]
export type Of<T extends Tag> = Extract<RunEvent, { readonly _tag: T }>

/** One line of the run's log. */
export const LogEntry = Schema.Struct({
  /** Run-wide sequence number, from 1. */
  n: Schema.Number,
  /** ISO timestamp. */
  ts: Schema.String,
  /** The process the entry belongs to (`""` for the run itself), e.g. `main/review`. */
  process: Schema.String,
  /** The agent the entry is about. */
  agent: Schema.optional(Schema.String),
  /** Logged by the handler of this call (`tool:<agent>/<callId>`, `endpoint:<process>/<name>`). */
  call: Schema.optional(Schema.String),
  event: RunEvent
})
export type LogEntry = typeof LogEntry.Type

/** Where an entry is about: its process and, when it concerns an agent, the agent. */
export interface Subject {
  readonly process: string
  readonly agent?: string | undefined
  /** The call whose handler logs it (by default, the one the logging fiber works for). */
  readonly call?: string | undefined
}

/** The events that are entries of an agent's replication log, in the form the agent receives them. */
export const toEntryBody = (event: RunEvent): Protocol.EntryBody | undefined => {
  switch (event._tag) {
    case "ToolAdded":
      return { _tag: "ToolAdded", tool: event.tool }
    case "ToolRemoved":
      return { _tag: "ToolRemoved", name: event.name }
    case "ToolReturned":
      return { _tag: "ToolResult", callId: event.callId, isError: event.isError, text: event.text }
    case "MessageDelivered":
      return event.from === undefined
        ? { _tag: "UserMessage", text: event.text }
        : { _tag: "UserMessage", text: `[From: ${event.from}] ${event.text}`, from: event.from }
    case "ShutdownRequested":
      return { _tag: "Shutdown", reason: event.reason }
    default:
      return undefined
  }
}

/** Decode one JSON line of a log file; `undefined` for a line that is not an entry (torn, foreign, older format). */
export const decodeLine: (line: string) => LogEntry | undefined = (() => {
  const decode = Schema.decodeUnknownOption(Schema.parseJson(LogEntry))
  return (line) => {
    const decoded = decode(line)
    return decoded._tag === "Some" ? decoded.value : undefined
  }
})()

/** Encode an entry as one JSON line (data that cannot be serialized is replaced by a note, never dropped with the line). */
export const encodeLine = (entry: LogEntry): string => {
  try {
    return JSON.stringify(entry)
  } catch (error) {
    const message = `a ${entry.event._tag} event could not be written: ${String(error)}`
    return JSON.stringify({ ...entry, event: { _tag: "ProtocolViolation", code: "unserializable", message } })
  }
}
