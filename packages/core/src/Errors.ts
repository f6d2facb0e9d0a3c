/**
 * The typed errors a process can end with, and the errors of agents,
 * tools and endpoints.
 */
import { Schema } from "effect"
import { BudgetKind } from "./RunEvent.js"

/**
 * `Process.fail(reason)` was called with a text, or with an error of a type
 * the process does not declare (`failure` of `Process.make`): then `error`
 * holds it, and `reason` describes it.
 */
export class ProcessFailed extends Schema.TaggedError<ProcessFailed>()("ProcessFailed", {
  process: Schema.String,
  reason: Schema.String,
  error: Schema.optional(Schema.Unknown)
}) {
  override get message() {
    return `process ${this.process} failed: ${this.reason}`
  }
}

/** The process ran longer than its timeout. */
export class ProcessTimeout extends Schema.TaggedError<ProcessTimeout>()("ProcessTimeout", {
  process: Schema.String,
  timeout: Schema.String
}) {
  override get message() {
    return `process ${this.process} timed out after ${this.timeout}`
  }
}

/** The process was cancelled (by its parent, `ramure stop`, or a signal). */
export class ProcessCancelled extends Schema.TaggedError<ProcessCancelled>()("ProcessCancelled", {
  process: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `process ${this.process} was cancelled: ${this.reason}`
  }
}

/** An agent's program (pi) exited while the agent was live. */
export class AgentCrashed extends Schema.TaggedError<AgentCrashed>()("AgentCrashed", {
  agent: Schema.String,
  exitCode: Schema.optional(Schema.Number),
  output: Schema.String
}) {
  override get message() {
    return `agent ${this.agent} exited unexpectedly (exit code ${this.exitCode ?? "unknown"})`
  }
}

/** The agent could not be started, or did not connect in time. */
export class AgentStartError extends Schema.TaggedError<AgentStartError>()("AgentStartError", {
  agent: Schema.String,
  reason: Schema.String,
  output: Schema.optional(Schema.String)
}) {
  override get message() {
    return `agent ${this.agent} did not start: ${this.reason}${this.output ? `\n--- last output ---\n${this.output}` : ""}`
  }
}

export class InvalidToolName extends Schema.TaggedError<InvalidToolName>()("InvalidToolName", {
  tool: Schema.String,
  reason: Schema.optional(Schema.String)
}) {
  override get message() {
    return `invalid tool name "${this.tool}": ${this.reason ?? `use 1-64 letters, digits, "_" or "-"`}`
  }
}

/** A tool's (or endpoint's) parameters have no self-contained JSON Schema a model could read (a recursive schema, …). */
export class InvalidToolSchema extends Schema.TaggedError<InvalidToolSchema>()("InvalidToolSchema", {
  tool: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `the parameters of "${this.tool}" cannot be described to a model: ${this.reason}`
  }
}

/** A process completed with a value (or failed with an error) that its declared Schema does not accept. */
export class InvalidCompletion extends Schema.TaggedError<InvalidCompletion>()("InvalidCompletion", {
  process: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `process ${this.process} completed with ${this.reason}`
  }
}

/** An option or argument that makes no sense (a typo, two options that exclude each other, …). */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>()("InvalidArgument", {
  operation: Schema.String,
  message: Schema.String
}) {}

/** A handler can fail with this to give the model a precise message. */
export class ToolError extends Schema.TaggedError<ToolError>()("ToolError", {
  message: Schema.String
}) {}

export class EndpointNotFound extends Schema.TaggedError<EndpointNotFound>()("EndpointNotFound", {
  process: Schema.String,
  endpoint: Schema.String,
  available: Schema.Array(Schema.String),
  /** Why waiting for it ended (it was not exposed in time, or the process ended without it). */
  reason: Schema.optional(Schema.String)
}) {
  override get message() {
    const why = this.reason === undefined ? "" : `: ${this.reason}`
    return `process ${this.process} has no endpoint "${this.endpoint}"${why} (endpoints: ${this.available.join(", ") || "none"})`
  }
}

/** The process has ended: its endpoints can no longer be called or attached. */
export class ProcessEnded extends Schema.TaggedError<ProcessEnded>()("ProcessEnded", {
  process: Schema.String
}) {
  override get message() {
    return `process ${this.process} has ended: its endpoints can no longer be called`
  }
}

export class EndpointFailed extends Schema.TaggedError<EndpointFailed>()("EndpointFailed", {
  process: Schema.String,
  endpoint: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `endpoint ${this.process}.${this.endpoint} failed: ${this.reason}`
  }
}

/** The agent has been released (or is being): nothing more can be delivered to it. */
export class AgentNotLive extends Schema.TaggedError<AgentNotLive>()("AgentNotLive", {
  agent: Schema.String,
  state: Schema.String
}) {
  override get message() {
    return `agent ${this.agent} is no longer live (${this.state})`
  }
}

/** A message too large for the agent's connection. */
export class MessageTooLarge extends Schema.TaggedError<MessageTooLarge>()("MessageTooLarge", {
  agent: Schema.String,
  bytes: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `a message of ${this.bytes} bytes is too large for agent ${this.agent} (limit ${this.limit})`
  }
}

/** No live process has this path (it ended, or never existed). */
export class ProcessNotFound extends Schema.TaggedError<ProcessNotFound>()("ProcessNotFound", {
  process: Schema.String,
  available: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no live process "${this.process}" (live: ${this.available.join(", ") || "none"})`
  }
}

/** The log could not be written: the run fails with this error. */
export class LogWriteFailed extends Schema.TaggedError<LogWriteFailed>()("LogWriteFailed", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot write the run's log ${this.file}: ${this.reason}`
  }
}

/** A resumed program did not do again what its journal says it did (see `Journal`). */
export class ResumeDiverged extends Schema.TaggedError<ResumeDiverged>()("ResumeDiverged", {
  process: Schema.String,
  /** What the program did instead ("" for nothing). */
  got: Schema.String,
  /** What the journal has that the program did not do again. */
  expected: Schema.Array(Schema.String)
}) {
  override get message() {
    return `the resumed program diverged from its journal in process ${this.process}: the journal has ${this.expected.join(", ")}; ` +
      (this.got === "" ? "the program did not do that again" : `the program did ${this.got} instead`)
  }
}

/**
 * A budget ran out (see `Budget`): whose (`process`, and `agent` for an
 * agent's own budget), of what kind, its limit and what was spent.
 */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>()("BudgetExceeded", {
  process: Schema.String,
  agent: Schema.optional(Schema.String),
  kind: BudgetKind,
  limit: Schema.Number,
  spent: Schema.Number
}) {
  override get message() {
    const whose = this.agent === undefined ? `process ${this.process}` : `agent ${this.agent}`
    const amount = (n: number) =>
      this.kind === "cost" ? `$${n.toFixed(4)}` : this.kind === "time" ? `${(n / 1000).toFixed(1)} s` : String(n)
    const what = this.kind === "cost" ? "cost" : this.kind === "time" ? "time" : this.kind === "turns" ? "model turns" :
      this.kind.replace("Tokens", " tokens")
    return `the budget of ${whose} is exceeded: ${what} ${amount(this.spent)} of ${amount(this.limit)}`
  }
}

export type ProcessError =
  | ProcessFailed
  | ProcessTimeout
  | ProcessCancelled
  | AgentCrashed
  | LogWriteFailed
  | ResumeDiverged
  | BudgetExceeded

/** Whether `error` is one of the errors any process can end with. */
export const isProcessError = (error: unknown): error is ProcessError =>
  error instanceof ProcessFailed || error instanceof ProcessTimeout || error instanceof ProcessCancelled ||
  error instanceof AgentCrashed || error instanceof LogWriteFailed || error instanceof ResumeDiverged ||
  error instanceof BudgetExceeded
export type EndpointError = EndpointNotFound | EndpointFailed | ProcessEnded

/** A short, human text for any error value. */
export const describe = (error: unknown): string => {
  // A handler's own words for the model.
  if (error instanceof ToolError) return error.message
  if (typeof error === "object" && error !== null) {
    const tag = "_tag" in error ? String((error as { _tag: unknown })._tag) : undefined
    const message = "message" in error ? String((error as { message: unknown }).message) : undefined
    if (message && tag && !message.includes(tag)) return `${tag}: ${message}`
    if (message) return message
    if (tag) return tag
  }
  return String(error)
}
