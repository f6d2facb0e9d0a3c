/**
 * Agents: a coding agent (pi, or a scripted driver in tests) started on a
 * machine, connected to the run, owned by the process that created it.
 */
import { Deferred, Duration, Effect, identity, ExecutionStrategy, Exit, JSONSchema, ParseResult, Schema, Scope, type Stream } from "effect"
import type { AgentEventRecord } from "./AgentEvent.js"
import { AgentLauncher } from "./AgentLauncher.js"
import { AgentCrashed, AgentStartError, describe, InvalidToolName } from "./Errors.js"
import type * as AgentSession from "./internal/agentSession.js"
import { CurrentProcess } from "./internal/processState.js"
import type { ExecOptions, ExecResult, Machine } from "./Machine.js"
import { MachineError, MachineProvider } from "./Machine.js"
import { holdLiveSlot, Runtime } from "./Runtime.js"
import type { SandboxOptions } from "./Sandbox.js"
import type { WorktreeOptions } from "./Worktree.js"
import { shortId } from "./RunInfo.js"

export type { AgentEventRecord } from "./AgentEvent.js"

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
}

export interface ToolOptions<A, I> {
  readonly description: string
  /** Decodes the model's arguments; also turned into the JSON Schema the model sees. */
  readonly parameters: Schema.Schema<A, I, never>
}

export interface Agent {
  /** Unique within the run (the name, suffixed `-2`, `-3`… on collisions). */
  readonly id: string
  readonly machine: Machine
  /** The tmux session a person can attach to, when the agent runs in tmux. */
  readonly session: string | undefined
  /** Give the agent a tool; the handler runs in the calling process. */
  readonly on: <A, I, E, R>(
    tool: string,
    options: ToolOptions<A, I>,
    handler: (args: A) => Effect.Effect<unknown, E, R>
  ) => Effect.Effect<void, InvalidToolName, R>
  readonly removeTool: (tool: string) => Effect.Effect<void>
  /** Deliver a user message. */
  readonly send: (text: string) => Effect.Effect<void>
  /** Run a shell command on the agent's machine, in its working directory. */
  readonly exec: (command: string, options?: ExecOptions) => Effect.Effect<ExecResult, MachineError>
  /** Everything the agent did, from its start (replayed to late subscribers). */
  readonly events: Stream.Stream<AgentEventRecord>
  /** @internal */
  readonly sessionState: AgentSession.AgentSession
  /** @internal */
  readonly addTool: (handler: AgentSession.ToolHandler) => Effect.Effect<void, InvalidToolName>
}

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** The JSON Schema the model sees for a Schema of tool arguments. */
export const toJsonSchema = (schema: Schema.Schema<any, any, never>): unknown => {
  const { $schema: _ignored, ...rest } = JSONSchema.make(schema) as unknown as Record<string, unknown>
  return rest
}

/** Turn a handler's success value into the text of a tool result. */
export const resultText = (value: unknown): string =>
  typeof value === "string" ? value : value === undefined || value === null ? "ok" : JSON.stringify(value)

/** Decode the arguments with `schema`, run `handler`, and render the outcome as tool result text. */
export const toolRunner = <A, I, E, R>(
  tool: string,
  schema: Schema.Schema<A, I, never>,
  handler: (args: A) => Effect.Effect<unknown, E, R>
): ((args: unknown) => Effect.Effect<string, string, R>) => {
  const decode = Schema.decodeUnknown(schema, { errors: "all", onExcessProperty: "ignore" })
  return (args) =>
    decode(args).pipe(
      Effect.mapError((error) => `invalid arguments for ${tool}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`),
      Effect.flatMap((decoded) => Effect.mapError(handler(decoded), (error) => describe(error))),
      Effect.map(resultText)
    )
}

const attachTool = (session: AgentSession.AgentSession, handler: AgentSession.ToolHandler) =>
  Effect.gen(function* () {
    const name = handler.definition.name
    if (!TOOL_NAME.test(name)) return yield* new InvalidToolName({ tool: name })
    session.tools.set(name, handler)
    yield* session.entries.append({ _tag: "ToolAdded", tool: handler.definition })
    yield* session.log("tool_added", { name })
  })

/**
 * Start an agent owned by the current process. It is released — asked to
 * shut down, then killed, then its machine stopped — when that process ends.
 */
export const make = Effect.fn("Agent.make")(function* (name: string, options: AgentOptions = {}) {
  const sandboxed = options.sandbox !== undefined && options.sandbox !== false
  if (options.machine !== undefined && (options.worktree !== undefined || sandboxed)) {
    return yield* new MachineError({
      machine: options.machine.id,
      operation: "make",
      message: "worktree and sandbox make a fresh machine: give them to Machine.make, or leave out machine"
    })
  }
  const runtime = yield* Runtime
  const owner = yield* CurrentProcess
  const provider = yield* MachineProvider
  const launcher = yield* AgentLauncher
  const scope = yield* Scope.fork(owner.scope, ExecutionStrategy.sequential)

  // A pre-started agent from a warm pool already holds its places under the run's limits.
  const pooled = launcher.pooled?.({ model: options.model, machine: options.machine, sandboxed }) ?? false

  const start = Effect.gen(function* () {
    if (!pooled) yield* holdLiveSlot(runtime, launcher.evictIdle)
    // Starting pi is heavy: only so many agents start at once.
    const { launched, machine, session } = yield* (pooled ? identity : runtime.startPermits.withPermits(1))(
      Effect.gen(function* () {
        const session = yield* runtime.createSession(name, owner.path)
        // Runs last: after the shutdown request, the kill and the machine's release.
        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            owner.agents.delete(session.id)
            yield* session.log("agent_released")
            yield* session.events.append({ _tag: "released" })
            yield* session.events.end
            yield* session.entries.end
          })
        )
        const machine = options.machine ?? (yield* provider.make({
          name: session.id,
          ...(options.host === undefined ? {} : { host: options.host }),
          ...(options.worktree === undefined ? {} : { worktree: options.worktree }),
          ...(options.sandbox === undefined ? {} : { sandbox: options.sandbox })
        }))
        const sessionName = `ramure-${shortId(runtime.executionId)}-${session.id}`
        const launched = yield* launcher.launch({
          agentId: session.id,
          executionId: runtime.executionId,
          url: runtime.url,
          token: runtime.token,
          machine,
          systemPrompt: options.systemPrompt,
          model: options.model,
          sessionName
        })
        const pid = launched.pid
        if (pid !== undefined) {
          yield* Effect.acquireRelease(Effect.sync(() => runtime.pids.add(pid)), () => Effect.sync(() => runtime.pids.delete(pid)))
        }
        yield* session.log("agent_created", {
          name,
          machine: machine.describe,
          session: launched.session,
          pid: launched.pid,
          model: options.model
        })

        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            session.shuttingDown = true
            yield* session.entries.append({ _tag: "Shutdown", reason: "the process that owns this agent ended" })
            if (session.current !== undefined) {
              yield* Deferred.await(session.gone).pipe(Effect.interruptible, Effect.timeoutOption(options.shutdownGrace ?? "1 second"))
            }
          })
        )

        const exitedEarly = launched.exited.pipe(
          Effect.flatMap(({ exitCode }) =>
            Effect.flatMap(launched.outputTail, (output) =>
              new AgentStartError({ agent: session.id, reason: `its program exited with code ${exitCode ?? "unknown"}`, output })
            )
          )
        )
        const startTimeout = options.startTimeout ?? "60 seconds"
        yield* Deferred.await(session.connected).pipe(
          Effect.timeoutFail({
            duration: startTimeout,
            onTimeout: () =>
              new AgentStartError({ agent: session.id, reason: `it did not connect within ${Duration.format(startTimeout)}` })
          }),
          Effect.raceFirst(exitedEarly),
          Effect.tapError((error) =>
            Effect.flatMap(launched.outputTail, (output) => session.log("agent_start_failed", { reason: error.reason, output }))
          )
        )

        // Watched from here on: an exit before the agent connected is a start failure (above), not a crash.
        yield* launched.exited.pipe(
          Effect.flatMap(({ exitCode }) =>
            Effect.gen(function* () {
              if (session.shuttingDown) return
              const output = yield* launched.outputTail
              yield* session.log("agent_crashed", { exitCode, output })
              yield* session.events.append({ _tag: "crashed", exitCode, output })
              yield* Deferred.fail(owner.completion, new AgentCrashed({ agent: session.id, exitCode, output }))
            })
          ),
          Effect.forkScoped
        )
        return { session, machine, launched }
      })
    )

    const agent: Agent = {
      id: session.id,
      machine,
      session: launched.session,
      sessionState: session,
      addTool: (handler) => attachTool(session, handler),
      on: (tool, toolOptions, handler) =>
        Effect.flatMap(Effect.context<any>(), (context) =>
          attachTool(session, {
            definition: { name: tool, description: toolOptions.description, parameters: toJsonSchema(toolOptions.parameters) },
            run: (args) => Effect.provide(toolRunner(tool, toolOptions.parameters, handler)(args), context)
          })
        ),
      removeTool: (tool) =>
        Effect.gen(function* () {
          if (!session.tools.delete(tool)) return
          yield* session.entries.append({ _tag: "ToolRemoved", name: tool })
          yield* session.log("tool_removed", { name: tool })
        }),
      send: (text) => deliver(session, text, undefined),
      exec: (command, execOptions) => machine.exec(command, execOptions),
      events: session.events.stream(0)
    }
    owner.agents.set(session.id, agent)
    yield* owner.events.append({ _tag: "agent", agent: session.id })
    return agent
  })

  return yield* start.pipe(
    Scope.extend(scope),
    Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
  )
})

/** Deliver a user message to an agent, optionally naming the agent it comes from. */
export const deliver = (session: AgentSession.AgentSession, text: string, from: string | undefined) =>
  Effect.gen(function* () {
    const body = from === undefined ? text : `[From: ${from}] ${text}`
    yield* session.entries.append(from === undefined ? { _tag: "UserMessage", text: body } : { _tag: "UserMessage", text: body, from })
    yield* session.log("message", from === undefined ? { text } : { text, from })
    yield* session.events.append({ _tag: "message", text: body, from })
  })

// ---------------------------------------------------------------------------
// Connections between agents

export type Direction = "both" | "a->b" | "b->a"

const peersOf = new WeakMap<AgentSession.AgentSession, Map<string, Agent>>()

const MessageArgs = Schema.Struct({
  to: Schema.String.annotations({ description: "id of the agent to message" }),
  text: Schema.String
})
const SendFileArgs = Schema.Struct({
  to: Schema.String.annotations({ description: "id of the agent to send the file to" }),
  path: Schema.String.annotations({ description: "file to send, relative to your working directory" }),
  dest: Schema.optional(Schema.String).annotations({
    description: "where to put it, relative to the receiver's working directory (default: same path)"
  })
})

const peerOf = (sender: Agent, to: string) =>
  Effect.suspend(() => {
    const peers = peersOf.get(sender.sessionState) ?? new Map<string, Agent>()
    const peer = peers.get(to)
    if (peer !== undefined) return Effect.succeed(peer)
    const known = [...peers.keys()].join(", ") || "nobody"
    return Effect.fail(`you are not connected to "${to}"; you can reach: ${known}`)
  })

const addEdge = (from: Agent, to: Agent) =>
  Effect.gen(function* () {
    let peers = peersOf.get(from.sessionState)
    if (peers === undefined) peersOf.set(from.sessionState, (peers = new Map()))
    if (peers.has(to.id)) return
    peers.set(to.id, to)
    yield* from.sessionState.log("connection_added", { from: from.id, to: to.id })
    const reach = [...peers.keys()].join(", ")
    yield* from.addTool({
      definition: {
        name: "message",
        description: `Send a message to another agent (you can reach: ${reach}).`,
        parameters: toJsonSchema(MessageArgs)
      },
      run: toolRunner("message", MessageArgs, ({ text, to }) =>
        Effect.flatMap(peerOf(from, to), (peer) => deliver(peer.sessionState, text, from.id))
      )
    })
    yield* from.addTool({
      definition: {
        name: "send_file",
        description: `Copy a file from your machine to another agent's (you can reach: ${reach}).`,
        parameters: toJsonSchema(SendFileArgs)
      },
      run: toolRunner("send_file", SendFileArgs, ({ dest, path, to }) =>
        Effect.gen(function* () {
          const peer = yield* peerOf(from, to)
          const target = dest ?? path
          const data = yield* Effect.mapError(from.machine.readFile(path), (error) => error.message)
          yield* Effect.mapError(peer.machine.writeFile(target, data), (error) => error.message)
          yield* deliver(peer.sessionState, `sent you a file: ${target}`, from.id)
          return `sent ${path} to ${to} as ${target} (${data.byteLength} bytes)`
        })
      )
    })
  })

/**
 * Let agents talk: the sender gets `message` and `send_file` tools for each
 * allowed direction; the receiver gets messages as `[From: <sender>] …`.
 */
export const connect = (a: Agent, b: Agent, options: { readonly direction?: Direction } = {}) =>
  Effect.gen(function* () {
    const direction = options.direction ?? "both"
    if (direction !== "b->a") yield* addEdge(a, b)
    if (direction !== "a->b") yield* addEdge(b, a)
  })
