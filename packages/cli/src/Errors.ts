/**
 * What can go wrong for a user of the CLI. Each error renders as one line
 * (its `message`); `main` prints it on stderr and exits non-zero.
 */
import { Schema } from "effect"

/** No run is live and no id was given. */
export class NoLiveRun extends Schema.TaggedError<NoLiveRun>()("NoLiveRun", {}) {
  override get message() {
    return "no live run (`ramure ls --all` lists finished runs; pass an id to pick one)"
  }
}

/** No run id starts with the given prefix. */
export class UnknownRun extends Schema.TaggedError<UnknownRun>()("UnknownRun", { prefix: Schema.String }) {
  override get message() {
    return `no run matches "${this.prefix}" (see \`ramure ls --all\`)`
  }
}

/** Several runs match: the prefix (or its absence) is ambiguous. */
export class AmbiguousRun extends Schema.TaggedError<AmbiguousRun>()("AmbiguousRun", {
  prefix: Schema.optional(Schema.String),
  candidates: Schema.Array(Schema.String)
}) {
  override get message() {
    const which = this.prefix === undefined ? `${this.candidates.length} runs are live` : `"${this.prefix}" matches ${this.candidates.length} runs`
    return `${which}, pass an id: ${this.candidates.join(", ")}`
  }
}

/** The command needs a live run, and this one has ended. */
export class RunNotLive extends Schema.TaggedError<RunNotLive>()("RunNotLive", {
  run: Schema.String,
  outcome: Schema.String
}) {
  override get message() {
    return `run ${this.run} is not live (it ended: ${this.outcome})`
  }
}

/** The run's control channel cannot be reached (dead process, refused token, …). */
export class RunUnreachable extends Schema.TaggedError<RunUnreachable>()("RunUnreachable", {
  run: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot reach run ${this.run}: ${this.reason}`
  }
}

/** The run answered a control request with an error. */
export class ControlFailed extends Schema.TaggedError<ControlFailed>()("ControlFailed", {
  run: Schema.String,
  command: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** `--agent` is needed, or names no agent of the run. */
export class AgentNotFound extends Schema.TaggedError<AgentNotFound>()("AgentNotFound", {
  run: Schema.String,
  agent: Schema.optional(Schema.String),
  available: Schema.Array(Schema.String)
}) {
  override get message() {
    const agents = this.available.length === 0 ? "it has none" : `agents: ${this.available.join(", ")}`
    return this.agent === undefined
      ? `run ${this.run} has ${this.available.length === 0 ? "no agents" : "several agents"}, pass --agent (${agents})`
      : `run ${this.run} has no agent "${this.agent}" (${agents})`
  }
}

/** The agent has ended (its process ended, it crashed, or it never started): it takes no messages and has no session. */
export class AgentEnded extends Schema.TaggedError<AgentEnded>()("AgentEnded", {
  run: Schema.String,
  agent: Schema.String,
  how: Schema.String
}) {
  override get message() {
    return `agent ${this.agent} of run ${this.run} has ended: ${this.how}; ramure tail ${this.run} --agent ${this.agent} shows what it did`
  }
}

/** Bad arguments that the parser cannot catch. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { reason: Schema.String }) {
  override get message() {
    return this.reason
  }
}

/** Something the CLI tried on this host failed (tmux, a shell, a signal). */
export class HostError extends Schema.TaggedError<HostError>()("HostError", { reason: Schema.String }) {
  override get message() {
    return this.reason
  }
}

export type CliError =
  | NoLiveRun
  | UnknownRun
  | AmbiguousRun
  | RunNotLive
  | RunUnreachable
  | ControlFailed
  | AgentNotFound
  | AgentEnded
  | UsageError
  | HostError

/** `ramure web` cannot serve its page. */
export class WebServerError extends Schema.TaggedError<WebServerError>()("WebServerError", { message: Schema.String }) {}
