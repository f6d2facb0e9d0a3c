/**
 * Processes: Effect programs with their own scope, completion signal, event
 * stream and endpoints. Every agent and machine a process creates is
 * released when the process ends — by success, failure, timeout or
 * interrupt.
 */
import {
  Cause,
  Deferred,
  Duration,
  Either,
  Effect,
  ExecutionStrategy,
  Exit,
  Fiber,
  Option,
  ParseResult,
  Schema,
  Scope,
  Stream
} from "effect"
import type { Agent, ToolOptions } from "./Agent.js"
import {
  describe,
  EndpointFailed,
  type EndpointError,
  type EndpointNotFound,
  InvalidCompletion,
  type InvalidToolName,
  type InvalidToolSchema,
  isProcessError,
  ProcessCancelled,
  type ProcessEnded,
  ProcessFailed,
  ProcessTimeout,
  type ProcessError
} from "./Errors.js"
import { Budgets, check as checkBudget, type Options as BudgetOptions } from "./Budget.js"
import { attach, type AttachOptions, awaitEndpoint, callEndpoint } from "./internal/endpoints.js"
import * as EventLog from "./internal/eventLog.js"
import { CurrentProcess, type ProcessEvent, type ProcessState } from "./internal/processState.js"
import { decoder, handlerContext, invoke, jsonBytes, renderResult, toJsonSchema, toolName } from "./internal/tools.js"
import * as Journal from "./Journal.js"
import type { ProcessOutcome, RunEvent } from "./RunEvent.js"
import { RunControl } from "./RunControl.js"
import { RunLog, type RunLogService } from "./RunLog.js"

export { CurrentProcess, type ProcessEvent } from "./internal/processState.js"
export type { AttachOptions } from "./internal/endpoints.js"

export interface ProcessOptions<S = never, F = never> {
  /** Fail the process with `ProcessTimeout` after this long. */
  readonly timeout?: Duration.DurationInput
  /**
   * The process's value: what `done` is given, or the body returns, is
   * checked against it (`InvalidCompletion` if it does not match), and the
   * process's type is this Schema's.
   */
  readonly success?: Schema.Schema<S, any, never>
  /**
   * Errors that `Process.fail(error)` ends the process with as they are (and
   * typed so); any other error it is given becomes a `ProcessFailed`.
   */
  readonly failure?: Schema.Schema<F, any, never>
  /**
   * What the process, with its agents and children, may spend (see
   * `Budget`); carved out of what its parents' budgets have left.
   */
  readonly budget?: BudgetOptions
}

/** What running a process needs from the run. */
export type Requirements = RunLog | RunControl | Journal.Journal | Budgets

/** A named, runnable process definition. Call it to run it as a nested child. */
export interface Process<Args extends ReadonlyArray<any>, A, E, R> {
  (...args: Args): Effect.Effect<A, E | ProcessError, R | Requirements>
  readonly processName: string
}

interface Definition {
  readonly body: (...args: ReadonlyArray<any>) => Effect.Effect<unknown, unknown, unknown>
  readonly options: ProcessOptions<unknown, unknown>
}

/** How each process definition runs; `spawn` runs one with a state it made itself. */
const definitions = new WeakMap<Process<any, any, any, any>, Definition>()

/**
 * Define a process. Inside the body `Agent.make`, `Process.done`, `wait`,
 * `emit`, `expose` and `spawn` act on this process, and `Scope` is the
 * process's: what the body acquires is released when the process ends, after
 * its agents.
 */
export function make<Args extends ReadonlyArray<any>, A, E, R, S, F = never>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>,
  options: ProcessOptions<S, F> & { readonly success: Schema.Schema<S, any, never> }
): Process<Args, S, E | F | InvalidCompletion, Exclude<R, CurrentProcess | Scope.Scope>>
export function make<Args extends ReadonlyArray<any>, A, E, R, F = never>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>,
  options?: ProcessOptions<never, F> & { readonly success?: undefined }
): Process<Args, A, E | F, Exclude<R, CurrentProcess | Scope.Scope>>
export function make(
  name: string,
  body: (...args: ReadonlyArray<any>) => Effect.Effect<any, any, any>,
  options: ProcessOptions<any, any> = {}
): Process<any, any, any, any> {
  const process = Object.assign(
    (...args: ReadonlyArray<any>) =>
      Effect.flatMap(Effect.serviceOption(CurrentProcess), (parent) =>
        Effect.flatMap(makeState(name, Option.getOrUndefined(parent), options), (state) => runIn(state, body(...args), options))),
    { processName: name }
  )
  definitions.set(process, { body, options })
  return process
}

/**
 * Run `body` as the process `state`: logged, registered for the control
 * channel, supervised, then finished. In a resumed run, a process that had
 * ended returns what it ended with without running again, and one that had
 * started goes on where its journal says it was.
 */
const runIn = (state: ProcessState, body: Effect.Effect<unknown, unknown, unknown>, options: ProcessOptions<unknown, unknown>) =>
  Effect.gen(function* () {
    const runLog = yield* RunLog
    const control = yield* RunControl
    const journal = yield* Journal.Journal
    if (state.parent !== undefined) yield* journal.take(state.parent.path, "child", state.path)
    const ended = journal.ended(state.path)
    if (Option.isSome(ended)) return yield* replayed(state, ended.value, options.success)
    const startedAt = journal.startedAt(state.path)
    return yield* Effect.acquireUseRelease(
      Effect.gen(function* () {
        if (Option.isNone(startedAt)) {
          yield* runLog.log(
            { process: state.path },
            { _tag: "ProcessStarted", name: state.name, ...(state.parent === undefined ? {} : { parent: state.parent.path }) }
          )
        }
        yield* state.events.append({ _tag: "started", process: state.path })
        const badBudget = options.budget === undefined ? undefined : checkBudget(options.budget)
        if (badBudget !== undefined) {
          yield* Deferred.fail(state.completion, new ProcessFailed({ process: state.path, reason: badBudget }))
        } else {
          yield* (yield* Budgets).process({
            path: state.path,
            parent: state.parent?.path,
            budget: options.budget,
            fail: (error) => Effect.asVoid(Deferred.fail(state.completion, error)),
            ended: Deferred.isDone(state.completion)
          }).pipe(Scope.extend(state.scope))
        }
        yield* control.register(state.path, {
          names: Effect.sync(() => [...state.endpoints.keys()]),
          call: (endpoint, args, caller) => callEndpoint(state, endpoint, args, caller)
        }).pipe(Scope.extend(state.scope))
      }),
      () => supervise(state, body, options, Option.getOrUndefined(startedAt)),
      (_, exit) => finish(state, exit, options.success)
    )
  }).pipe(Effect.withSpan("Process.run", { attributes: { process: state.path } })) as Effect.Effect<any, any, any>

const makeState = (name: string, parent: ProcessState | undefined, options: ProcessOptions<unknown, unknown>) =>
  Effect.gen(function* () {
    let path = name
    if (parent !== undefined) {
      const count = (parent.children.get(name) ?? 0) + 1
      parent.children.set(name, count)
      path = `${parent.path}/${count === 1 ? name : `${name}-${count}`}`
    }
    const state: ProcessState = {
      name,
      path,
      parent,
      scope: yield* Scope.make(ExecutionStrategy.parallel),
      resources: yield* Scope.make(),
      completion: yield* Deferred.make<unknown, unknown>(),
      failure: options.failure,
      ended: yield* Deferred.make<void>(),
      events: yield* EventLog.make<ProcessEvent>(),
      endpoints: new Map(),
      agents: new Map(),
      children: new Map()
    }
    return state
  })

/** A failure given to `fail` as the process keeps it: a `ProcessError`, or an error of its declared `failure` Schema. */
const failureOf = (state: ProcessState, error: unknown): unknown => {
  if (typeof error === "string") return new ProcessFailed({ process: state.path, reason: error })
  if (isProcessError(error)) return error
  if (state.failure !== undefined && Schema.is(state.failure)(error)) return error
  return new ProcessFailed({ process: state.path, reason: describe(error), error })
}

/** A declared failure that `wait` passed on as a `ProcessFailed` (its static type), unwrapped again. */
const unwrapDeclared = (state: ProcessState) => (error: unknown): unknown =>
  error instanceof ProcessFailed && error.error !== undefined && state.failure !== undefined && Schema.is(state.failure)(error.error)
    ? error.error
    : error

/** The process's value, checked against its declared `success` Schema. */
const checkSuccess = (state: ProcessState, success: Schema.Schema<unknown, any, never> | undefined) => (value: unknown) =>
  success === undefined
    ? Effect.succeed(value)
    : Schema.validate(success)(value).pipe(
      Effect.mapError((error) =>
        new InvalidCompletion({ process: state.path, reason: `a value its Schema does not accept: ${ParseResult.TreeFormatter.formatErrorSync(error)}` })
      )
    )

/** What a process that ended before the run was resumed returns: its journaled value, or its failure. */
const replayed = (
  state: ProcessState,
  ended: Journal.Ended,
  success: Schema.Schema<unknown, any, never> | undefined
): Effect.Effect<unknown, ProcessError> => {
  switch (ended.outcome) {
    case "done":
      return success === undefined ? Effect.succeed(ended.value) : Effect.orDie(Schema.decodeUnknown(success)(ended.value))
    case "cancelled":
      return Effect.fail(new ProcessCancelled({ process: state.path, reason: ended.error ?? "cancelled" }))
    case "timeout":
      return Effect.fail(new ProcessTimeout({ process: state.path, timeout: ended.error ?? "its timeout" }))
    case "failed":
      return Effect.fail(new ProcessFailed({ process: state.path, reason: ended.error ?? "failed" }))
  }
}

/**
 * Run the body until it returns, `done`/`fail` is called, or the timeout
 * fires (counted from the process's first start, when it is resumed); a root
 * process also ends when the run is asked to stop or its log can no longer
 * be written.
 */
const supervise = (state: ProcessState, body: Effect.Effect<unknown, unknown, unknown>, options: ProcessOptions<unknown, unknown>, startedAt?: number) =>
  Effect.gen(function* () {
    const completion = Deferred.await(state.completion)
    let effect: Effect.Effect<unknown, unknown, unknown> = Effect.raceFirst(
      body.pipe(
        // The first completion wins: a body that returns after `done`/`fail` does not override it.
        Effect.flatMap((value) => Effect.zipRight(Deferred.succeed(state.completion, value), completion)),
        Effect.provideService(CurrentProcess, state),
        Effect.provideService(Scope.Scope, state.resources)
      ),
      completion
    ).pipe(Effect.mapError(unwrapDeclared(state)), Effect.flatMap(checkSuccess(state, options.success)))
    if (state.parent === undefined) {
      const control = yield* RunControl
      const runLog = yield* RunLog
      effect = Effect.raceFirst(
        effect,
        Effect.raceFirst(
          Effect.flatMap(control.stopRequested, (reason) => new ProcessCancelled({ process: state.path, reason })),
          runLog.failed
        )
      )
    }
    // A resumed process must have done again everything its journal has.
    const journal = yield* Journal.Journal
    effect = Effect.tap(effect, () => journal.settle(state.path))
    if (options.timeout !== undefined) {
      const timeout = options.timeout
      const elapsed = startedAt === undefined ? 0 : Math.max(0, Date.now() - startedAt)
      effect = Effect.timeoutFail(effect, {
        duration: Duration.subtract(Duration.decode(timeout), Duration.millis(Math.min(elapsed, Duration.toMillis(timeout)))),
        onTimeout: () => new ProcessTimeout({ process: state.path, timeout: Duration.format(timeout) })
      })
    }
    return yield* effect
  })

/** A process's value as its journal keeps it: encoded by its `success` Schema, else as it is if JSON can carry it. */
const journaled = (value: unknown, success: Schema.Schema<unknown, any, never> | undefined): unknown => {
  if (success !== undefined) return Either.getOrUndefined(Schema.encodeEither(success)(value))
  return Either.getOrUndefined(renderResult(value)) === undefined ? undefined : value
}

const finish = (state: ProcessState, exit: Exit.Exit<unknown, unknown>, success: Schema.Schema<unknown, any, never> | undefined) =>
  Effect.gen(function* () {
    const runLog = yield* RunLog
    yield* Deferred.succeed(state.ended, undefined)
    // Agents first, then what the body acquired (it may be what the agents were using).
    yield* Scope.close(state.scope, exit)
    yield* Scope.close(state.resources, exit)
    let event: ProcessEvent
    let outcome: ProcessOutcome
    let error: string | undefined
    let value: unknown
    if (Exit.isSuccess(exit)) {
      event = { _tag: "done", value: exit.value }
      outcome = "done"
      value = journaled(exit.value, success)
    } else if (Cause.isInterruptedOnly(exit.cause)) {
      event = { _tag: "cancelled", reason: "interrupted" }
      outcome = "cancelled"
    } else {
      const failure = Cause.failureOption(exit.cause)
      const value = Option.isSome(failure) ? failure.value : Cause.squash(exit.cause)
      const cancelled = value instanceof ProcessCancelled
      event = cancelled ? { _tag: "cancelled", reason: value.reason } : { _tag: "failed", error: value }
      outcome = cancelled ? "cancelled" : value instanceof ProcessTimeout ? "timeout" : "failed"
      error = describe(value)
    }
    yield* journalDurably(runLog, state.path, {
      _tag: "ProcessEnded",
      outcome,
      ...(error === undefined ? {} : { error }),
      ...(value === undefined ? {} : { value })
    })
    yield* state.events.append(event)
    yield* state.events.end
  })

/**
 * Log what a resumed run must find (a step's result, a process's outcome) and
 * wait until it is on disk before acting on it. A write that fails fails the
 * run (`RunLog.failed`).
 */
const journalDurably = (runLog: RunLogService, process: string, event: RunEvent) =>
  Effect.flatMap(runLog.log({ process }, event), (entry) => Effect.ignore(runLog.durable(entry.n)))

// ---------------------------------------------------------------------------
// Inside a process

/**
 * Complete the current process with `value`; its body is interrupted. A
 * process that declares `success` checks the value against it.
 */
export const done = (value: unknown): Effect.Effect<void, never, CurrentProcess> =>
  Effect.flatMap(CurrentProcess, (state) => Effect.asVoid(Deferred.succeed(state.completion, value)))

/**
 * Fail the current process: with a text, as `ProcessFailed`; with an error
 * of the process's declared `failure` Schema (or a `ProcessError`), with that
 * error; with any other error, as a `ProcessFailed` that holds it.
 */
export const fail = (reason: unknown): Effect.Effect<void, never, CurrentProcess> =>
  Effect.flatMap(CurrentProcess, (state) => Effect.asVoid(Deferred.fail(state.completion, failureOf(state, reason))))

/**
 * Wait for the current process to complete (by `done` or `fail`). Its value
 * is `unknown` here: a process that declares `success` is checked and typed
 * by it. A failure of its declared `failure` type reaches this `wait` as a
 * `ProcessFailed` holding it (the process itself fails with it as it is).
 */
export const wait = (): Effect.Effect<unknown, ProcessError, CurrentProcess> =>
  Effect.flatMap(CurrentProcess, (state) =>
    Effect.mapError(Deferred.await(state.completion), (error) =>
      isProcessError(error) ? error : new ProcessFailed({ process: state.path, reason: describe(error), error })))

/** Record a custom event of the current process (seen by `handle.events` and the log). */
export const emit = (type: string, data?: unknown): Effect.Effect<void, never, CurrentProcess | RunLog | Journal.Journal> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runLog = yield* RunLog
    // Replayed in a resumed run: seen on `handle.events` again, not logged twice.
    const replayed = yield* (yield* Journal.Journal).take(state.path, "emit", type)
    if (Option.isNone(replayed)) {
      yield* runLog.log({ process: state.path }, { _tag: "ProcessEmitted", type, ...(data === undefined ? {} : { data }) })
    }
    yield* state.events.append({ _tag: "event", type, data })
  })

/** A step whose journaled result says it failed (the error itself is not journaled, only what it said). */
export class StepFailed extends Schema.TaggedError<StepFailed>()("StepFailed", {
  process: Schema.String,
  step: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `step ${this.step} of process ${this.process} failed: ${this.reason}`
  }
}

/**
 * Run a side effect of the program's own (not through ramure's API) once, and
 * journal its result: in a resumed run, a step that completed returns its
 * journaled result without running again. The value is journaled as JSON, or
 * with `success` when given; a failure is journaled as its message and
 * replays as `StepFailed`.
 */
export const step = <A, E, R, I = A>(
  name: string,
  effect: Effect.Effect<A, E, R>,
  options: { readonly success?: Schema.Schema<A, I, never> } = {}
): Effect.Effect<A, E | StepFailed, R | CurrentProcess | RunLog | Journal.Journal> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runLog = yield* RunLog
    const recorded = (yield* Journal.Journal).step(state.path, name)
    if (Option.isSome(recorded)) {
      const { error, ok, value } = recorded.value
      if (!ok) return yield* new StepFailed({ process: state.path, step: name, reason: error ?? "failed" })
      return options.success === undefined
        ? (value as A)
        : yield* Effect.orDie(Schema.decodeUnknown(options.success)(value))
    }
    const exit = yield* Effect.exit(effect)
    const journaled: Either.Either<unknown, ParseResult.ParseError> | undefined = Exit.isSuccess(exit)
      ? (options.success === undefined ? Either.right(exit.value) : Schema.encodeEither(options.success)(exit.value))
      : undefined
    yield* journalDurably(runLog, state.path, {
      _tag: "StepCompleted",
      name,
      ok: Exit.isSuccess(exit),
      ...(journaled !== undefined && Either.isRight(journaled) ? { value: journaled.right } : {}),
      ...(Exit.isFailure(exit) ? { error: describe(Cause.squash(exit.cause)) } : {})
    })
    return yield* exit
  }).pipe(Effect.withSpan("Process.step", { attributes: { step: name } }))

/** The current process's path, e.g. `main/review-2`. */
export const path: Effect.Effect<string, never, CurrentProcess> = Effect.map(CurrentProcess, (state) => state.path)

/**
 * Offer an endpoint of the current process. The handler runs as part of this
 * process: `emit`, `done` and `fail` inside it act on this process. Exposing
 * a name again replaces its handler (for tools attached already, too). The
 * name must be usable as a tool name (`InvalidToolName`), and the parameters
 * must have a JSON Schema a model can read (`InvalidToolSchema`).
 */
export const expose = <A, I, E, R>(
  name: string,
  options: ToolOptions<A, I>,
  handler: (args: A) => Effect.Effect<unknown, E, R>
): Effect.Effect<void, InvalidToolName | InvalidToolSchema, CurrentProcess | RunLog | Exclude<R, CurrentProcess>> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runLog = yield* RunLog
    const context = yield* handlerContext
    yield* toolName(name)
    const parameters = yield* toJsonSchema(name, options.parameters)
    const decode = decoder(options.parameters)
    const failed = (reason: string) => new EndpointFailed({ process: state.path, endpoint: name, reason })
    const subject = { process: state.path }
    state.endpoints.set(name, {
      name,
      description: options.description,
      parameters,
      call: (args, caller) =>
        Effect.gen(function* () {
          const started = Date.now()
          yield* Effect.annotateCurrentSpan("ramure.arguments_bytes", jsonBytes(args))
          yield* runLog.log(subject, { _tag: "EndpointCalled", name, args, caller })
          const result = yield* decode(args).pipe(
            Effect.mapError((error) => failed(`invalid arguments: ${ParseResult.TreeFormatter.formatErrorSync(error)}`)),
            Effect.flatMap((decoded) =>
              invoke(name, handler, decoded).pipe(
                Effect.catchAllCause((cause) => Effect.fail(failed(describe(Cause.squash(cause)))))
              )
            ),
            Effect.provide(context),
            Effect.exit
          )
          yield* runLog.log(subject, {
            _tag: "EndpointReturned",
            name,
            ok: Exit.isSuccess(result),
            durationMs: Date.now() - started,
            caller,
            ...(Exit.isFailure(result) ? { error: reasonOf(result.cause) } : {})
          })
          yield* Effect.annotateCurrentSpan("ramure.outcome", Exit.isSuccess(result) ? "ok" : "error")
          return yield* result
        }).pipe(Effect.withSpan("Process.endpoint", { attributes: { process: state.path, endpoint: name, caller } }))
    })
    const replayed = yield* (yield* Journal.Journal).take(state.path, "expose", name)
    if (Option.isNone(replayed)) {
      yield* runLog.log(subject, { _tag: "EndpointExposed", name, description: options.description, parameters })
    }
    yield* state.events.append({ _tag: "endpoint", name })
  })

/** Why an endpoint call failed, in the handler's words (the log says which endpoint). */
const reasonOf = (cause: Cause.Cause<EndpointFailed>): string => {
  const error = Cause.squash(cause)
  return error instanceof EndpointFailed ? error.reason : describe(error)
}

// ---------------------------------------------------------------------------
// Children

export interface CallOptions {
  /** How long to wait for the child to expose the endpoint (default 30 s). */
  readonly timeout?: Duration.DurationInput
}

/** A running child process. */
export interface ProcessHandle<A, E> {
  readonly name: string
  readonly path: string
  /** started, custom events, agents, endpoints, then done / failed / cancelled; replayed from the start. */
  readonly events: Stream.Stream<ProcessEvent>
  /** A stream of the events that come after `subscribe` ran: live only, without the past. */
  readonly subscribe: Effect.Effect<Stream.Stream<ProcessEvent>>
  /** The child's live agents, by id. */
  readonly agents: Effect.Effect<ReadonlyMap<string, Agent>>
  readonly endpoints: Effect.Effect<ReadonlyArray<string>>
  /**
   * Call an endpoint of the child, waiting for the child to expose it: fails
   * with `EndpointNotFound` after the timeout, `ProcessEnded` once the child
   * has ended.
   */
  readonly call: (endpoint: string, args?: unknown, options?: CallOptions) => Effect.Effect<unknown, EndpointError>
  /**
   * Give `agent` one tool per endpoint of the child — those exposed already
   * and those exposed later, for as long as the caller's process runs; they
   * are taken away when the child ends. With `only`, waits until those
   * endpoints exist (`EndpointNotFound` if the child ends first). A prefix
   * that makes invalid tool names is an `InvalidToolName`; a child that has
   * ended, `ProcessEnded`.
   */
  readonly attach: (
    agent: Agent,
    options?: AttachOptions
  ) => Effect.Effect<void, EndpointNotFound | ProcessEnded | InvalidToolName, CurrentProcess>
  readonly cancel: Effect.Effect<void>
  /** The child's result; `ProcessCancelled` if it was cancelled. */
  readonly await: Effect.Effect<A, E | ProcessError>
}

/**
 * Start a child process as a fiber in the current process's scope: if the
 * parent ends first, the child is interrupted and its agents released.
 */
export const spawn = <Args extends ReadonlyArray<any>, A, E, R>(
  process: Process<Args, A, E, R>,
  ...args: Args
): Effect.Effect<ProcessHandle<A, E>, never, R | Requirements | CurrentProcess> =>
  Effect.gen(function* () {
    const parent = yield* CurrentProcess
    const definition = definitions.get(process)
    if (definition === undefined) return yield* Effect.dieMessage(`Process.spawn: not a process made by Process.make`)
    const state = yield* makeState(process.processName, parent, definition.options)
    const body = definition.body(...args)
    const fiber = yield* runIn(state, body, definition.options).pipe(Effect.forkIn(parent.scope))
    return handle<A, E>(state, fiber)
  })

/** The process behind each handle (for `bubble`). */
const children = new WeakMap<ProcessHandle<any, any>, ProcessState>()

const handle = <A, E>(state: ProcessState, fiber: Fiber.RuntimeFiber<A, E | ProcessError>): ProcessHandle<A, E> => {
  const value: ProcessHandle<A, E> = {
  name: state.name,
  path: state.path,
  events: state.events.stream(0),
  subscribe: Effect.map(state.events.size, (from) => state.events.stream(from)),
  agents: Effect.sync(() => new Map(state.agents)),
  endpoints: Effect.sync(() => [...state.endpoints.keys()]),
  call: (endpoint, args, options = {}) =>
    Effect.gen(function* () {
      const caller = yield* Effect.serviceOption(CurrentProcess)
      yield* awaitEndpoint(state, endpoint, options.timeout ?? "30 seconds")
      return yield* callEndpoint(state, endpoint, args ?? {}, Option.match(caller, { onNone: () => "", onSome: (p) => p.path }))
    }),
  attach: (agent, options = {}) => Effect.flatMap(CurrentProcess, (caller) => attach(state, agent, options, caller)),
  cancel: Effect.asVoid(Fiber.interrupt(fiber)),
  await: Effect.flatMap(Fiber.await(fiber), (exit) =>
    Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
      ? Effect.fail(new ProcessCancelled({ process: state.path, reason: "cancelled" }))
      : exit
  )
  }
  children.set(value, state)
  return value
}

/**
 * Forward the events of the child `handle` onto the current process's
 * events — those it had already, then each new one as it happens — marked
 * with `source` (an event that already has a source, bubbled up from further
 * down, keeps it: the innermost wins). Stops when the child ends, the current
 * process ends, or the returned effect (idempotent) runs.
 */
export const bubble = <A, E>(
  handle: ProcessHandle<A, E>,
  options: { readonly source?: string } = {}
): Effect.Effect<Effect.Effect<void>, never, CurrentProcess> =>
  Effect.gen(function* () {
    const parent = yield* CurrentProcess
    const child = children.get(handle)
    if (child === undefined) return yield* Effect.dieMessage("Process.bubble: not a handle made by Process.spawn")
    const source = options.source ?? child.name
    const unsubscribe = child.events.unsafeSubscribe(0, (event) => {
      parent.events.unsafeAppend({ ...event, source: event.source ?? source })
    })
    const stop = Effect.sync(unsubscribe)
    yield* Scope.addFinalizer(parent.scope, stop)
    return stop
  })
