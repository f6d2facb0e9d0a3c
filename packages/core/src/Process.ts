/**
 * Processes: Effect programs with their own scope, completion signal, event
 * stream and endpoints. Every agent and machine a process creates is
 * released when the process ends — by success, failure, timeout or
 * interrupt.
 */
import {
  Cause,
  Deferred,
  Either,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Fiber,
  Option,
  ParseResult,
  Scope,
  Stream
} from "effect"
import type { Agent, ToolOptions } from "./Agent.js"
import {
  describe,
  EndpointFailed,
  EndpointNotFound,
  InvalidToolName,
  ProcessCancelled,
  ProcessFailed,
  ProcessTimeout,
  type EndpointError,
  type ProcessError
} from "./Errors.js"
import * as EventLog from "./internal/eventLog.js"
import { addTool } from "./internal/agent.js"
import { CurrentProcess, type Endpoint, type ProcessEvent, type ProcessState } from "./internal/processState.js"
import { decoder, handlerContext, invoke, jsonBytes, renderResult, toJsonSchema } from "./internal/tools.js"
import type { ProcessOutcome } from "./RunEvent.js"
import { RunControl } from "./RunControl.js"
import { RunLog } from "./RunLog.js"

export { CurrentProcess, type ProcessEvent } from "./internal/processState.js"

export interface ProcessOptions {
  /** Fail the process with `ProcessTimeout` after this long. */
  readonly timeout?: Duration.DurationInput
}

/** What running a process needs from the run. */
export type Requirements = RunLog | RunControl

/** A named, runnable process definition. Call it to run it as a nested child. */
export interface Process<Args extends ReadonlyArray<any>, A, E, R> {
  (...args: Args): Effect.Effect<A, E | ProcessError, R | Requirements>
  readonly processName: string
}

interface Definition {
  readonly body: (...args: ReadonlyArray<any>) => Effect.Effect<unknown, unknown, unknown>
  readonly options: ProcessOptions
}

/** How each process definition runs; `spawn` runs one with a state it made itself. */
const definitions = new WeakMap<Process<any, any, any, any>, Definition>()

/**
 * Define a process. Inside the body `Agent.make`, `Process.done`, `wait`,
 * `emit`, `expose` and `spawn` act on this process.
 */
export const make = <Args extends ReadonlyArray<any>, A, E, R>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>,
  options: ProcessOptions = {}
): Process<Args, A, E, Exclude<R, CurrentProcess>> => {
  const process = Object.assign(
    (...args: Args) =>
      Effect.flatMap(Effect.serviceOption(CurrentProcess), (parent) =>
        Effect.flatMap(makeState(name, Option.getOrUndefined(parent)), (state) => runIn(state, body(...args), options))),
    { processName: name }
  )
  definitions.set(process, { body, options } as Definition)
  return process
}

/** Run `body` as the process `state`: logged, registered for the control channel, supervised, then finished. */
const runIn = <A, E, R>(state: ProcessState, body: Effect.Effect<A, E, R>, options: ProcessOptions) =>
  Effect.gen(function* () {
    const runLog = yield* RunLog
    const control = yield* RunControl
    return yield* Effect.acquireUseRelease(
      Effect.gen(function* () {
        yield* runLog.log(
          { process: state.path },
          { _tag: "ProcessStarted", name: state.name, ...(state.parent === undefined ? {} : { parent: state.parent.path }) }
        )
        yield* state.events.append({ _tag: "started", process: state.path })
        yield* control.register(state.path, {
          names: Effect.sync(() => [...state.endpoints.keys()]),
          call: (endpoint, args, caller) => callEndpoint(state, endpoint, args, caller)
        }).pipe(Scope.extend(state.scope))
      }),
      () => supervise(state, body, options),
      (_, exit) => finish(state, exit)
    )
  }).pipe(Effect.withSpan("Process.run", { attributes: { process: state.path } })) as Effect.Effect<
    A,
    E | ProcessError,
    Exclude<R, CurrentProcess> | Requirements
  >

const makeState = (name: string, parent: ProcessState | undefined) =>
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
      completion: yield* Deferred.make<unknown, ProcessError>(),
      events: yield* EventLog.make<ProcessEvent>(),
      endpoints: new Map(),
      agents: new Map(),
      children: new Map()
    }
    return state
  })

/**
 * Run the body until it returns, `done`/`fail` is called, or the timeout
 * fires; a root process also ends when the run is asked to stop or its log
 * can no longer be written.
 */
const supervise = <A, E, R>(state: ProcessState, body: Effect.Effect<A, E, R>, options: ProcessOptions) =>
  Effect.gen(function* () {
    const completion = Deferred.await(state.completion) as Effect.Effect<A, ProcessError>
    let effect: Effect.Effect<A, E | ProcessError, Exclude<R, CurrentProcess>> = Effect.raceFirst(
      body.pipe(
        // The first completion wins: a body that returns after `done`/`fail` does not override it.
        Effect.flatMap((value) => Effect.zipRight(Deferred.succeed(state.completion, value), completion)),
        Effect.provideService(CurrentProcess, state)
      ) as Effect.Effect<A, E | ProcessError, Exclude<R, CurrentProcess>>,
      completion
    )
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
    if (options.timeout !== undefined) {
      const timeout = options.timeout
      effect = Effect.timeoutFail(effect, {
        duration: timeout,
        onTimeout: () => new ProcessTimeout({ process: state.path, timeout: Duration.format(timeout) })
      })
    }
    return yield* effect
  })

const finish = (state: ProcessState, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function* () {
    const runLog = yield* RunLog
    yield* Scope.close(state.scope, exit)
    let event: ProcessEvent
    let outcome: ProcessOutcome
    let error: string | undefined
    if (Exit.isSuccess(exit)) {
      event = { _tag: "done", value: exit.value }
      outcome = "done"
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
    yield* runLog.log({ process: state.path }, { _tag: "ProcessEnded", outcome, ...(error === undefined ? {} : { error }) })
    yield* state.events.append(event)
    yield* state.events.end
  })

// ---------------------------------------------------------------------------
// Inside a process

/** Complete the current process with `value`; its body is interrupted. */
export const done = <A>(value: A): Effect.Effect<void, never, CurrentProcess> =>
  Effect.flatMap(CurrentProcess, (state) => Effect.asVoid(Deferred.succeed(state.completion, value)))

/** Fail the current process with `ProcessFailed`. */
export const fail = (reason: string): Effect.Effect<void, never, CurrentProcess> =>
  Effect.flatMap(CurrentProcess, (state) =>
    Deferred.fail(state.completion, new ProcessFailed({ process: state.path, reason }))
  )

/** Wait for the current process to complete (by `done` or `fail`). */
export const wait = <A = unknown>(): Effect.Effect<A, ProcessError, CurrentProcess> =>
  Effect.flatMap(CurrentProcess, (state) => Deferred.await(state.completion) as Effect.Effect<A, ProcessError>)

/** Record a custom event of the current process (seen by `handle.events` and the log). */
export const emit = (type: string, data?: unknown): Effect.Effect<void, never, CurrentProcess | RunLog> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runLog = yield* RunLog
    yield* runLog.log({ process: state.path }, { _tag: "ProcessEmitted", type, ...(data === undefined ? {} : { data }) })
    yield* state.events.append({ _tag: "event", type, data })
  })

/** The current process's path, e.g. `main/review-2`. */
export const path: Effect.Effect<string, never, CurrentProcess> = Effect.map(CurrentProcess, (state) => state.path)

/**
 * Offer an endpoint of the current process. The handler runs as part of this
 * process: `emit`, `done` and `fail` inside it act on this process. Exposing
 * a name again replaces its handler (for tools attached already, too).
 */
export const expose = <A, I, E, R>(
  name: string,
  options: ToolOptions<A, I>,
  handler: (args: A) => Effect.Effect<unknown, E, R>
): Effect.Effect<void, never, CurrentProcess | RunLog | Exclude<R, CurrentProcess>> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runLog = yield* RunLog
    const context = yield* handlerContext
    const decode = decoder(options.parameters)
    const failed = (reason: string) => new EndpointFailed({ process: state.path, endpoint: name, reason })
    const parameters = toJsonSchema(options.parameters)
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
            ...(Exit.isFailure(result) ? { error: describe(Cause.squash(result.cause)) } : {})
          })
          yield* Effect.annotateCurrentSpan("ramure.outcome", Exit.isSuccess(result) ? "ok" : "error")
          return yield* result
        }).pipe(Effect.withSpan("Process.endpoint", { attributes: { process: state.path, endpoint: name, caller } }))
    })
    yield* runLog.log(subject, { _tag: "EndpointExposed", name, description: options.description, parameters })
    yield* state.events.append({ _tag: "endpoint", name })
  })

const callEndpoint = (state: ProcessState, endpoint: string, args: unknown, caller: string): Effect.Effect<unknown, EndpointError> =>
  Effect.suspend(() => {
    const found = state.endpoints.get(endpoint)
    return found === undefined
      ? new EndpointNotFound({ process: state.path, endpoint, available: [...state.endpoints.keys()] })
      : found.call(args, caller)
  })

// ---------------------------------------------------------------------------
// Children

export interface AttachOptions {
  /** Only these endpoints (default: all). */
  readonly only?: ReadonlyArray<string>
  /** Tool name = prefix + endpoint name. */
  readonly prefix?: string
}

/** A running child process. */
export interface ProcessHandle<A, E> {
  readonly name: string
  readonly path: string
  /** started, custom events, agents, then done / failed / cancelled; replayed from the start. */
  readonly events: Stream.Stream<ProcessEvent>
  /** The child's live agents, by id. */
  readonly agents: Effect.Effect<ReadonlyMap<string, Agent>>
  readonly endpoints: Effect.Effect<ReadonlyArray<string>>
  readonly call: (endpoint: string, args?: unknown) => Effect.Effect<unknown, EndpointError>
  /**
   * Give `agent` one tool per endpoint of the child — those exposed already
   * and those exposed later, for as long as the caller's process runs. With
   * `only`, waits until those endpoints exist (`EndpointNotFound` if the child
   * ends first).
   */
  readonly attach: (agent: Agent, options?: AttachOptions) => Effect.Effect<void, EndpointNotFound, CurrentProcess>
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
    const state = yield* makeState(process.processName, parent)
    const body = definition.body(...args) as Effect.Effect<A, E, R>
    const fiber = yield* runIn(state, body, definition.options).pipe(Effect.forkIn(parent.scope))
    return handle(state, fiber)
  })

/** An attached endpoint: the tool calls whatever the child exposes under that name at the time of the call. */
const endpointTool = (state: ProcessState, endpoint: Endpoint, toolName: string, caller: string) => ({
  definition: { name: toolName, description: endpoint.description, parameters: endpoint.parameters },
  run: (args: unknown) =>
    callEndpoint(state, endpoint.name, args, caller).pipe(
      Effect.mapError((error) => error.message),
      Effect.flatMap((value) => Either.match(renderResult(value), { onLeft: Effect.fail, onRight: Effect.succeed }))
    )
})

const handle = <A, E>(state: ProcessState, fiber: Fiber.RuntimeFiber<A, E | ProcessError>): ProcessHandle<A, E> => ({
  name: state.name,
  path: state.path,
  events: state.events.stream(0),
  agents: Effect.sync(() => new Map(state.agents)),
  endpoints: Effect.sync(() => [...state.endpoints.keys()]),
  call: (endpoint, args) =>
    Effect.flatMap(Effect.serviceOption(CurrentProcess), (caller) =>
      callEndpoint(state, endpoint, args ?? {}, Option.match(caller, { onNone: () => "", onSome: (p) => p.path }))),
  attach: (agent, options = {}) =>
    Effect.gen(function* () {
      const caller = yield* CurrentProcess
      const done = new Set<string>()
      const attachOne = (endpoint: Endpoint) =>
        options.only !== undefined && !options.only.includes(endpoint.name) || done.has(endpoint.name)
          ? Effect.void
          : addTool(agent, endpointTool(state, endpoint, `${options.prefix ?? ""}${endpoint.name}`, `agent:${agent.id}`)).pipe(
            Effect.tap(() => done.add(endpoint.name)),
            Effect.catchAll((error: InvalidToolName) => Effect.logWarning(`attach: ${error.message}`))
          )
      // Endpoints that exist now are tools when attach returns; later ones follow.
      const seen = yield* state.events.size
      yield* Effect.forEach([...state.endpoints.values()], attachOne, { discard: true })
      const complete = yield* Deferred.make<void>()
      const checkComplete = Effect.suspend(() =>
        options.only !== undefined && options.only.every((name) => done.has(name))
          ? Deferred.succeed(complete, undefined)
          : Effect.void
      )
      yield* checkComplete
      yield* state.events.stream(seen).pipe(
        Stream.runForEach((event) => {
          const endpoint = event._tag === "endpoint" ? state.endpoints.get(event.name) : undefined
          return endpoint === undefined ? Effect.void : Effect.zipRight(attachOne(endpoint), checkComplete)
        }),
        Effect.ensuring(Deferred.succeed(complete, undefined)),
        Effect.forkIn(caller.scope)
      )
      if (options.only !== undefined) {
        yield* Deferred.await(complete)
        const missing = options.only.filter((name) => !done.has(name))
        if (missing.length > 0) {
          return yield* new EndpointNotFound({ process: state.path, endpoint: missing.join(", "), available: [...done] })
        }
      }
    }),
  cancel: Effect.asVoid(Fiber.interrupt(fiber)),
  await: Effect.flatMap(Fiber.await(fiber), (exit) =>
    Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
      ? Effect.fail(new ProcessCancelled({ process: state.path, reason: "cancelled" }))
      : exit
  )
})
