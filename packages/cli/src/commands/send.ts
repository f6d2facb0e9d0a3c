/** `ramure send` and `ramure call`: talk to a live run. */
import { Args, Command } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as CallArgs from "../CallArgs.js"
import * as ControlClient from "../ControlClient.js"
import { UsageError } from "../Errors.js"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Terminal from "../Terminal.js"
import { agent, json, runId } from "./shared.js"

const message = Args.text({ name: "message" }).pipe(
  Args.withDescription("The message to deliver to the agent (quote it)."),
  Args.optional
)

export const send = Command.make("send", { id: runId, message, agent }, (options) =>
  Effect.gen(function* () {
    // `[id] <message>`: the parser fills `id` first, so a single word is the message.
    const [prefix, text] = Option.isSome(options.message)
      ? [options.id, options.message.value]
      : [Option.none<string>(), Option.getOrUndefined(options.id)]
    if (text === undefined) return yield* new UsageError({ reason: "send needs a message: ramure send [id] <message>" })
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, prefix)
    const client = yield* ControlClient.connect(yield* Runs.requireLive(home, run))
    const status = yield* client.status
    const target = yield* Effect.flatMap(Runs.pickAgent(run, status, options.agent), (agent) => Runs.requireActive(run, agent))
    yield* client.send(target.id, text)
    yield* Console.log(`sent to ${Format.inline(target.id)}`)
  }).pipe(Effect.scoped)
).pipe(Command.withDescription("Deliver a user message to an agent of a live run: ramure send [id] [--agent X] <message> (with one argument, it is the message)."))

const endpoint = Args.text({ name: "endpoint" }).pipe(Args.withDescription("The endpoint of the run's root process."), Args.optional)
const pairs = Args.text({ name: "key=value" }).pipe(
  Args.withDescription(
    "Arguments, made into the endpoint's types (a string parameter keeps what you typed; numbers, booleans, arrays and objects are parsed)."
  ),
  Args.repeated
)

/** The run and endpoint that `[id] <endpoint>` names: two words are an id and an endpoint, unless the first is no run's id. */
const callTarget = (home: string, names: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    if (names.length === 0) return yield* new UsageError({ reason: "usage: ramure call [id] <endpoint> [key=value …]" })
    if (names.length > 2) return yield* new UsageError({ reason: `expected key=value, got "${names[2]}"` })
    if (names.length === 1) return { run: yield* Runs.resolve(home, Option.none()), endpoint: names[0]! }
    const run = yield* Runs.resolve(home, Option.some(names[0]!)).pipe(
      Effect.catchTag("UnknownRun", () => new UsageError({ reason: `expected key=value, got "${names[1]}"` }))
    )
    return { run, endpoint: names[1]! }
  })

export const call = Command.make("call", { id: runId, endpoint, pairs, json }, (options) =>
  Effect.gen(function* () {
    // `[id] <endpoint> [key=value …]`: ids and endpoint names have no `=`.
    const words = [...Option.toArray(options.id), ...Option.toArray(options.endpoint), ...options.pairs]
    const firstPair = words.findIndex((word) => word.includes("="))
    const names = firstPair === -1 ? words : words.slice(0, firstPair)
    const home = yield* Runs.home
    const { endpoint, run } = yield* callTarget(home, names)
    const client = yield* ControlClient.connect(yield* Runs.requireLive(home, run))
    const status = yield* client.status
    // The root process's endpoint, as the run describes it.
    const root = status.processes.find((process) => process.parent === undefined && process.state === "running")
    const parameters = status.endpoints.find((e) => e.process === root?.path && e.name === endpoint)?.parameters
    const args = yield* CallArgs.parse(words.slice(names.length), parameters)
    const value = yield* client.call(endpoint, args)
    yield* Console.log(
      options.json ? Terminal.json(value ?? null, 2) : typeof value === "string" ? Terminal.visible(value) : Terminal.json(value, 2)
    )
  }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(
    "Call an endpoint of a live run's root process and print its value: ramure call [id] <endpoint> [key=value …] " +
      "(ramure status lists the endpoints and their parameters). --json prints the value as JSON, strings too."
  )
)
