/**
 * Where a run's log is stored. `RunLog` numbers and folds the entries and
 * hands them to the sink in batches; the sink writes each batch whole (never
 * a torn line) before the write completes, and reads entries back for late
 * subscribers (`agent.events`, `ramure tail -f`) so that they need not stay
 * in memory.
 */
import { Context, Effect, Layer } from "effect"
import type { LogWriteFailed } from "./Errors.js"
import type { LogEntry } from "./RunEvent.js"

export { LogWriteFailed } from "./Errors.js"

export interface ReadOptions {
  /** Only this agent's entries. */
  readonly agent?: string | undefined
}

export class LogSink extends Context.Tag("@ramure/core/LogSink")<
  LogSink,
  {
    /** Append a batch (in order); when it succeeds, a crash of this process loses none of it. */
    readonly write: (entries: ReadonlyArray<LogEntry>) => Effect.Effect<void, LogWriteFailed>
    /** What was written, in order. */
    readonly read: (options: ReadOptions) => Effect.Effect<ReadonlyArray<LogEntry>>
  }
>() {}

/** The file an entry belongs to: its agent's own log, or the run's. */
export const fileOf = (entry: Pick<LogEntry, "agent">): string =>
  entry.agent === undefined ? RUNTIME_FILE : `${entry.agent}.jsonl`

export const RUNTIME_FILE = "_runtime.jsonl"

/** Keeps entries in memory; read them back with `MemoryLog`. */
export class MemoryLog extends Context.Tag("@ramure/core/MemoryLog")<
  MemoryLog,
  { readonly entries: Effect.Effect<ReadonlyArray<LogEntry>> }
>() {}

export const layerMemory: Layer.Layer<LogSink | MemoryLog> = Layer.effectContext(
  Effect.sync(() => {
    const entries: Array<LogEntry> = []
    return Context.make(LogSink, {
      write: (batch) => Effect.sync(() => void entries.push(...batch)),
      read: ({ agent }) => Effect.sync(() => (agent === undefined ? entries.slice() : entries.filter((e) => e.agent === agent)))
    }).pipe(Context.add(MemoryLog, { entries: Effect.sync(() => entries.slice()) }))
  })
)
