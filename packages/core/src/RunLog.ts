/**
 * The run's log: every `RunEvent` is numbered, timestamped, folded into the
 * run's status and published at once, and written by the `LogSink` in
 * batches (one write per batch, off the caller's fiber). Whatever depends on
 * an entry being on disk — telling an agent something — waits for it with
 * `durable`. A write that fails fails the run: from then on nothing more is
 * durable, and only the run's own entries (its processes' ends, its own end
 * and why) are still written.
 */
import { Chunk, Context, Deferred, Effect, Fiber, FiberId, Layer, Option, PubSub, Queue, Stream } from "effect"
import { LogSink, type LogWriteFailed } from "./LogSink.js"
import type { LogEntry, RunEvent, Subject } from "./RunEvent.js"
import * as RunStatus from "./RunStatus.js"

export interface EntriesOptions {
  /** Only this agent's entries. */
  readonly agent?: string | undefined
  /** Only entries numbered above this. */
  readonly after?: number | undefined
}

export interface RunLogService {
  /** Record an event. Never fails: a failed write fails the run (see `failed`). */
  readonly log: (subject: Subject, event: RunEvent) => Effect.Effect<LogEntry>
  /** `log`, as a plain call, for callers that must log in the same synchronous step as something else. */
  readonly unsafeLog: (subject: Subject, event: RunEvent) => LogEntry
  /** Completes once entry `n` is written; fails if the log can no longer be written. */
  readonly durable: (n: number) => Effect.Effect<void, LogWriteFailed>
  /** The log from its start (or `after`), then live entries until the log closes. */
  readonly entries: (options?: EntriesOptions) => Stream.Stream<LogEntry>
  /** What has been logged so far (read back from the sink once written). */
  readonly history: (options?: EntriesOptions) => Effect.Effect<ReadonlyArray<LogEntry>>
  readonly status: Effect.Effect<RunStatus.RunStatus>
  /** Fails with the first write failure; the root process races it. */
  readonly failed: Effect.Effect<never, LogWriteFailed>
}

export class RunLog extends Context.Tag("@ramure/core/RunLog")<RunLog, RunLogService>() {}

type Published = LogEntry | typeof End
const End = Symbol("End")

const matches = (entry: LogEntry, options: EntriesOptions): boolean =>
  entry.n > (options.after ?? 0) && (options.agent === undefined || entry.agent === options.agent)

/** The log of a run; closing the layer writes what is pending and ends every open `entries` stream. */
export const layer: Layer.Layer<RunLog, never, LogSink> = Layer.scoped(
  RunLog,
  Effect.gen(function* () {
    const sink = yield* LogSink
    const status = RunStatus.empty()
    const hub = yield* PubSub.unbounded<Published>()
    const pending = yield* Queue.unbounded<LogEntry>()
    const failure = yield* Deferred.make<never, LogWriteFailed>()
    let n = 0
    let written = 0
    /** The first entry of the first batch that could not be written: from it on, nothing is `durable`. */
    let lost: number | undefined
    let closed = false
    /** Completed (and replaced) after every batch. */
    let batchDone = yield* Deferred.make<void>()

    const writeBatch = (entries: ReadonlyArray<LogEntry>) =>
      Effect.suspend(() => {
        // Once a write failed, only the run's own entries are written: what room is left is for why the run ends.
        const batch = lost === undefined ? entries : entries.filter((entry) => entry.agent === undefined)
        return batch.length === 0 ? Effect.void : sink.write(batch).pipe(
          Effect.matchEffect({
            // The first failure is the run's.
            onFailure: (error) => Effect.zipRight(Effect.sync(() => void (lost ??= entries[0]!.n)), Deferred.fail(failure, error)),
            onSuccess: () => Effect.sync(() => void (written = batch[batch.length - 1]!.n))
          })
        )
      }).pipe(
        Effect.zipRight(Effect.suspend(() => {
          const done = batchDone
          batchDone = Deferred.unsafeMake<void>(FiberId.none)
          return Deferred.succeed(done, undefined)
        }))
      )
    // A batch taken is a batch written: interruption (the layer closing) waits for the write.
    const writer = yield* Effect.uninterruptibleMask((restore) =>
      restore(Queue.takeBetween(pending, 1, Number.MAX_SAFE_INTEGER)).pipe(
        Effect.flatMap((batch) => writeBatch(Chunk.toReadonlyArray(batch)))
      )
    ).pipe(Effect.forever, Effect.forkDaemon)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true
        yield* Fiber.interrupt(writer)
        const rest = yield* Queue.takeAll(pending)
        if (rest.length > 0) yield* writeBatch([...rest])
        yield* PubSub.publish(hub, End)
      })
    )

    const durable = (target: number): Effect.Effect<void, LogWriteFailed> =>
      Effect.suspend(() =>
        lost !== undefined && target >= lost
          ? Deferred.await(failure)
          : written >= target
          ? Effect.void
          : Effect.zipRight(Deferred.await(batchDone), durable(target))
      )

    const unsafeLog = (subject: Subject, event: RunEvent): LogEntry => {
      const entry: LogEntry = {
        n: ++n,
        ts: new Date().toISOString(),
        process: subject.process,
        ...(subject.agent === undefined ? {} : { agent: subject.agent }),
        event
      }
      RunStatus.step(status, entry)
      // After the layer closed nothing writes any more: the entry is folded and returned, not stored.
      if (!closed) {
        pending.unsafeOffer(entry)
        hub.unsafeOffer(entry)
      }
      return entry
    }

    const history = (options: EntriesOptions = {}, upTo = n) =>
      Effect.zipRight(
        Effect.ignore(durable(upTo)),
        Effect.map(sink.read({ agent: options.agent }), (all) => all.filter((e) => e.n <= upTo && matches(e, options)))
      )

    const entries = (options: EntriesOptions = {}): Stream.Stream<LogEntry> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const subscription = yield* PubSub.subscribe(hub)
          // Everything logged before the subscription comes from the sink, once it is written.
          const upTo = n
          const ended = closed
          const past = Stream.fromIterable(yield* history(options, upTo))
          if (ended) return past
          const live = Stream.fromQueue(subscription).pipe(
            Stream.takeWhile((item): item is LogEntry => item !== End),
            Stream.filter((entry) => entry.n > upTo && matches(entry, options))
          )
          return Stream.concat(past, live)
        })
      )

    return {
      log: (subject, event) => Effect.sync(() => unsafeLog(subject, event)),
      unsafeLog,
      durable,
      entries,
      history: (options) => history(options),
      status: Effect.sync(() => RunStatus.snapshot(status)),
      failed: Deferred.await(failure)
    }
  })
)

/** Log an event about `subject`. */
export const log = (subject: Subject, event: RunEvent): Effect.Effect<LogEntry, never, RunLog> =>
  Effect.flatMap(RunLog, (runLog) => runLog.log(subject, event))

/** The first entry matching `predicate`, waiting for it (none if the log closes first). */
export const awaitEntry = (
  runLog: RunLogService,
  predicate: (entry: LogEntry) => boolean,
  options?: EntriesOptions
): Effect.Effect<Option.Option<LogEntry>> => Stream.runHead(Stream.filter(runLog.entries(options), predicate))

