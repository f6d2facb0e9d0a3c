/**
 * Reaching a process's endpoints from outside it: calling one (now, or once
 * it is exposed), and attaching them to an agent as tools. A process that
 * has ended answers nothing: calls and attaches fail with `ProcessEnded`, and
 * the tools it gave agents are taken away.
 *
 * @internal
 */
import { Deferred, Duration, Effect, Either, Option, Stream } from "effect"
import type { Agent } from "../Agent.js"
import { addTool } from "./agent.js"
import { currentCall, endpointCall } from "./callContext.js"
import { EndpointNotFound, InvalidToolName, ProcessEnded } from "../Errors.js"
import { sessionOf } from "./agent.js"
import type { ToolHandler } from "./agentSession.js"
import type { Endpoint, ProcessEvent, ProcessState } from "./processState.js"
import { renderResult, toolName } from "./tools.js"

const ended = (state: ProcessState) => new ProcessEnded({ process: state.path })

const notFound = (state: ProcessState, endpoint: string, reason?: string) =>
  new EndpointNotFound({
    process: state.path,
    endpoint,
    available: [...state.endpoints.keys()],
    ...(reason === undefined ? {} : { reason })
  })

/** An endpoint the process itself exposed (not one a child's bubbled events mention). */
const exposed = (event: ProcessEvent): event is Extract<ProcessEvent, { _tag: "endpoint" }> =>
  event._tag === "endpoint" && event.source === undefined

/** Call `endpoint` of the process as it is now. */
export const callEndpoint = (state: ProcessState, endpoint: string, args: unknown, caller: string) =>
  Effect.flatMap(Deferred.isDone(state.ended), (isEnded) => {
    if (isEnded) return Effect.fail(ended(state))
    const found = state.endpoints.get(endpoint)
    return found === undefined
      ? Effect.fail(notFound(state, endpoint))
      : Effect.locally(found.call(args, caller), currentCall, endpointCall(state.path, endpoint))
  })

/** Wait until the process has exposed `endpoint`; fails if it ends first, or after `timeout`. */
export const awaitEndpoint = (
  state: ProcessState,
  endpoint: string,
  timeout: Duration.DurationInput
): Effect.Effect<Endpoint, EndpointNotFound | ProcessEnded> =>
  Effect.gen(function* () {
    // Read first: an endpoint exposed after this point is an event at or after `from`.
    const from = yield* state.events.size
    if (yield* Deferred.isDone(state.ended)) return yield* ended(state)
    const now = state.endpoints.get(endpoint)
    if (now !== undefined) return now
    const appeared = state.events.stream(from).pipe(
      Stream.filter((event) => exposed(event) && event.name === endpoint),
      Stream.runHead,
      Effect.flatMap(Option.match({ onNone: () => Effect.fail(ended(state)), onSome: () => Effect.void }))
    )
    yield* Effect.raceFirst(appeared, Effect.zipRight(Deferred.await(state.ended), Effect.fail(ended(state)))).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => notFound(state, endpoint, `it was not exposed within ${Duration.format(timeout)}`)
      })
    )
    const found = state.endpoints.get(endpoint)
    return found === undefined ? yield* notFound(state, endpoint) : found
  })

export interface AttachOptions {
  /** Only these endpoints (default: all). */
  readonly only?: ReadonlyArray<string>
  /** Tool name = prefix + endpoint name. */
  readonly prefix?: string
}

/** The tool an attached endpoint becomes: it calls whatever the process exposes under that name at the time of the call. */
const endpointTool = (state: ProcessState, endpoint: Endpoint, tool: string, caller: string): ToolHandler => ({
  definition: { name: tool, description: endpoint.description, parameters: endpoint.parameters },
  run: (args) =>
    callEndpoint(state, endpoint.name, args, caller).pipe(
      Effect.mapError((error) => error.message),
      Effect.flatMap((value) => Either.match(renderResult(value), { onLeft: Effect.fail, onRight: Effect.succeed }))
    )
})

const PREFIX = /^[A-Za-z0-9_-]{0,63}$/

/**
 * Give `agent` one tool per endpoint of the process `state` (those of `only`),
 * now and as they are exposed or exposed again, for as long as `caller`
 * runs. When the process ends, its tools are taken away again.
 */
export const attach = (state: ProcessState, agent: Agent, options: AttachOptions, caller: ProcessState) =>
  Effect.gen(function* () {
    const prefix = options.prefix ?? ""
    if (!PREFIX.test(prefix)) {
      return yield* new InvalidToolName({
        tool: `${prefix}…`,
        reason: `the prefix "${prefix}" makes invalid tool names: use at most 63 letters, digits, "_" or "-"`
      })
    }
    if (yield* Deferred.isDone(state.ended)) return yield* ended(state)
    const wanted = (name: string) => options.only === undefined || options.only.includes(name)
    const session = sessionOf(agent)
    const attached = new Map<string, ToolHandler>()
    const attachOne = (endpoint: Endpoint) =>
      Effect.gen(function* () {
        const tool = endpointTool(state, endpoint, yield* toolName(`${prefix}${endpoint.name}`), `agent:${agent.id}`)
        yield* addTool(agent, tool)
        attached.set(endpoint.name, tool)
      })

    // Endpoints that exist now are tools when attach returns (all of them, or none if one cannot be).
    const seen = yield* state.events.size
    const present = [...state.endpoints.values()].filter((endpoint) => wanted(endpoint.name))
    yield* Effect.forEach(present, (endpoint) => toolName(`${prefix}${endpoint.name}`), { discard: true })
    yield* Effect.forEach(present, attachOne, { discard: true })

    const complete = yield* Deferred.make<void>()
    const checkComplete = Effect.suspend(() =>
      options.only !== undefined && options.only.every((name) => attached.has(name))
        ? Deferred.succeed(complete, undefined)
        : Effect.void
    )
    yield* checkComplete
    const later = state.events.stream(seen).pipe(
      Stream.runForEach((event) => {
        const endpoint = exposed(event) && wanted(event.name) ? state.endpoints.get(event.name) : undefined
        return endpoint === undefined
          ? Effect.void
          : attachOne(endpoint).pipe(
            // Only a name too long with the prefix gets here: the endpoint's own name was checked when it was exposed.
            Effect.catchAll((error) => Effect.logWarning(`attach to ${agent.id}: ${error.message}`)),
            Effect.zipRight(checkComplete)
          )
      })
    )
    const takeAway = Effect.gen(function* () {
      const lifecycle = yield* session.lifecycle
      if (lifecycle._tag === "ShuttingDown" || lifecycle._tag === "Released") return
      for (const tool of attached.values()) yield* session.removeTool(tool.definition.name, tool)
    })
    yield* Effect.raceFirst(later, Deferred.await(state.ended)).pipe(
      Effect.ensuring(Deferred.succeed(complete, undefined)),
      Effect.zipRight(takeAway),
      Effect.forkIn(caller.scope)
    )
    if (options.only !== undefined) {
      yield* Deferred.await(complete)
      const missing = options.only.filter((name) => !attached.has(name))
      if (missing.length > 0) {
        return yield* notFound(state, missing.join(", "), "the process ended without exposing it")
      }
    }
  })
