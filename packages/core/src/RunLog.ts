/**
 * The run's log: every `RunEvent` is numbered, timestamped, folded into the
 * run's status and published at once, and written by the `LogSink` in
 * batches (one write per batch, off the caller's fiber). Whatever depends on
 * an entry being on disk — telling an agent something — waits for it with
 * `durable`. A write that fails fails the run: from then on nothing more is
 * durable, and only the run's own entries (its processes' ends, its own end
 * and why) are still written.
 */
import { Chunk, Context, Deferred, Effect, Exit, Fiber, FiberRef, Layer, Mailbox, Option, PubSub, type Scope, Stream } from "effect"
import { currentCall } from "./internal/callContext.js"
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
  /**
   * Record an event. Never fails: a failed write fails the run (see
   * `failed`). Logged by a call's handler, the entry says so (`call`).
   */
  readonly log: (subject: Subject, event: RunEvent) => Effect.Effect<LogEntry>
  /** `log`, as a plain call, for callers that must log in the same synchronous step as something else. */
  readonly unsafeLog: (subject: Subject, event: RunEvent) => LogEntry
  /** Completes once entry `n` is written; fails if the log can no longer be written. */
  readonly durable: (n: number) => Effect.Effect<void, LogWriteFailed>
  /** The log from its start (or `after`), then live entries until the log closes. */
  readonly entries: (options?: EntriesOptions) => Stream.Stream<LogEntry>
  /**
   * Follow the log from now on, cheaper than `entries` for followers that need
   * no history: subscribes at once; the effect returned runs `f` on each batch
   * of entries logged since, once the sink has taken them (whatever came while
   * `f` ran is the next batch), until the log closes. With `wanted`, only
   * batches with an entry it wants are handed over (it is asked as the batch
   * is written, so it must be quick): a follower that has nothing to do is not
   * woken.
   */
  readonly follow: <E, R>(
    f: (batch: ReadonlyArray<LogEntry>) => Effect.Effect<void, E, R>,
    wanted?: (entry: LogEntry) => boolean
  ) => Effect.Effect<Effect.Effect<void, E, R>, never, Scope.Scope>
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

/**
 * The log of a run; closing the layer writes what is pending and ends every
 * open `entries` stream. A resumed run's log goes on where the sink's ends: its
 * numbers continue, its status is the fold of everything so far.
 */
export const layer: Layer.Layer<RunLog, never, LogSink> = Layer.scoped(
  RunLog,
  Effect.gen(function* () {
    const sink = yield* LogSink
    const past = yield* sink.read({})
    const status = RunStatus.empty()
    for (const entry of past) RunStatus.step(status, entry)
    const hub = yield* PubSub.unbounded<Published>()
    // Mailboxes, not Queues: a taker waits without a Deferred, which on Node 20 costs more to make than an entry to log.
    const pending = yield* Mailbox.make<LogEntry>()
    const failure = yield* Deferred.make<never, LogWriteFailed>()
    let n = past.length === 0 ? 0 : past[past.length - 1]!.n
    let written = n
    /** The first entry of the first batch that could not be written: from it on, nothing is `durable`. */
    let lost: number | undefined
    let closed = false
    let failed: LogWriteFailed | undefined
    /** The mailboxes of `follow`ers: each batch once the sink has taken it (a failed write is still news), done when the log closes. */
    const followers = new Set<{
      readonly mailbox: Mailbox.Mailbox<ReadonlyArray<LogEntry>>
      readonly wanted: ((entry: LogEntry) => boolean) | undefined
    }>()
    /** Who waits for which entry to be written. */
    let waiting: Array<{ readonly n: number; readonly resume: (exit: Exit.Exit<void, LogWriteFailed>) => void }> = []

    /** Complete the waits the last batch satisfied, and fail those for entries a failed write lost. */
    const settle = () => {
      if (waiting.length === 0) return
      const still: typeof waiting = []
      for (const wait of waiting) {
        if (failed !== undefined && lost !== undefined && wait.n >= lost) wait.resume(Exit.fail(failed))
        else if (wait.n <= written) wait.resume(Exit.void)
        else still.push(wait)
      }
      waiting = still
    }

    const writeBatch = (entries: ReadonlyArray<LogEntry>) =>
      Effect.suspend(() => {
        // Once a write failed, only the run's own entries are written: what room is left is for why the run ends.
        const batch = lost === undefined ? entries : entries.filter((entry) => entry.agent === undefined)
        return batch.length === 0 ? Effect.void : sink.write(batch).pipe(
          Effect.matchEffect({
            // The first failure is the run's.
            onFailure: (error) =>
              Effect.suspend(() => {
                lost ??= entries[0]!.n
                failed ??= error
                return Deferred.fail(failure, error)
              }),
            onSuccess: () => Effect.sync(() => void (written = batch[batch.length - 1]!.n))
          })
        )
      }).pipe(
        Effect.zipRight(Effect.sync(() => {
          settle()
          for (const { mailbox, wanted } of followers) {
            if (wanted === undefined || entries.some(wanted)) mailbox.unsafeOffer(entries)
          }
        }))
      )
    // A batch taken is a batch written: interruption (the layer closing) waits for the write.
    // Woken by an entry, the writer first lets the fibers that are ready run: what they log (a tool
    // call's result after its call) goes in the same write.
    const writer = yield* Effect.uninterruptibleMask((restore) =>
      restore(pending.takeAll).pipe(
        Effect.zipLeft(Effect.yieldNow()),
        Effect.flatMap(([first]) => Effect.map(pending.clear, (rest) => [...first, ...rest])),
        Effect.flatMap(writeBatch)
      )
    ).pipe(Effect.forever, Effect.forkDaemon)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true
        yield* Fiber.interrupt(writer)
        const rest = yield* pending.clear
        if (rest.length > 0) yield* writeBatch([...rest])
        yield* PubSub.publish(hub, End)
        for (const { mailbox } of followers) mailbox.unsafeDone(Exit.void)
      })
    )

    const durable = (target: number): Effect.Effect<void, LogWriteFailed> =>
      Effect.suspend(() => {
        if (lost !== undefined && target >= lost) return Deferred.await(failure)
        if (written >= target) return Effect.void
        // A callback, not a Deferred: on Node 20 a Deferred costs more to make than the wait it serves.
        return Effect.async<void, LogWriteFailed>((resume) => {
          const wait = { n: target, resume }
          waiting.push(wait)
          return Effect.sync(() => void (waiting = waiting.filter((other) => other !== wait)))
        })
      })

    const unsafeLog = (subject: Subject, event: RunEvent): LogEntry => {
      const entry: LogEntry = {
        n: ++n,
        ts: new Date().toISOString(),
        process: subject.process,
        ...(subject.agent === undefined ? {} : { agent: subject.agent }),
        ...(subject.call === undefined ? {} : { call: subject.call }),
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

    const follow = <E, R>(
      f: (batch: ReadonlyArray<LogEntry>) => Effect.Effect<void, E, R>,
      wanted?: (entry: LogEntry) => boolean
    ) =>
      Effect.map(
        Effect.acquireRelease(
          Effect.map(Mailbox.make<ReadonlyArray<LogEntry>>(), (mailbox) => {
            const follower = { mailbox, wanted }
            followers.add(follower)
            return follower
          }),
          (follower) => Effect.sync(() => followers.delete(follower))
        ),
        ({ mailbox }) =>
          Effect.gen(function* () {
            while (true) {
              const [batches, done] = yield* mailbox.takeAll
              const batch = Chunk.toReadonlyArray(batches).flat()
              if (batch.length > 0) yield* f(batch)
              if (done) return
            }
          })
      )

    return {
      log: (subject, event) =>
        Effect.map(FiberRef.get(currentCall), (call) =>
          unsafeLog(call === undefined || subject.call !== undefined ? subject : { ...subject, call }, event)),
      unsafeLog,
      durable,
      entries,
      follow,
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

