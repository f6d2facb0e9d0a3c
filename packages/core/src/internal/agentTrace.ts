/**
 * An agent's spans, built from what is recorded about it as it comes: its
 * life (from its start to its release), each model turn (pi's `TurnStarted`
 * … `TurnEnded`, with the usage of its `MessageEnded`) and each run of one of
 * pi's own tools. Attributes follow OpenTelemetry's GenAI conventions
 * (`gen_ai.*`); the cost (in the model's currency, dollars for pi's
 * built-in models) is `gen_ai.usage.cost`. A call of one of the process's
 * tools is traced under the turn that made it (`parent`).
 *
 * Spans are made and ended in the same synchronous step as the event is
 * recorded, so a tool call that follows an event on the agent's connection
 * always finds the turn that event opened.
 *
 * @internal
 */
import { type Clock, Context, Exit, FiberId, Option, type Tracer } from "effect"
import type { RunEvent } from "../RunEvent.js"

export interface AgentTrace {
  /** The span of the agent's life. */
  readonly life: Tracer.Span
  /** Where a tool call of the agent belongs: its current model turn, else its life. */
  readonly parent: () => Tracer.Span
  /** Follow one event recorded about the agent. */
  readonly observe: (event: RunEvent) => void
  /** End every span still open, the life last: the agent is released. */
  readonly end: () => void
}

export interface Options {
  readonly tracer: Tracer.Tracer
  readonly clock: Clock.Clock
  /** The span the agent's life belongs under (the process that made it). */
  readonly parent: Option.Option<Tracer.AnySpan>
  readonly id: string
  readonly name: string
  readonly process: string
}

/** `provider/model` → its two parts (a model without a provider has none). */
export const splitModel = (model: string): { readonly provider?: string; readonly model: string } => {
  const slash = model.indexOf("/")
  return slash > 0 ? { provider: model.slice(0, slash), model: model.slice(slash + 1) } : { model }
}

/** Why a span ended in error, as its exit (the tracer turns it into the span's status). */
const failed = (message: string): Exit.Exit<never, Error> => Exit.fail(new Error(message))

interface Usage {
  input: number
  output: number
  cacheRead: number
  cacheWrite: number
  cost: number
}

const noUsage = (): Usage => ({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0, cost: 0 })

const usageAttributes = (usage: Usage) => ({
  "gen_ai.usage.input_tokens": usage.input,
  "gen_ai.usage.output_tokens": usage.output,
  "gen_ai.usage.cache_read.input_tokens": usage.cacheRead,
  "gen_ai.usage.cache_creation.input_tokens": usage.cacheWrite,
  "gen_ai.usage.cost": usage.cost
})

export const make = (options: Options): AgentTrace => {
  const { clock, tracer } = options
  const start = (
    name: string,
    parent: Option.Option<Tracer.AnySpan>,
    kind: Tracer.SpanKind,
    attributes: Record<string, unknown>
  ): Tracer.Span => {
    const span = tracer.span(name, parent, Context.empty(), [], clock.unsafeCurrentTimeNanos(), kind)
    for (const [key, value] of Object.entries(attributes)) span.attribute(key, value)
    return span
  }
  const end = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>) => span.end(clock.unsafeCurrentTimeNanos(), exit)

  const agent = { "gen_ai.agent.name": options.name, "gen_ai.agent.id": options.id }
  const life = start(`invoke_agent ${options.name}`, options.parent, "internal", {
    ...agent,
    "gen_ai.operation.name": "invoke_agent",
    "ramure.process": options.process
  })
  /** What is known of the agent's model (from `AgentCreated`). */
  let model: { readonly provider?: string; readonly model: string } | undefined
  let turns = 0
  let turn: { readonly span: Tracer.Span; readonly usage: Usage; error: string | undefined } | undefined
  /** pi's own tools running now, by call id. */
  const running = new Map<string, Tracer.Span>()
  const total = noUsage()
  /** Why the agent's life ended badly (start failure, crash). */
  let lifeError: string | undefined
  let ended = false

  const modelAttributes = () =>
    model === undefined
      ? {}
      : { "gen_ai.request.model": model.model, ...(model.provider === undefined ? {} : { "gen_ai.provider.name": model.provider }) }

  const endTools = (exit: Exit.Exit<unknown, unknown>) => {
    for (const span of running.values()) end(span, exit)
    running.clear()
  }
  const endTurn = (exit?: Exit.Exit<unknown, unknown>) => {
    if (turn === undefined) return
    endTools(Exit.interrupt(FiberId.none))
    end(turn.span, exit ?? (turn.error === undefined ? Exit.void : failed(turn.error)))
    turn = undefined
  }

  const observe = (event: RunEvent): void => {
    if (ended) return
    switch (event._tag) {
      case "AgentCreated": {
        if (event.model !== undefined) model = splitModel(event.model)
        const attributes: Record<string, unknown> = { ...modelAttributes(), "ramure.machine.kind": event.machine.kind }
        if (event.session !== undefined) attributes["ramure.tmux_session"] = event.session
        for (const [key, value] of Object.entries(attributes)) life.attribute(key, value)
        return
      }
      case "TurnStarted": {
        endTurn()
        turns++
        const span = start(model === undefined ? "chat" : `chat ${model.model}`, Option.some(life), "client", {
          ...agent,
          "gen_ai.operation.name": "chat",
          ...modelAttributes(),
          "ramure.turn": turns
        })
        turn = { span, usage: noUsage(), error: undefined }
        return
      }
      case "MessageEnded": {
        if (event.role !== "assistant" || turn === undefined) return
        const span = turn.span
        if (event.model !== undefined) span.attribute("gen_ai.response.model", splitModel(event.model).model)
        if (event.usage === undefined) return
        const usage = event.usage
        for (const sum of [turn.usage, total]) {
          sum.input += usage.input
          sum.output += usage.output
          sum.cacheRead += usage.cacheRead ?? 0
          sum.cacheWrite += usage.cacheWrite ?? 0
          sum.cost += usage.cost
        }
        for (const [key, value] of Object.entries(usageAttributes(turn.usage))) span.attribute(key, value)
        return
      }
      case "ModelError":
        if (turn !== undefined) turn.error = event.message
        return
      case "TurnEnded":
        return endTurn()
      case "ToolExecutionStarted": {
        const span = start(`execute_tool ${event.tool}`, Option.some(turn?.span ?? life), "internal", {
          ...agent,
          "gen_ai.operation.name": "execute_tool",
          "gen_ai.tool.name": event.tool,
          "gen_ai.tool.call.id": event.toolCallId,
          "gen_ai.tool.type": "function"
        })
        running.set(event.toolCallId, span)
        return
      }
      case "ToolExecutionEnded": {
        const span = running.get(event.toolCallId)
        if (span === undefined) return
        running.delete(event.toolCallId)
        span.attribute("ramure.outcome", event.isError ? "error" : "ok")
        return end(span, event.isError ? failed(event.result.slice(0, 500)) : Exit.void)
      }
      case "AgentStartFailed":
        lifeError = `failed to start: ${event.reason}`
        return
      case "AgentCrashed":
        lifeError = `crashed (exit code ${event.exitCode ?? "unknown"})${event.output === "" ? "" : `: ${event.output.slice(-500)}`}`
        return
      default:
        return
    }
  }

  return {
    life,
    parent: () => turn?.span ?? life,
    observe,
    end: () => {
      if (ended) return
      // A turn still open when the agent goes was cut short.
      endTurn(Exit.interrupt(FiberId.none))
      for (const [key, value] of Object.entries({ ...usageAttributes(total), "ramure.turns": turns })) life.attribute(key, value)
      ended = true
      end(life, lifeError === undefined ? Exit.void : failed(lifeError))
    }
  }
}
