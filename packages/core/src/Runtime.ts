/**
 * The run: its execution id, its WebSocket server (127.0.0.1, random port,
 * secret token), its live-run registry entry, its log and the agents it
 * serves. One per root run; nested processes share it.
 */
import { Cause, Context, Deferred, Effect, Exit, FiberSet, Layer, Option, Predicate, Schema, type Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Orphans from "./internal/orphans.js"
import { randomBytes } from "node:crypto"
import * as AgentSession from "./internal/agentSession.js"
import * as EventLog from "./internal/eventLog.js"
import * as Server from "./internal/server.js"
import type { Connection } from "./internal/socket.js"
import { LogSink, type LogEntry } from "./LogSink.js"
import * as Registry from "./Registry.js"
import { RunInfo } from "./RunInfo.js"
import * as RunStatus from "./RunStatus.js"

/** What the root process offers the control channel (`ramure call`). */
export interface EndpointHost {
  readonly call: (endpoint: string, args: unknown) => Effect.Effect<unknown, { readonly message: string }>
}

export interface RuntimeOptions {
  /** Largest accepted WebSocket frame, in bytes (default 16 MiB). */
  readonly maxMessageBytes?: number
  /** Write the live-run registry entry (default true). */
  readonly register?: boolean
  /** How many recent log entries `ramure tail -f` can replay (default 10 000). */
  readonly followBacklog?: number
  /**
   * How many agents may be starting at once (default: the number of CPU cores,
   * at least 2); others wait their turn. Starting pi is CPU-bound: more at once
   * only delays the first ones without bringing the last one sooner.
   */
  readonly maxStartingAgents?: number
  /** How many agents may be live at once (default unlimited); `Agent.make` waits for a slot. */
  readonly maxLiveAgents?: number
  /**
   * SIGINT/SIGTERM stop the run (its root process is cancelled, every scope
   * closes); a second signal kills the run's agents at once and exits 130.
   * Default true.
   */
  readonly handleSignals?: boolean
}

export interface RuntimeService {
  readonly info: RunInfo
  readonly executionId: string
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  readonly token: string
  readonly log: (entry: {
    readonly type: string
    readonly process: string
    readonly agent?: string | undefined
    readonly data?: unknown
  }) => Effect.Effect<void>
  readonly status: Effect.Effect<RunStatus.RunStatus>
  /** Log entries as they are written (recent backlog first). */
  readonly entries: EventLog.EventLog<LogEntry>
  readonly sessions: Map<string, AgentSession.AgentSession>
  /** Pre-started pis of a warm pool, by member id: how to serve the member's connection. */
  readonly poolMembers: Map<string, (connection: Connection) => Effect.Effect<void>>
  /** Reserve a unique agent id for `name` and create its session, removed when the scope closes. */
  readonly createSession: (name: string, process: string) => Effect.Effect<AgentSession.AgentSession, never, Scope.Scope>
  /** Completes when someone asks the run to stop (`ramure stop`). */
  readonly stopRequested: Deferred.Deferred<string>
  /** Process ids of live agent programs, for the forced exit on a second signal. */
  readonly pids: Set<number>
  /** Permits for agents being started, and for live agents. */
  readonly startPermits: Effect.Semaphore
  readonly livePermits: Effect.Semaphore
  /** The root process's endpoints, for the control channel. */
  root: EndpointHost | undefined
}

export class Runtime extends Context.Tag("ramure/Runtime")<Runtime, RuntimeService>() {}

export class RuntimeError extends Schema.TaggedError<RuntimeError>()("RuntimeError", {
  message: Schema.String
}) {}

/**
 * Hold a place under the run's limit on live agents until the scope closes.
 * While it waits, `evict` (if given) is asked every 100 ms to stop an idle
 * pre-started agent, whose place the run's live agents need more.
 */
export const holdLiveSlot = (runtime: RuntimeService, evict?: Effect.Effect<boolean>) =>
  Effect.acquireRelease(
    Effect.interruptible(
      evict === undefined
        ? runtime.livePermits.take(1)
        : Effect.raceFirst(
          runtime.livePermits.take(1),
          evict.pipe(Effect.delay("100 millis"), Effect.forever)
        )
    ),
    () => runtime.livePermits.release(1)
  )

/** How a run ended; a run stopped by `ramure stop` (or a cancelled root process) is `cancelled`. */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "done"
  if (Exit.isInterrupted(exit)) return "interrupted"
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) && Predicate.isTagged(failure.value, "ProcessCancelled") ? "cancelled" : "failed"
}

/** Starting agents at once: one per core (at least 2). */
export const defaultMaxStartingAgents = (): number => Math.max(2, os.availableParallelism())

const sanitizeId = (name: string): string => name.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^-+|-+$/g, "") || "agent"

export const layer = (options: RuntimeOptions = {}): Layer.Layer<Runtime, RuntimeError, RunInfo | LogSink> =>
  Layer.scoped(
    Runtime,
    Effect.gen(function* () {
      const info = yield* RunInfo
      const sink = yield* LogSink
      const token = randomBytes(32).toString("base64url")
      const status = RunStatus.empty()
      const entries = yield* EventLog.make<LogEntry>({ capacity: options.followBacklog ?? 10_000 })
      const sessions = new Map<string, AgentSession.AgentSession>()
      const reserved = new Set<string>()
      const stopRequested = yield* Deferred.make<string>()
      let n = 0

      const log: RuntimeService["log"] = (entry) =>
        Effect.suspend(() => {
          const line: LogEntry = {
            ts: new Date().toISOString(),
            n: ++n,
            type: entry.type,
            process: entry.process,
            ...(entry.agent === undefined ? {} : { agent: entry.agent }),
            ...(entry.data === undefined ? {} : { data: entry.data })
          }
          RunStatus.step(status, line)
          return Effect.zipRight(sink.write(line), entries.append(line))
        })

      const runtime: RuntimeService = {
        info,
        executionId: info.executionId,
        url: "",
        token,
        log,
        status: Effect.sync(() => structuredClone(status)),
        entries,
        sessions,
        poolMembers: new Map(),
        createSession: (name, process) =>
          Effect.acquireRelease(
            Effect.suspend(() => {
              const base = sanitizeId(name)
              let id = base
              for (let i = 2; sessions.has(id) || reserved.has(id); i++) id = `${base}-${i}`
              reserved.add(id)
              return Effect.tap(AgentSession.make(id, process, (type, data, agent) => log({ type, process, agent, data })), (session) =>
                Effect.sync(() => {
                  reserved.delete(id)
                  sessions.set(id, session)
                }))
            }),
            (session) => Effect.sync(() => void sessions.delete(session.id))
          ),
        stopRequested,
        pids: new Set(),
        startPermits: yield* Effect.makeSemaphore(options.maxStartingAgents ?? defaultMaxStartingAgents()),
        livePermits: yield* Effect.makeSemaphore(options.maxLiveAgents ?? Number.MAX_SAFE_INTEGER),
        root: undefined
      }

      const url = yield* Server.start(runtime, { maxMessageBytes: options.maxMessageBytes ?? 16 * 1024 * 1024 })
      Object.assign(runtime, { url })

      // Added after the server starts, so it runs before the server closes: followers see `run_ended`.
      yield* Effect.addFinalizer((exit) =>
        Effect.zipRight(log({ type: "run_ended", process: "", data: { outcome: outcomeOf(exit) } }), entries.end)
      )

      yield* log({
        type: "run_started",
        process: "",
        data: { executionId: info.executionId, program: info.program, pid: process.pid, url }
      })

      if (options.register !== false) {
        yield* Orphans.collectAtStart(info.home, log)
        const file = yield* Registry.register(info.home, {
          execution_id: info.executionId,
          pid: process.pid,
          pid_started: Registry.currentStart(),
          server_url: url,
          token,
          program: info.program,
          started_at: new Date().toISOString()
        }).pipe(Effect.mapError((error) => new RuntimeError({ message: error.message })))
        if (options.handleSignals !== false) yield* handleSignals(runtime, file)
      }
      return runtime
    })
  )

/**
 * First SIGINT/SIGTERM: stop the run gracefully (the root process is
 * cancelled and every scope closes). Second: kill the run's agents and tmux
 * sessions synchronously, remove the registry entry, exit 130.
 */
const handleSignals = (runtime: RuntimeService, registryFile: string) =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntime<never>()
    let received = 0
    const onSignal = (signal: NodeJS.Signals) => {
      received++
      if (received === 1) {
        run(Deferred.succeed(runtime.stopRequested, `received ${signal}`))
        return
      }
      for (const pid of runtime.pids) Orphans.killProcessSync(pid)
      Orphans.killRunSync(runtime.executionId)
      fs.rmSync(registryFile, { force: true })
      process.exit(130)
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("SIGINT", onSignal)
        process.on("SIGTERM", onSignal)
      }),
      () =>
        Effect.sync(() => {
          process.removeListener("SIGINT", onSignal)
          process.removeListener("SIGTERM", onSignal)
        })
    )
  })
