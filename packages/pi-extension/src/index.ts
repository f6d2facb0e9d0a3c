/**
 * The pi extension that makes a pi coding agent a ramure agent.
 *
 * pi loads it with `-e` (the built `dist/ramure-pi-extension.cjs`, or this
 * file from source); it reads its connection from the environment (see
 * `AgentEnvironment`) and does nothing without it. It replicates the agent's log
 * through `AgentClient` — tools become pi tools, user messages become
 * prompts, `Shutdown` ends pi — and forwards what pi does as
 * `Protocol.AgentEvent`s. A pi that cannot reach its run at start exits 1; one
 * that loses it later freezes and waits for it, then exits (`deadman.ts`).
 *
 * A pi started ahead of need for a warm pool has `RAMURE_POOL_MEMBER` instead
 * of `RAMURE_AGENT_ID`: it waits on `/pool/<member>` for an `Assign`, takes on
 * that agent's identity (see `identity.ts`) and then connects as that agent.
 */
import type { ExtensionAPI, ExtensionContext, ToolDefinition } from "@mariozechner/pi-coding-agent"
import * as AgentClient from "@ramure/protocol/AgentClient"
import * as AgentEnvironment from "@ramure/protocol/AgentEnvironment"
import type * as Protocol from "@ramure/protocol/Protocol"
import * as RunAddress from "@ramure/protocol/RunAddress"
import { Cause, Duration, Effect, Exit, Schedule, Scope } from "effect"
import * as Deadman from "./deadman.js"
import { messageEvent, textOf, truncate } from "./events.js"
import { host } from "./host.js"
import * as Identity from "./identity.js"
import * as Session from "./session.js"
import { preloadProvider } from "./preload.js"

/**
 * What outlives one extension instance: pi re-creates extensions on `/new`,
 * `/reload`, … and the new instance resumes where the old one stopped.
 */
interface Slot {
  /** Entries applied so far (the log's `seq`). */
  lastSeq: number
  readonly tools: Map<string, Protocol.ToolDefinition>
  /** User messages received but not yet handed to pi, oldest first. */
  readonly mailbox: Array<{ readonly text: string; readonly seq: number }>
  /** The last user message the saved conversation already holds (a pi started again to continue it). */
  delivered: number
  /** Tool executions so far: numbers each one's ramure call id. */
  calls: number
  /** Stops the live instance, if any. */
  stop: (() => Promise<void>) | undefined
}

const emptySlot = (): Slot => ({ lastSeq: 0, tools: new Map(), mailbox: [], delivered: 0, calls: 0, stop: undefined })

const slots: Map<string, Slot> = ((globalThis as any)[Symbol.for("ramure/pi-extension/slots")] ??= new Map())

const slotFor = (config: AgentEnvironment.Agent): Slot => {
  const key = `${config.executionId}/${config.agentId}`
  let slot = slots.get(key)
  if (slot === undefined) slots.set(key, (slot = emptySlot()))
  return slot
}

/** The `customType` of the hidden message that starts a run continuing the previous one. */
const continueType = "ramure-continue"

/** How long pi's start waits for the run's first tool list. */
const syncTimeout = Duration.seconds(30)
/** A run that has not answered a ping for this long is unreachable (a dead peer does not close its connection). */
const heartbeat = { interval: Duration.seconds(5), timeout: Duration.seconds(10) }
/** How long a pi told to shut down in the middle of its work keeps its connection for the end of that work. */
const shutdownFlush = Duration.millis(500)
/** How long pi's own shutdown may take once the unreachable timeout has passed, before the process just exits. */
const forcedExitAfter = Duration.seconds(5)
/** How long a prompt may take to start before the next message is handed over anyway. */
const promptStartTimeout = Duration.seconds(60)

/**
 * One extension instance. It connects at `session_start` — after pi's own
 * start-up checks, so a pi that cannot start never looks connected; its
 * `Hello` rides in the connection's upgrade request — and pi waits for the
 * first sync there, so the run's tools exist before the first prompt.
 */
const instance = (pi: ExtensionAPI, initial: AgentEnvironment.Settings) => {
  /** Known from the start, or (pooled) once the run assigns an agent. */
  let config: AgentEnvironment.Agent | undefined = "agentId" in initial ? initial : undefined
  let slot: Slot = config === undefined ? emptySlot() : slotFor(config)
  const scope = Effect.runSync(Scope.make())
  let live = true
  /**
   * Told to shut down: pi starts no model request and takes no message from
   * then on, but what it reports while its work ends (the aborted answer, with
   * its usage) still reaches the run before the connection closes.
   */
  let shuttingDown = false
  const working = () => live && !shuttingDown
  /** From `session_start` on; pi's actions (`setActiveTools`, `sendUserMessage`, …) work from then. */
  let ctx: ExtensionContext | undefined
  let client: AgentClient.AgentClient | undefined
  /** Freezes the agent while its run is unreachable (once it has synced). */
  const deadman = Effect.runSync(
    Deadman.make({
      timeout: initial.unreachableTimeout,
      onResumed: (pause) => Effect.suspend(() => (client === undefined ? Effect.void : client.emit({ _tag: "AgentPaused", ...pause }))),
      onTimeout: Effect.suspend(() => expire)
    }).pipe(Scope.extend(scope))
  )
  /** A prompt handed to pi whose run has not started yet. */
  let starting: symbol | undefined
  /**
   * pi fixes a run's tools when the run starts. A tool added or removed during
   * a run ends it after the current tool batch (`restart`), and a new run, with
   * the new tools, continues where it stopped.
   */
  let toolsChanged = false
  let restart = false
  const registered = new Set<string>()
  const deliveries = Session.deliveries(pi)
  /** This pi continues a saved conversation that stopped mid-work: it goes on once synced. */
  let continueWork = false

  const background = (effect: Effect.Effect<void>) => {
    if (live) Effect.runFork(Effect.forkIn(effect, scope))
  }
  const stop = Effect.suspend(() => {
    live = false
    if (slot.stop === stopNow) slot.stop = undefined
    return Scope.close(scope, Exit.void)
  })
  const stopNow = () => Effect.runPromise(stop)

  const emit = (event: Protocol.AgentEvent) => {
    if (live && client !== undefined) Effect.runFork(client.emit(event))
  }

  const activate = (name: string, on: boolean) => {
    if (!live || ctx === undefined) return
    if (!ctx.isIdle()) toolsChanged = true
    const active = pi.getActiveTools().filter((tool) => tool !== name)
    pi.setActiveTools(on ? [...active, name] : active)
  }

  const register = (tool: Protocol.ToolDefinition) => {
    registered.add(tool.name)
    pi.registerTool({
      name: tool.name,
      label: tool.name,
      description: tool.description,
      parameters: tool.parameters as ToolDefinition["parameters"],
      execute: async (toolCallId, params, signal) => {
        if (client === undefined) throw new Error("ramure: not connected")
        // One ramure call per execution, even when the model reuses an id (or sends none); re-sent
        // after a reconnect under the same id, it runs once.
        const callId = `${toolCallId || "call"}#${++slot.calls}`
        const exit = await Effect.runPromiseExit(client.call(tool.name, params, callId), signal ? { signal } : {})
        if (Exit.isFailure(exit)) throw new Error(Cause.isInterruptedOnly(exit.cause) ? "tool call aborted" : Cause.pretty(exit.cause))
        if (exit.value.isError) throw new Error(exit.value.text)
        if (toolsChanged) restart = true
        return { content: [{ type: "text", text: exit.value.text }], details: {}, terminate: toolsChanged }
      }
    })
    activate(tool.name, true)
  }

  /**
   * Hand queued messages to pi, in order, synchronously (so a message logged
   * before a tool result reaches pi before that result). Idle: the message
   * becomes a prompt, and later ones wait for its `agent_start` (pi rejects a
   * second prompt before it). Busy: it steers the running agent.
   */
  const pump = () => {
    while (working() && ctx !== undefined && starting === undefined && slot.mailbox.length > 0) {
      const idle = ctx.isIdle()
      const message = slot.mailbox.shift()!
      pi.sendUserMessage(message.text, idle ? undefined : { deliverAs: "steer" })
      deliveries.handed(message.text, message.seq)
      if (idle) {
        const token = (starting = Symbol("prompt"))
        // A prompt that fails before its run starts never sends agent_start.
        background(Effect.delay(
          Effect.sync(() => {
            if (starting !== token) return
            starting = undefined
            pump()
          }),
          promptStartTimeout
        ))
      }
    }
  }

  /**
   * After a run: continue it if it was ended for new tools, and deliver a
   * message steered in the instant between pi's last look at its queue and the
   * end of the run (it would stay queued). Either takes a new run, started by
   * a hidden message that the model never sees.
   */
  const afterRun = (endedForTools: boolean) =>
    Effect.gen(function* () {
      yield* Effect.sync(() => ctx?.isIdle() === true).pipe(
        Effect.repeat({ schedule: Schedule.spaced("25 millis").pipe(Schedule.upTo("2 seconds")), until: (idle) => idle })
      )
      if (!working() || !ctx?.isIdle() || starting !== undefined || slot.mailbox.length > 0) return
      if (endedForTools || ctx.hasPendingMessages()) {
        pi.sendMessage({ customType: continueType, content: "(continue)", display: false }, { triggerTurn: true })
      }
    })

  const onEntry = (body: Protocol.EntryBody): Effect.Effect<void> =>
    Effect.sync(() => {
      slot.lastSeq++
      switch (body._tag) {
        case "ToolAdded":
          slot.tools.set(body.tool.name, body.tool)
          return register(body.tool)
        case "ToolRemoved":
          slot.tools.delete(body.name)
          return activate(body.name, false)
        case "UserMessage":
          // Already in the conversation this pi continued.
          if (slot.lastSeq <= slot.delivered) return
          slot.mailbox.push({ text: body.text, seq: slot.lastSeq })
          return pump()
        case "Shutdown": {
          const busy = live && ctx !== undefined && !ctx.isIdle()
          shuttingDown = true
          if (live && ctx !== undefined) {
            // Interactive pi shuts down once its work ends: end it now (a tool running is aborted).
            if (busy) ctx.abort()
            ctx.shutdown()
            // rpc mode only notes the request until its next command: ask as a signal would.
            if (!ctx.hasUI) process.kill(process.pid, "SIGTERM")
          }
          // Busy, the connection closes once pi's aborted work has ended (`agent_end`), or after a moment.
          return void Effect.runFork(busy ? Effect.delay(stop, shutdownFlush) : stop)
        }
        case "ToolResult":
          return
      }
    }).pipe(
      // A pi API that throws must not end the connection.
      Effect.catchAllDefect((defect) => Effect.sync(() => ctx?.ui.notify(`ramure: ${String(defect)}`, "error")))
    )

  /** The agent's connection, once an older instance of this agent, if any, has let go. */
  const connect = (config: AgentEnvironment.Agent) =>
    Effect.gen(function* () {
      const previous = slot.stop
      slot.stop = stopNow
      if (previous !== undefined) yield* Effect.promise(previous)
      const connected = yield* AgentClient.make({
        url: config.url,
        agentId: config.agentId,
        token: config.token,
        ...(config.addressFile === undefined ? {} : {
          address: RunAddress.read(config.addressFile),
          addressChanged: yield* RunAddress.changes(config.addressFile).pipe(Scope.extend(scope))
        }),
        heartbeat,
        onEntry,
        onReachable: deadman.link,
        onBudget,
        ...(slot.lastSeq > 0 ? { resume: { lastSeq: slot.lastSeq, tools: [...slot.tools.values()] } } : {})
      }).pipe(Scope.extend(scope))
      client = connected
      return connected
    })

  /** Stopped for its budget: the turn in progress ends now (its process is failing). */
  const onBudget = (budget: Protocol.Budget) =>
    Effect.sync(() => {
      if (budget.state === "stopped" && live && ctx !== undefined && !ctx.isIdle()) ctx.abort()
    })

  /**
   * The turn's request does not go out: pi's turn is aborted before it. The
   * aborted answer pi then ends is no answer of the model, and is not reported.
   */
  let refused = false
  const refuse = () => {
    if (ctx === undefined || ctx.isIdle()) return
    refused = true
    ctx.abort()
  }

  /**
   * A model request is about to go: report the turn, and for an agent under
   * a budget hold the request until the run has answered it (and while the
   * budget is paused). Stopped (or shut down meanwhile, or before), the turn
   * is aborted instead.
   */
  const beforeRequest = (): Promise<void> | undefined => {
    // Told to shut down (pi may still be finishing its tool batch): no model request goes out any more.
    if (!working()) return void refuse()
    const connected = client
    if (connected === undefined) return undefined
    const turn = connected.emit({ _tag: "TurnStarted" })
    if (!connected.budget().limited) return void Effect.runFork(turn)
    // A held turn ends when the run asks the agent to shut down: its pi can then stop.
    const answered = Effect.raceFirst(connected.awaitTurn, Effect.as(connected.shutdown, "stopped" as const))
    return Effect.runPromise(Effect.zipRight(turn, answered)).then((state) => (state === "stopped" ? refuse() : undefined))
  }

  /** The run is unreachable for good: say so and stop pi (its own shutdown; the process exits if that hangs). */
  const expire = Effect.sync(() => {
    const timeout = Duration.format(initial.unreachableTimeout)
    process.stderr.write(`\nramure: the run of agent ${config?.agentId} has been unreachable for ${timeout}: stopping\n`)
    // Outside the extension's scope, which pi's shutdown closes.
    Effect.runFork(Effect.delay(Effect.sync(() => process.exit(1)), forcedExitAfter))
    process.kill(process.pid, "SIGTERM")
  })

  /** Synced: hand pi what is queued (or, a continued conversation that stopped mid-work, go on with it). */
  const onSynced = Effect.sync(() => {
    for (const name of registered) if (!slot.tools.has(name)) activate(name, false)
    pump()
    if (continueWork) {
      continueWork = false
      if (starting === undefined && ctx?.isIdle() === true) {
        pi.sendMessage({ customType: continueType, content: "(continue)", display: false }, { triggerTurn: true })
      }
    }
    // The functions a start runs have run: the next pi loads them compiled.
    background(Effect.sync(() => host().saveCodeCache()))
  })

  /** Connect as the agent and wait for the first sync; without its run this pi has no purpose: say why and leave. */
  const start = async (config: AgentEnvironment.Agent) => {
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const connected = yield* connect(config)
        for (const tool of slot.tools.values()) register(tool)
        yield* connected.synced.pipe(
          Effect.timeoutFail({
            duration: syncTimeout,
            onTimeout: () =>
              new AgentClient.AgentClientError({
                agent: config.agentId,
                message: `no answer from ${config.url} within ${Duration.format(syncTimeout)}`
              })
          })
        )
        yield* onSynced
      })
    )
    if (Exit.isFailure(exit)) return leave(`agent ${config.agentId} could not connect to its run`, exit.cause)
  }
  const leave = async (what: string, cause: Cause.Cause<unknown>) => {
    await stopNow()
    const error = Cause.squash(cause)
    const reason = error instanceof Error ? error.message : String(error)
    process.stderr.write(`\nramure: ${what}: ${reason}\n`)
    process.exit(1)
  }

  /** A pooled pi: wait (without holding up pi's start-up) for the agent it becomes, become it, connect. */
  const awaitAgent = async (pool: AgentEnvironment.PoolMember) => {
    const exit = await Effect.runPromiseExit(
      AgentClient.awaitAssignment({ url: pool.url, memberId: pool.memberId, token: pool.token, heartbeat })
    )
    if (Exit.isFailure(exit)) return leave(`pool member ${pool.memberId} was not assigned an agent`, exit.cause)
    const { agentId, cwd, secret, systemPrompt } = exit.value
    const adopted = await Effect.runPromiseExit(Effect.tryPromise({
      try: () => Identity.adopt(pi, { agentId, cwd, startCwd: process.cwd(), systemPrompt }),
      catch: (error) => error
    }))
    if (Exit.isFailure(adopted)) return leave(`pool member ${pool.memberId} could not become agent ${agentId}`, adopted.cause)
    // From now on the pi connects as the agent, with the agent's own secret (the run put it in its address file too).
    const { memberId: _member, ...rest } = pool
    config = { ...rest, token: secret, agentId }
    slot = slotFor(config)
    await start(config)
  }

  // Frozen while the run is unreachable: the request or tool in progress goes on, no new one starts.
  pi.on("before_provider_request", () => deadman.hold("request"))
  pi.on("before_provider_request", beforeRequest)
  pi.on("tool_call", () => deadman.hold("tool"))
  pi.on("session_start", async (_event, sessionCtx) => {
    ctx = sessionCtx
    // A pi started again for a resumed run continues its saved conversation.
    if (slot.lastSeq === 0 && slot.delivered === 0) {
      const saved = Session.saved(sessionCtx.sessionManager.getBranch())
      slot.delivered = saved.delivered
      slot.calls = saved.toolCalls
      continueWork = saved.unfinished
    }
    const identity = Identity.current()
    if (identity !== undefined) await Identity.registerBuiltIns(pi, identity)
    if (config !== undefined) return start(config)
    if ("memberId" in initial) {
      void preloadProvider(sessionCtx.model?.api)
      void awaitAgent(initial)
    }
  })
  pi.on("session_shutdown", () => stopNow())
  pi.on("agent_start", () => {
    emit({ _tag: "WorkStarted" })
    starting = undefined
    pump()
  })
  pi.on("agent_end", (event) => {
    emit({ _tag: "WorkEnded" })
    if (shuttingDown) return void stopNow()
    const endedForTools = restart && (event.messages.at(-1) as any)?.role === "toolResult"
    toolsChanged = restart = false
    pump()
    background(afterRun(endedForTools))
  })
  pi.on("context", (event) => ({
    messages: event.messages.filter((message: any) => !(message.role === "custom" && message.customType === continueType))
  }))
  pi.on("turn_end", () => emit({ _tag: "TurnEnded" }))
  pi.on("message_end", (event) => {
    const message: any = event.message
    if (message.role === "user") deliveries.userMessageEnded(message.content)
    if (message.role === "assistant" && refused) return void (refused = false)
    const forwarded = messageEvent(message, initial.textCap)
    if (forwarded !== undefined) emit(forwarded)
    if (message.role === "assistant" && message.stopReason === "error" && message.errorMessage) {
      emit({ _tag: "ModelError", message: truncate(String(message.errorMessage), initial.textCap).text })
    }
  })
  // The run records calls of its own tools itself: only pi's own (bash, read, edit, …) are reported.
  pi.on("tool_execution_start", (event) => {
    if (!registered.has(event.toolName)) emit({ _tag: "ToolExecutionStarted", toolCallId: event.toolCallId, tool: event.toolName })
  })
  pi.on("tool_execution_end", (event) => {
    if (registered.has(event.toolName)) return
    emit({
      _tag: "ToolExecutionEnded",
      toolCallId: event.toolCallId,
      tool: event.toolName,
      isError: event.isError,
      result: truncate(textOf(event.result?.content), initial.textCap).text
    })
  })
}

/**
 * pi extension factory: connect this pi to its ramure run as its agent, or
 * (a pi started for a warm pool) wait to be assigned one. No-op outside a run.
 */
export default function ramure(pi: ExtensionAPI): void {
  // A pooled pi drops RAMURE_POOL_MEMBER when it becomes an agent (see `Identity.adopt`).
  const config = AgentEnvironment.parse(process.env)
  if (config === undefined) return
  instance(pi, config)
  Identity.installPromptHooks(pi)
}
