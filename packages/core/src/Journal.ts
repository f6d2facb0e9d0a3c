/**
 * The journal of a resumed run: what the run's log says already happened,
 * for the program that runs again from its start. Each process's operations
 * are matched with their journaled occurrences by what they are (an agent by
 * its name, an emit by its type, a step by its name, a child by its path), in
 * order of occurrence: a match is replayed — not done again —, an operation
 * the journal does not have is done for real. Operations started at the same
 * time (`Effect.all`) may be journaled in any order, so an operation is
 * matched by what it is, not by its place; a journaled operation the program
 * never does again is a `ResumeDiverged` when its process ends.
 *
 * What the handler of a tool call or an endpoint call did (`LogEntry.call`)
 * is matched when the call runs again, and never expected: a call that was
 * answered is not made again.
 *
 * An agent the journal has is re-adopted (`agent`): its replication log goes
 * on where it was, calls it had answered are not run again, and its tools are
 * given again without the agent being told.
 *
 * A fresh run has an empty journal: nothing is replayed.
 */
import type * as Protocol from "@ramure/protocol/Protocol"
import { Context, Deferred, Effect, FiberId, Layer, Option } from "effect"
import { ResumeDiverged } from "./Errors.js"
import { type LogEntry, type RunEvent, toEntryBody } from "./RunEvent.js"
import { RunInfo } from "./RunInfo.js"
import { RunLog } from "./RunLog.js"

export { ResumeDiverged }

/** How a journaled process ended. */
export type Ended = Extract<RunEvent, { readonly _tag: "ProcessEnded" }>

/** What the journal has of an agent: how a resumed run takes it over. */
export interface AgentJournal {
  readonly id: string
  readonly created: Extract<RunEvent, { readonly _tag: "AgentCreated" }>
  /** How many entries its replication log had: the next one is `replicated + 1`. */
  readonly replicated: number
  /** Its calls that were answered (the agent may send them again: they are not run again). */
  readonly answered: ReadonlyArray<string>
  /** Its calls that were made and not answered: they run when the agent sends them again, and are not logged again. */
  readonly inFlight: ReadonlySet<string>
  /** Its tools as the agent has them. */
  readonly tools: ReadonlyMap<string, typeof Protocol.ToolDefinition.Type>
  /** It had been released (or had crashed): there is nothing to take over. */
  readonly ended: boolean
  /** Its program had failed to start: `Agent.make` fails again, the same way. */
  readonly startFailed: Extract<RunEvent, { readonly _tag: "AgentStartFailed" }> | undefined
}

/**
 * A call the agent made and the run answered before it was resumed. Its
 * handler (one the process gave with `agent.on`) runs again while the
 * program catches up, to rebuild the process's state, the way a Temporal
 * workflow's code is replayed: what it does through ramure is taken from the
 * journal (not done again) and its answer is not sent again.
 */
export interface AnsweredCall {
  readonly agent: string
  readonly callId: string
  readonly tool: string
  readonly args: unknown
}

/** A journaled step's result. */
export type Step = Extract<RunEvent, { readonly _tag: "StepCompleted" }>

export interface JournalService {
  /** Whether this run is resumed (its journal is not empty). */
  readonly resuming: boolean
  /** The number of the journal's last entry (0 for a fresh run): later entries are this run's own. */
  readonly last: number
  /** When the process at `path` first started, if it did before. */
  readonly startedAt: (path: string) => Option.Option<number>
  /** How the process at `path` ended, if it did before. */
  readonly ended: (path: string) => Option.Option<Ended>
  /**
   * Take the next journaled occurrence of an operation (e.g. `emit submitted`,
   * `agent builder`) in the process at `path`: its entry if there is one.
   */
  readonly take: (path: string, kind: Kind, key: string) => Effect.Effect<Option.Option<LogEntry>>
  /** The journaled operations of the process at `path` that the program has not done again; a divergence if any. */
  readonly settle: (path: string) => Effect.Effect<void, ResumeDiverged>
  /** The journaled result of the step `name` of the process at `path` (its next occurrence). */
  readonly step: (path: string, name: string) => Option.Option<Step>
  /** What the journal has of the agent `id`. */
  readonly agent: (id: string) => Option.Option<AgentJournal>
  /** Every agent id the journal has (a resumed run never gives one to another agent). */
  readonly agentIds: ReadonlyArray<string>
  /** The calls that agents still live had made and the run had answered, in the order they were made (see `AnsweredCall`). */
  readonly answered: ReadonlyArray<AnsweredCall>
  /**
   * Completes once the program has done again everything its journal
   * expects (at once for a fresh run): from then on it does new work.
   */
  readonly caughtUp: Effect.Effect<void>
  /** What was replayed so far rather than done again. */
  readonly replayed: Effect.Effect<Replayed>
}

/** What a resumed run replayed rather than did again. */
export interface Replayed {
  /** Processes that had ended: their outcome was returned. */
  readonly processes: number
  /** `Process.step`s that had completed. */
  readonly steps: number
  /** Messages the agents had been sent already. */
  readonly messages: number
}

/** The operations the journal matches, and the events that journal them. */
export type Kind = "agent" | "emit" | "expose" | "child" | "machine" | "send" | "connect"

/** The key of a message the program sent an agent. */
export const sendKey = (agent: string, text: string): string => `${agent}\u0000${text}`

/** The key of a connection from one agent to another. */
export const connectKey = (from: string, to: string): string => `${from}\u0000${to}`

const keyOf = (entry: LogEntry): readonly [Kind, string] | undefined => {
  const event = entry.event
  switch (event._tag) {
    case "AgentCreated":
      return ["agent", event.name]
    case "ProcessEmitted":
      return ["emit", event.type]
    case "EndpointExposed":
      return ["expose", event.name]
    case "MachineCreated":
      return ["machine", event.machine.id]
    case "MessageDelivered":
      // What the program sent; not a message along a `connect` edge or from `ramure send`.
      return event.from === undefined && event.via === undefined && entry.agent !== undefined
        ? ["send", sendKey(entry.agent, event.text)]
        : undefined
    case "ConnectionAdded":
      return entry.agent === undefined ? undefined : ["connect", connectKey(entry.agent, event.to)]
    case "ProcessStarted":
      return event.parent === undefined ? undefined : ["child", entry.process]
    default:
      return undefined
  }
}

/** An operation as a divergence names it. */
const describeKey = (entry: LogEntry): string => {
  const [kind, key] = keyOf(entry)!
  return describe(kind, key)
}

const describe = (kind: Kind, key: string): string => {
  if (kind === "send" || kind === "connect") {
    const [agent, rest] = key.split("\u0000")
    const shown = rest!.length > 60 ? `${rest!.slice(0, 60)}…` : rest!
    return kind === "send" ? `to ${agent}: ${JSON.stringify(shown)}` : `${agent} to ${shown}`
  }
  return key
}

export class Journal extends Context.Tag("@ramure/core/Journal")<Journal, JournalService>() {}

/** The journal of the given log entries (empty for a fresh run). */
export const make = (entries: ReadonlyArray<LogEntry>): JournalService => {
  const started = new Map<string, number>()
  const ended = new Map<string, Ended>()
  /** Per process and kind: the journaled operations, those a replay has taken first. */
  const operations = new Map<string, { readonly entries: Array<LogEntry>; taken: number }>()
  const steps = new Map<string, Array<Step>>()
  /** What each process did that its journal does not have. */
  const unjournaled = new Map<string, Array<string>>()
  for (const entry of entries) {
    const event = entry.event
    if (event._tag === "ProcessStarted" && !started.has(entry.process)) started.set(entry.process, Date.parse(entry.ts))
    if (event._tag === "ProcessEnded") ended.set(entry.process, event)
    if (event._tag === "StepCompleted") {
      const key = `${entry.process}\u0000${event.name}`
      steps.set(key, [...(steps.get(key) ?? []), event])
    }
    const key = keyOf(entry)
    if (key === undefined) continue
    // A child is an operation of its parent.
    const owner = key[0] === "child" && event._tag === "ProcessStarted" ? event.parent! : entry.process
    const slot = `${owner}\u0000${key[0]}`
    const list = operations.get(slot)
    if (list === undefined) operations.set(slot, { entries: [entry], taken: 0 })
    else list.entries.push(entry)
  }
  const { agents, answered } = agentsOf(entries)

  // What the program must do again before it is caught up: the operations (not a call's) and steps of processes that had not ended.
  const live = (slot: string) => !ended.has(slot.slice(0, slot.indexOf("\u0000")))
  let expected = 0
  for (const [slot, list] of operations) if (live(slot)) expected += list.entries.filter((e) => e.call === undefined).length
  for (const [slot, list] of steps) if (live(slot)) expected += list.length
  const caughtUp = Deferred.unsafeMake<void>(FiberId.none)
  const progress = () => {
    if (--expected <= 0) Deferred.unsafeDone(caughtUp, Effect.void)
  }
  if (expected <= 0) Deferred.unsafeDone(caughtUp, Effect.void)
  const replayedProcesses = new Set<string>()
  let replayedSteps = 0
  let replayedMessages = 0

  return {
    resuming: entries.length > 0,
    last: entries.at(-1)?.n ?? 0,
    startedAt: (path) => Option.fromNullable(started.get(path)),
    ended: (path) => {
      const found = ended.get(path)
      if (found !== undefined) replayedProcesses.add(path)
      return Option.fromNullable(found)
    },
    take: (path, kind, key) =>
      Effect.sync(() => {
        const list = operations.get(`${path}\u0000${kind}`)
        const at = list === undefined ? -1 : list.entries.findIndex((entry, i) => i >= list.taken && keyOf(entry)?.[1] === key)
        if (list === undefined || at === -1) {
          // Kept to name a divergence: only while the program is catching up, and only the first few.
          const seen = unjournaled.get(path) ?? []
          if (expected > 0 && seen.length < 3) unjournaled.set(path, [...seen, `${kind} ${describe(kind, key)}`])
          return Option.none()
        }
        // Taken ones come first; the order of the others is kept.
        const [match] = list.entries.splice(at, 1)
        list.entries.splice(list.taken, 0, match!)
        list.taken++
        if (kind === "send") replayedMessages++
        if (match!.call === undefined) progress()
        return Option.some(match!)
      }),
    settle: (path) =>
      Effect.suspend(() => {
        // What a call's handler did is not expected again: the call may have been answered.
        const untaken = [...operations.entries()].flatMap(([slot, list]) =>
          slot.startsWith(`${path}\u0000`)
            ? list.entries.slice(list.taken).filter((e) => e.call === undefined).map((e) => `${slot.split("\u0000")[1]} ${describeKey(e)}`)
            : []
        )
        if (untaken.length === 0) return Effect.void
        const got = unjournaled.get(path)
        return Effect.fail(
          new ResumeDiverged({ process: path, got: got === undefined ? "" : got.join(", "), expected: untaken })
        )
      }),
    step: (path, name) => {
      const step = steps.get(`${path}\u0000${name}`)?.shift()
      if (step !== undefined) {
        replayedSteps++
        progress()
      }
      return Option.fromNullable(step)
    },
    agent: (id) => Option.fromNullable(agents.get(id)),
    agentIds: [...agents.keys()],
    answered,
    caughtUp: Deferred.await(caughtUp),
    replayed: Effect.sync(() => ({ processes: replayedProcesses.size, steps: replayedSteps, messages: replayedMessages }))
  }
}

/** What the journal has of each agent it created, and the answered calls of those still live, in the order they were made. */
const agentsOf = (
  entries: ReadonlyArray<LogEntry>
): { readonly agents: ReadonlyMap<string, AgentJournal>; readonly answered: ReadonlyArray<AnsweredCall> } => {
  const answered: Array<AnsweredCall> = []
  interface Draft {
    created?: AgentJournal["created"]
    replicated: number
    answered: Array<string>
    called: Map<string, AnsweredCall>
    inFlight: Set<string>
    tools: Map<string, typeof Protocol.ToolDefinition.Type>
    ended: boolean
    startFailed?: AgentJournal["startFailed"]
  }
  const drafts = new Map<string, Draft>()
  for (const entry of entries) {
    if (entry.agent === undefined) continue
    let agent = drafts.get(entry.agent)
    if (agent === undefined) drafts.set(entry.agent, (agent = { replicated: 0, answered: [], called: new Map(), inFlight: new Set(), tools: new Map(), ended: false }))
    const event = entry.event
    if (toEntryBody(event) !== undefined) agent.replicated++
    switch (event._tag) {
      case "AgentCreated":
        agent.created = event
        break
      case "ToolCalled":
        agent.inFlight.add(event.callId)
        agent.called.set(event.callId, { agent: entry.agent, callId: event.callId, tool: event.tool, args: event.args })
        break
      case "ToolReturned": {
        agent.inFlight.delete(event.callId)
        agent.answered.push(event.callId)
        const call = agent.called.get(event.callId)
        agent.called.delete(event.callId)
        if (call !== undefined) answered.push(call)
        break
      }
      case "ToolAdded":
        agent.tools.set(event.tool.name, event.tool)
        break
      case "ToolRemoved":
        agent.tools.delete(event.name)
        break
      case "AgentStartFailed":
        agent.startFailed = event
        agent.ended = true
        break
      case "AgentReleased":
      case "AgentCrashed":
        agent.ended = true
        break
    }
  }
  const agents = new Map<string, AgentJournal>()
  for (const [id, agent] of drafts) {
    if (agent.created === undefined) continue
    agents.set(id, {
      id,
      created: agent.created,
      replicated: agent.replicated,
      answered: agent.answered.slice(-1024),
      inFlight: agent.inFlight,
      tools: agent.tools,
      ended: agent.ended,
      startFailed: agent.startFailed
    })
  }
  return { agents, answered: answered.filter((call) => agents.get(call.agent)?.ended === false) }
}

/** The run's journal: its log so far when the run is resumed, empty otherwise. */
export const layer: Layer.Layer<Journal, never, RunLog | RunInfo> = Layer.effect(
  Journal,
  Effect.gen(function* () {
    const info = yield* RunInfo
    if (!info.resumed) return make([])
    return make(yield* (yield* RunLog).history())
  })
)
