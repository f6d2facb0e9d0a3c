/**
 * Structured run logs. Every entry is one JSON line with a timestamp, a type,
 * the path of the process it belongs to and, when it concerns an agent, the
 * agent's id.
 */
import { Context, Effect, Layer, Schema } from "effect"

export const LogEntry = Schema.Struct({
  /** ISO timestamp. */
  ts: Schema.String,
  /** Run-wide sequence number, from 1. */
  n: Schema.Number,
  type: Schema.String,
  /** Process path, e.g. `main/review`. */
  process: Schema.String,
  agent: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Unknown)
})
export type LogEntry = typeof LogEntry.Type

/** The file an entry belongs to: the agent's own log, or the run's. */
export const fileOf = (entry: Pick<LogEntry, "agent">): string =>
  entry.agent === undefined ? RUNTIME_FILE : `${entry.agent}.jsonl`

export const RUNTIME_FILE = "_runtime.jsonl"

export class LogSink extends Context.Tag("ramure/LogSink")<
  LogSink,
  {
    readonly write: (entry: LogEntry) => Effect.Effect<void>
  }
>() {}

/** Keeps entries in memory; read them back with `MemoryLog`. */
export class MemoryLog extends Context.Tag("ramure/MemoryLog")<
  MemoryLog,
  { readonly entries: Effect.Effect<ReadonlyArray<LogEntry>> }
>() {}

export const layerMemory: Layer.Layer<LogSink | MemoryLog> = Layer.effectContext(
  Effect.gen(function* () {
    const entries: Array<LogEntry> = []
    return Context.make(LogSink, { write: (entry) => Effect.sync(() => void entries.push(entry)) }).pipe(
      Context.add(MemoryLog, { entries: Effect.sync(() => entries.slice()) })
    )
  })
)
