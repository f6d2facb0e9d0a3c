/**
 * Agents: a coding agent (pi, or a scripted driver in tests) started on a
 * machine, connected to the run, owned by the process that created it.
 */
import { Deferred, Duration, Effect, ExecutionStrategy, Exit, identity, Option, Schema, Scope, type Stream } from "effect"
import { AgentLauncher, type LaunchSpec } from "./AgentLauncher.js"
import { AgentSessions } from "./AgentSessions.js"
import * as Budget from "./Budget.js"
import { ChildProcesses } from "./ChildProcesses.js"
import {
  AgentCrashed,
  type AgentNotLive,
  AgentStartError,
  InvalidArgument,
  type InvalidToolName,
  type InvalidToolSchema,
  type MessageTooLarge
} from "./Errors.js"
import { addUserTool, makeAgent, sessionOf } from "./internal/agent.js"
import type * as AgentSession from "./internal/agentSession.js"
import * as FileTransfer from "./internal/fileTransfer.js"
import { CurrentProcess } from "./internal/processState.js"
import { connectKey, Journal, sendKey } from "./Journal.js"
import { builtInTools, handlerContext, toJsonSchema, toolRunner } from "./internal/tools.js"
import type { ExecOptions, ExecResult, Machine, MachineError } from "./Machine.js"
import { MachineProvider } from "./Machine.js"
import { Run } from "./Run.js"
import type { RunEvent } from "./RunEvent.js"
import { RunInfo, shortId } from "./RunInfo.js"
import { RunLimits } from "./RunLimits.js"
import type { SandboxOptions } from "./Sandbox.js"
import type { WorktreeOptions } from "./Worktree.js"

export interface AgentOptions {
  readonly systemPrompt?: string
  /** Run on this machine instead of a fresh one. */
  readonly machine?: Machine
  /** Run on a fresh machine on this host (a provider of several hosts, such as ssh, picks one otherwise). */
  readonly host?: string
  /** `provider/model`; defaults to the run's model. */
  readonly model?: string
  /** Work in a worktree of this repository, on a branch of its own (a fresh machine; see `Worktree`). */
  readonly worktree?: WorktreeOptions
  /** Run the agent and its commands in a bubblewrap sandbox (a fresh machine; see `Sandbox`). */
  readonly sandbox?: boolean | SandboxOptions
  /** How long to wait for the agent to connect (default 60 s). */
  readonly startTimeout?: Duration.DurationInput
  /** How long a released agent gets to shut down before it is killed (default 1 s). */
  readonly shutdownGrace?: Duration.DurationInput
  /**
   * What this agent may spend (see `Budget`), carved out of what its
   * process's budgets have left; on a breach its process fails, or (`pause`)
   * the agent waits until the budget is raised.
   */
  readonly budget?: Budget.Options
}

export interface ToolOptions<A, I> {
  readonly description: string
  /** Decodes the model's arguments; also turned into the JSON Schema the model sees. */
  readonly parameters: Schema.Schema<A, I, never>
}

export interface Agent {
  /** Unique within the run: the name made safe for files and tmux, suffixed `-2`, `-3`… on collisions. */
  readonly id: string
  /** The name it was created with. */
  readonly name: string
  readonly machine: Machine
  /** The tmux session a person can attach to, when the agent runs in tmux. */
  readonly session: string | undefined
  /** Give the agent a tool; the handler runs in the calling process. */
  readonly on: <A, I, E, R>(
    tool: string,
    options: ToolOptions<A, I>,
    handler: (args: A) => Effect.Effect<unknown, E, R>
  ) => Effect.Effect<void, InvalidToolName | InvalidToolSchema, R>
  readonly removeTool: (tool: string) => Effect.Effect<void>
  /** Deliver a user message. */
  readonly send: (text: string) => Effect.Effect<void, AgentNotLive | MessageTooLarge>
  /** Run a shell command on the agent's machine, in its working directory. */
  readonly exec: (command: string, options?: ExecOptions) => Effect.Effect<ExecResult, MachineError>
  /** Everything recorded about the agent, from its start (replayed to late subscribers) until it is released. */
  readonly events: Stream.Stream<RunEvent>
}

/** The tools ramure gives agents itself (along `connect` edges): a process cannot use these names. */
export { builtInTools }

/** What a program printed, without the blank lines and tmux's "Pane is dead" notice around it. */
const trimOutput = (output: string): string =>
  output.split("\n").filter((line) => !/^Pane is dead/.test(line.trim())).join("\n").replace(/\n{3,}/g, "\n\n").trim()

const killNow = (pid: number): void => {
  try {
    process.kill(pid, "SIGKILL")
  } catch {
    // gone already
  }
}

/**
 * Start an agent owned by the current process. It is released — asked to
 * shut down, then killed, then its machine stopped — when that process ends.
 */
export const make = Effect.fn("Agent.make")(function* (name: string, options: AgentOptions = {}) {
  yield* Effect.annotateCurrentSpan({ agent: name, ...(options.model === undefined ? {} : { model: options.model }) })
  const sessions = yield* AgentSessions
  const limits = yield* RunLimits
  const run = yield* Run
  const { executionId } = yield* RunInfo
  const owner = yield* CurrentProcess
  const provider = yield* MachineProvider
  const launcher = yield* AgentLauncher
  const children = yield* ChildProcesses
  if (options.machine !== undefined && options.host !== undefined) {
    return yield* new InvalidArgument({
      operation: "Agent.make",
      message: `agent ${name}: give either a machine or a host, not both (the machine ${options.machine.id} decides its host)`
    })
  }
  const badBudget = options.budget === undefined ? undefined : Budget.check(options.budget)
  if (badBudget !== undefined) return yield* new InvalidArgument({ operation: "Agent.make", message: `agent ${name}: ${badBudget}` })
  const sandboxed = options.sandbox !== undefined && options.sandbox !== false
  if (options.machine !== undefined && (options.worktree !== undefined || sandboxed)) {
    return yield* new InvalidArgument({
      operation: "Agent.make",
      message: `agent ${name}: worktree and sandbox make a fresh machine: give them to Machine.make, or leave out machine`
    })
  }
  const scope = yield* Scope.fork(owner.scope, ExecutionStrategy.sequential)
  // The agent's life is traced beside this start, under what called `Agent.make` (its process).
  const around = Option.flatMap(yield* Effect.option(Effect.currentSpan), (span) => span.parent)

  // In a resumed run, an agent the journal has is taken over rather than started.
  const journal = yield* Journal
  const journaled = Option.flatMap(yield* journal.take(owner.path, "agent", name), (entry) =>
    entry.agent === undefined ? Option.none() : journal.agent(entry.agent))
  if (Option.isSome(journaled) && journaled.value.startFailed !== undefined) {
    const { output, reason } = journaled.value.startFailed
    return yield* new AgentStartError({ agent: journaled.value.id, reason, ...(output === undefined ? {} : { output }) })
  }
  const resume = Option.getOrUndefined(Option.filter(journaled, (agent) => !agent.ended))

  // A pre-started agent from a warm pool already holds its places under the run's limits.
  const pooled = launcher.pooled?.({ model: options.model, machine: options.machine, sandboxed }) ?? false

  const start = Effect.gen(function* () {
    if (!pooled) yield* limits.holdLiveSlot(launcher.evictIdle)
    // Starting pi is heavy: only so many agents start at once.
    const { launched, machine, session } = yield* (pooled || launcher.lightStart === true ? identity : limits.withStartPermit)(
      Effect.gen(function* () {
        const session = yield* sessions.create(name, owner.path, { resume, parentSpan: around, budget: options.budget })
        // Runs last: after the shutdown request, the kill and the machine's release.
        yield* Effect.addFinalizer(() =>
          Effect.zipRight(Effect.sync(() => owner.agents.delete(session.id)), session.release)
        )
        const machine = options.machine ?? (yield* provider.make({
          name: session.id,
          ...(options.host === undefined ? {} : { host: options.host }),
          ...(options.worktree === undefined ? {} : { worktree: options.worktree }),
          ...(options.sandbox === undefined ? {} : { sandbox: options.sandbox }),
          ...(resume === undefined ? {} : { adopt: true })
        }))
        const spec: LaunchSpec = {
          agentId: session.id,
          executionId,
          url: run.url,
          secret: session.secret,
          machine,
          systemPrompt: options.systemPrompt,
          model: options.model,
          sessionName: `ramure-${shortId(executionId)}-${session.id}`
        }
        const { adopted, launched } = resume !== undefined
          ? yield* takeOver(launcher, spec)
          : journal.resuming
          // Started by the run's previous orchestrator just before it died (the journal does not have it yet): taken over as new.
          ? yield* takeOver(launcher, spec, { fresh: true })
          : { adopted: false, launched: yield* launcher.launch(spec) }
        if (launched.pid !== undefined) yield* children.track(launched.pid)
        const where = {
          ...(launched.session === undefined ? {} : { session: launched.session }),
          ...(launched.pid === undefined ? {} : { pid: launched.pid })
        }
        const model = options.model ?? launched.model
        yield* session.record(
          resume === undefined
            ? { _tag: "AgentCreated", name, machine: machine.describe, ...where, ...(model === undefined ? {} : { model }) }
            : { _tag: adopted ? "AgentAdopted" : "AgentRestarted", ...where }
        )

        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            // A program that never connected has nothing to save, and may not heed SIGTERM while it loads.
            if (launched.pid !== undefined && (yield* session.lifecycle)._tag === "Starting") killNow(launched.pid)
            const connected = yield* session.shutdown("the process that owns this agent ended")
            if (connected) {
              yield* session.gone.pipe(Effect.interruptible, Effect.timeoutOption(options.shutdownGrace ?? "1 second"))
            }
          })
        )

        const inSession = launched.session === undefined ? "" : ` (tmux session ${launched.session})`
        const startError = (reason: string) =>
          Effect.flatMap(launched.outputTail, (output) => {
            const said = trimOutput(output)
            return Effect.fail(
              new AgentStartError({ agent: session.id, reason: `${reason}${inSession}`, ...(said === "" ? {} : { output: said }) })
            )
          })
        const exitedEarly = Effect.flatMap(launched.exited, ({ exitCode }) =>
          startError(`its program exited with code ${exitCode ?? "unknown"}`))
        const startTimeout = options.startTimeout ?? "60 seconds"
        yield* session.connected.pipe(
          Effect.timeoutTo({
            duration: startTimeout,
            onSuccess: () => Effect.void,
            onTimeout: () => startError(`it did not connect within ${Duration.format(startTimeout)}`)
          }),
          Effect.flatten,
          Effect.raceFirst(exitedEarly),
          Effect.tapError((error) =>
            session.record({
              _tag: "AgentStartFailed",
              reason: error.reason,
              ...(error.output === undefined ? {} : { output: error.output })
            })
          )
        )

        // Watched from here on: an exit before the agent connected is a start failure (above), not a crash.
        yield* launched.exited.pipe(
          Effect.flatMap(({ exitCode }) =>
            Effect.gen(function* () {
              const state = yield* session.lifecycle
              if (state._tag === "ShuttingDown" || state._tag === "Released") return
              const output = trimOutput(yield* launched.outputTail)
              yield* session.record({ _tag: "AgentCrashed", ...(exitCode === undefined ? {} : { exitCode }), output })
              yield* Deferred.fail(owner.completion, new AgentCrashed({ agent: session.id, exitCode, output }))
            })
          ),
          Effect.forkScoped
        )
        return { session, machine, launched }
      })
    )
    const agent = make_(session, machine, launched.session, name, journal)
    owner.agents.set(session.id, agent)
    yield* owner.events.append({ _tag: "agent", agent: session.id })
    return agent
  })

  return yield* start.pipe(
    Scope.extend(scope),
    Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
  )
})

/**
 * The agent's program as a previous orchestrator of the run left it: taken
 * over if it still runs, else started again to continue its saved session.
 */
const takeOver = (launcher: typeof AgentLauncher.Service, spec: LaunchSpec, options: { readonly fresh?: boolean } = {}) =>
  Effect.gen(function* () {
    const found = launcher.adopt === undefined ? Option.none() : yield* launcher.adopt(spec)
    if (Option.isSome(found)) return { adopted: true, launched: found.value }
    return { adopted: false, launched: yield* launcher.launch(options.fresh === true ? spec : { ...spec, resume: true }) }
  })

const make_ = (
  session: AgentSession.AgentSession,
  machine: Machine,
  tmuxSession: string | undefined,
  name: string,
  journal: typeof Journal.Service
): Agent =>
  makeAgent(session, {
    id: session.id,
    name,
    machine,
    session: tmuxSession,
    on: (tool, toolOptions, handler) =>
      Effect.flatMap(Effect.zip(handlerContext, toJsonSchema(tool, toolOptions.parameters)), ([context, parameters]) =>
        addUserTool(session, {
          definition: { name: tool, description: toolOptions.description, parameters },
          // Its services are `context`, which the call's fiber runs with.
          run: toolRunner(tool, toolOptions.parameters, handler) as (args: unknown) => Effect.Effect<string, string>,
          context,
          replayed: true
        })),
    removeTool: (tool) => session.removeTool(tool),
    // A message the journal has was delivered before the run was resumed: the agent has it.
    send: (text) =>
      Effect.flatMap(journal.take(session.process, "send", sendKey(session.id, text)), (delivered) =>
        Option.isSome(delivered) ? Effect.void : session.deliver(text)),
    exec: (command, execOptions) => machine.exec(command, execOptions),
    events: session.events
  })

// ---------------------------------------------------------------------------
// Connections between agents

export const Direction = Schema.Literal("both", "a->b", "b->a")
export type Direction = typeof Direction.Type

const MessageArgs = Schema.Struct({
  to: Schema.String.annotations({ description: "id of the agent to message" }),
  text: Schema.String
})

const peerOf = (sender: AgentSession.AgentSession, to: string) =>
  Effect.flatMap(sender.peer(to), (peer) =>
    Option.match(peer, {
      onSome: Effect.succeed,
      onNone: () =>
        Effect.flatMap(sender.peerIds, (ids) =>
          Effect.fail(`you are not connected to "${to}"; you can reach: ${ids.join(", ") || "nobody"}`))
    }))

/** A tool of ramure's own (not one of the process's handlers), given along `connect` edges. */
const builtIn = <A, I>(
  session: AgentSession.AgentSession,
  name: string,
  description: string,
  parameters: Schema.Schema<A, I, never>,
  handler: (args: A) => Effect.Effect<unknown, string>
) =>
  Effect.flatMap(Effect.orDie(toJsonSchema(name, parameters)), (json) =>
    session.addTool({ definition: { name, description, parameters: json }, run: toolRunner(name, parameters, handler) }))

const addEdge = (from: Agent, to: Agent, maxFileBytes: number) =>
  Effect.gen(function* () {
    const sender = sessionOf(from)
    const added = yield* sender.addPeer({ session: sessionOf(to), machine: to.machine, maxFileBytes })
    if (!added) return
    const journaled = yield* (yield* Journal).take(sender.process, "connect", connectKey(sender.id, to.id))
    if (Option.isNone(journaled)) yield* sender.record({ _tag: "ConnectionAdded", to: to.id })
    const peers = yield* sender.peers
    const reach = peers.map((peer) => peer.session.id).join(", ")
    const largest = Math.max(...peers.map((peer) => peer.maxFileBytes))
    const deliver = (peer: AgentSession.Peer, text: string) =>
      Effect.mapError(peer.session.deliver(text, { from: sender.id }), (error) => error.message)
    const self = { id: sender.id, machine: from.machine }
    yield* builtIn(sender, "message", `Send a message to another agent (you can reach: ${reach}).`, MessageArgs, ({ text, to }) =>
      Effect.flatMap(peerOf(sender, to), (peer) => deliver(peer, text)))
    yield* builtIn(sender, "send_file", FileTransfer.sendFileDescription(reach, largest), FileTransfer.SendFileArgs, (args) =>
      Effect.gen(function* () {
        const peer = yield* peerOf(sender, args.to)
        const { dest, result } = yield* FileTransfer.send(self, { id: peer.session.id, machine: peer.machine }, args, peer.maxFileBytes)
        yield* deliver(peer, `sent you a file: ${dest}`)
        return result
      }))
    yield* builtIn(sender, "download_file", FileTransfer.downloadFileDescription(reach, largest), FileTransfer.DownloadFileArgs, (args) =>
      Effect.flatMap(peerOf(sender, args.from), (peer) =>
        FileTransfer.download(self, { id: peer.session.id, machine: peer.machine }, args, peer.maxFileBytes)))
  })

export interface ConnectOptions {
  readonly direction?: Direction
  /** The largest file `send_file` and `download_file` copy along the connection (default 64 MiB). */
  readonly maxFileBytes?: number
}

/**
 * Let agents talk. Each allowed direction gives the agent it starts from
 * three tools toward the other: `message` (the receiver gets
 * `[From: <sender>] …`), `send_file` (copy one of its files there) and
 * `download_file` (copy one of the other's files here). So `"a->b"` lets `a`
 * reach `b`, and leaves `b` no way to reach `a` or its files.
 */
export const connect = Effect.fn("Agent.connect")(function* (a: Agent, b: Agent, options: ConnectOptions = {}) {
  const direction = options.direction ?? "both"
  if (!Schema.is(Direction)(direction)) {
    return yield* new InvalidArgument({
      operation: "Agent.connect",
      message: `unknown direction ${JSON.stringify(direction)} (use "both", "a->b" or "b->a")`
    })
  }
  const maxFileBytes = options.maxFileBytes ?? FileTransfer.defaultMaxFileBytes
  if (direction !== "b->a") yield* addEdge(a, b, maxFileBytes)
  if (direction !== "a->b") yield* addEdge(b, a, maxFileBytes)
})
