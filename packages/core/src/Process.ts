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
import { resultText, toJsonSchema } from "./Agent.js"
import {
  describe,
  EndpointFailed,
  EndpointNotFound,
  ProcessCancelled,
  ProcessFailed,
  ProcessTimeout,
  type EndpointError,
  type ProcessError
} from "./Errors.js"
import * as EventLog from "./internal/eventLog.js"
import { CurrentProcess, type Endpoint, type ProcessEvent, type ProcessState } from "./internal/processState.js"
import { Runtime } from "./Runtime.js"

export { CurrentProcess, type ProcessEvent } from "./internal/processState.js"

export interface ProcessOptions {
  /** Fail the process with `ProcessTimeout` after this long. */
  readonly timeout?: Duration.DurationInput
}

/** A named, runnable process definition. Call it to run it as a nested child. */
export interface Process<Args extends ReadonlyArray<any>, A, E, R> {
  (...args: Args): Effect.Effect<A, E | ProcessError, R | Runtime>
  readonly processName: string
  /** @internal */
  readonly run: (args: Args, onStart: (state: ProcessState) => void) => Effect.Effect<A, E | ProcessError, R | Runtime>
}

/**
 * Define a process. Inside the body `Agent.make`, `Process.done`, `wait`,
 * `emit`, `expose` and `spawn` act on this process.
 */
export const make = <Args extends ReadonlyArray<any>, A, E, R>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>,
  options: ProcessOptions = {}
): Process<Args, A, E, Exclude<R, CurrentProcess>> => {
  const run = (args: Args, onStart: (state: ProcessState) => void) =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const parent = Option.getOrUndefined(yield* Effect.serviceOption(CurrentProcess))
      const state = yield* makeState(name, parent)
      onStart(state)
      return yield* Effect.acquireUseRelease(
        Effect.gen(function* () {
          yield* runtime.log({ type: "process_started", process: state.path, data: { name, parent: parent?.path } })
          yield* state.events.append({ _tag: "started", process: state.path })
          if (parent === undefined && runtime.root === undefined) runtime.root = { call: (endpoint, args) => callEndpoint(state, endpoint, args) }
        }),
        () => supervise(state, body(...args), options, parent === undefined ? runtime : undefined),
        (_, exit) => finish(state, exit)
      )
    }) as Effect.Effect<A, E | ProcessError, Exclude<R, CurrentProcess> | Runtime>
  return Object.assign((...args: Args) => run(args, () => {}), { processName: name, run })
}

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

/** Run the body until it returns, `done`/`fail` is called, the timeout fires or the run is stopped. */
const supervise = <A, E, R>(
  state: ProcessState,
  body: Effect.Effect<A, E, R>,
  options: ProcessOptions,
  root: Runtime["Type"] | undefined
) => {
  let effect: Effect.Effect<A, E | ProcessError, Exclude<R, CurrentProcess>> = Effect.raceFirst(
    body.pipe(
      // The first completion wins: a body that returns after `done`/`fail` does not override it.
      Effect.flatMap((value) => Effect.zipRight(Deferred.succeed(state.completion, value), Deferred.await(state.completion))),
      Effect.provideService(CurrentProcess, state)
    ),
    Deferred.await(state.completion) as Effect.Effect<A, ProcessError>
  ) as any
  if (root !== undefined) {
    effect = Effect.raceFirst(
      effect,
      Effect.flatMap(Deferred.await(root.stopRequested), (reason) => new ProcessCancelled({ process: state.path, reason }))
    )
  }
  if (options.timeout !== undefined) {
    const timeout = options.timeout
    effect = Effect.timeoutFail(effect, {
      duration: timeout,
      onTimeout: () => new ProcessTimeout({ process: state.path, timeout: Duration.format(timeout) })
    })
  }
  return effect
}

const finish = (state: ProcessState, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    yield* Scope.close(state.scope, exit)
    let event: ProcessEvent
    let data: Record<string, unknown>
    if (Exit.isSuccess(exit)) {
      event = { _tag: "done", value: exit.value }
      data = { outcome: "done" }
    } else if (Cause.isInterruptedOnly(exit.cause)) {
      event = { _tag: "cancelled", reason: "interrupted" }
      data = { outcome: "cancelled" }
    } else {
      const failure = Cause.failureOption(exit.cause)
      const error = Option.isSome(failure) ? failure.value : Cause.squash(exit.cause)
      const cancelled = error instanceof ProcessCancelled
      event = cancelled ? { _tag: "cancelled", reason: error.reason } : { _tag: "failed", error }
      data = {
        outcome: cancelled ? "cancelled" : error instanceof ProcessTimeout ? "timeout" : "failed",
        error: describe(error)
      }
    }
    yield* runtime.log({ type: "process_ended", process: state.path, data })
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
export const emit = (type: string, data?: unknown): Effect.Effect<void, never, CurrentProcess | Runtime> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runtime = yield* Runtime
    yield* runtime.log({ type: "process_event", process: state.path, data: { type, data } })
    yield* state.events.append({ _tag: "event", type, data })
  })

/** The current process's path, e.g. `main/review-2`. */
export const path: Effect.Effect<string, never, CurrentProcess> = Effect.map(CurrentProcess, (state) => state.path)

/**
 * Offer an endpoint of the current process. The handler runs as part of this
 * process: `emit`, `done` and `fail` inside it act on this process.
 */
export const expose = <A, I, E, R>(
  name: string,
  options: ToolOptions<A, I>,
  handler: (args: A) => Effect.Effect<unknown, E, R>
): Effect.Effect<void, never, CurrentProcess | Runtime | Exclude<R, CurrentProcess>> =>
  Effect.gen(function* () {
    const state = yield* CurrentProcess
    const runtime = yield* Runtime
    const context = yield* Effect.context<any>()
    const decode = Schema.decodeUnknown(options.parameters, { errors: "all", onExcessProperty: "ignore" })
    const failed = (reason: string) => new EndpointFailed({ process: state.path, endpoint: name, reason })
    state.endpoints.set(name, {
      name,
      description: options.description,
      parameters: toJsonSchema(options.parameters),
      call: (args) =>
        Effect.gen(function* () {
          const started = Date.now()
          yield* runtime.log({ type: "endpoint_called", process: state.path, data: { name, args } })
          const result = yield* decode(args).pipe(
            Effect.mapError((error) => failed(`invalid arguments: ${ParseResult.TreeFormatter.formatErrorSync(error)}`)),
            Effect.flatMap((decoded) =>
              handler(decoded).pipe(
                Effect.catchAllCause((cause) => Effect.fail(failed(describe(Cause.squash(cause)))))
              )
            ),
            Effect.provide(context),
            Effect.exit
          )
          yield* runtime.log({
            type: "endpoint_returned",
            process: state.path,
            data: {
              name,
              ok: Exit.isSuccess(result),
              durationMs: Date.now() - started,
              ...(Exit.isFailure(result) ? { error: describe(Cause.squash(result.cause)) } : {})
            }
          })
          return yield* result
        })
    })
    yield* runtime.log({ type: "endpoint_exposed", process: state.path, data: { name, description: options.description } })
    yield* state.events.append({ _tag: "endpoint", name })
  })

const callEndpoint = (state: ProcessState, endpoint: string, args: unknown): Effect.Effect<unknown, EndpointError> =>
  Effect.suspend(() => {
    const found = state.endpoints.get(endpoint)
    return found === undefined
      ? new EndpointNotFound({ process: state.path, endpoint, available: [...state.endpoints.keys()] })
      : found.call(args)
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
): Effect.Effect<ProcessHandle<A, E>, never, R | Runtime | CurrentProcess> =>
  Effect.gen(function* () {
    const parent = yield* CurrentProcess
    const started = yield* Deferred.make<ProcessState>()
    const fiber = yield* process.run(args, (state) => Deferred.unsafeDone(started, Effect.succeed(state))).pipe(
      Effect.forkIn(parent.scope)
    )
    return handle(yield* Deferred.await(started), fiber)
  })

const handle = <A, E>(state: ProcessState, fiber: Fiber.RuntimeFiber<A, E | ProcessError>): ProcessHandle<A, E> => ({
  name: state.name,
  path: state.path,
  events: state.events.stream(0),
  agents: Effect.sync(() => new Map(state.agents)),
  endpoints: Effect.sync(() => [...state.endpoints.keys()]),
  call: (endpoint, args) => callEndpoint(state, endpoint, args ?? {}),
  attach: (agent, options = {}) =>
    Effect.gen(function* () {
      const caller = yield* CurrentProcess
      const done = new Set<string>()
      const attachOne = (endpoint: Endpoint) =>
        options.only !== undefined && !options.only.includes(endpoint.name) || done.has(endpoint.name)
          ? Effect.void
          : agent.addTool({
            definition: {
              name: `${options.prefix ?? ""}${endpoint.name}`,
              description: endpoint.description,
              parameters: endpoint.parameters
            },
            run: (args) => endpoint.call(args).pipe(Effect.map(resultText), Effect.mapError((error) => error.message))
          }).pipe(
            Effect.tap(() => done.add(endpoint.name)),
            Effect.catchAll((error) => Effect.logWarning(`attach: ${error.message}`))
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
