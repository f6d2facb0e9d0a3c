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
 * A fresh run has an empty journal: nothing is replayed.
 */
import { Context, Effect, Layer, Option } from "effect"
import { ResumeDiverged } from "./Errors.js"
import type { LogEntry, RunEvent } from "./RunEvent.js"
import { RunInfo } from "./RunInfo.js"
import { RunLog } from "./RunLog.js"

export { ResumeDiverged }

/** How a journaled process ended. */
export type Ended = Extract<RunEvent, { readonly _tag: "ProcessEnded" }>

/** A journaled step's result. */
export type Step = Extract<RunEvent, { readonly _tag: "StepCompleted" }>

export interface JournalService {
  /** Whether this run is resumed (its journal is not empty). */
  readonly resuming: boolean
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
}

/** The operations the journal matches, and the events that journal them. */
export type Kind = "agent" | "emit" | "expose" | "child" | "machine"

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
    case "ProcessStarted":
      return event.parent === undefined ? undefined : ["child", entry.process]
    default:
      return undefined
  }
}

export class Journal extends Context.Tag("@ramure/core/Journal")<Journal, JournalService>() {}

/** The journal of the given log entries (empty for a fresh run). */
export const make = (entries: ReadonlyArray<LogEntry>): JournalService => {
  const started = new Map<string, number>()
  const ended = new Map<string, Ended>()
  /** Per process and kind: the journaled keys in order, and how many a replay has taken. */
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
  return {
    resuming: entries.length > 0,
    startedAt: (path) => Option.fromNullable(started.get(path)),
    ended: (path) => Option.fromNullable(ended.get(path)),
    take: (path, kind, key) =>
      Effect.suspend(() => {
        const list = operations.get(`${path}\u0000${kind}`)
        if (list === undefined) return Effect.succeed(Option.none())
        const at = list.entries.findIndex((entry, i) => i >= list.taken && keyOf(entry)?.[1] === key)
        if (at === -1) {
          unjournaled.set(path, [...(unjournaled.get(path) ?? []), `${kind} ${key}`])
          return Effect.succeed(Option.none())
        }
        // Taken ones come first; the order of the others is kept.
        const [match] = list.entries.splice(at, 1)
        list.entries.splice(list.taken, 0, match!)
        list.taken++
        return Effect.succeed(Option.some(match!))
      }),
    settle: (path) =>
      Effect.suspend(() => {
        const untaken = [...operations.entries()].flatMap(([slot, list]) =>
          slot.startsWith(`${path}\u0000`) ? list.entries.slice(list.taken).map((e) => `${slot.split("\u0000")[1]} ${keyOf(e)![1]}`) : []
        )
        if (untaken.length === 0) return Effect.void
        const got = unjournaled.get(path)
        return Effect.fail(
          new ResumeDiverged({ process: path, got: got === undefined ? "" : got.join(", "), expected: untaken })
        )
      }),
    step: (path, name) => {
      const list = steps.get(`${path}\u0000${name}`)
      return Option.fromNullable(list?.shift())
    }
  }
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
