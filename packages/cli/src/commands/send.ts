/** `ramure send` and `ramure call`: talk to a live run. */
import { Args, Command } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as ControlClient from "../ControlClient.js"
import { UsageError } from "../Errors.js"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Terminal from "../Terminal.js"
import { agent, runId } from "./shared.js"

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
    const target = yield* Runs.pickAgent(run, status, options.agent)
    yield* client.send(target.id, text)
    yield* Console.log(`sent to ${Format.inline(target.id)}`)
  }).pipe(Effect.scoped)
).pipe(Command.withDescription("Deliver a user message to an agent of a live run: ramure send [id] [--agent X] <message> (with one argument, it is the message)."))

const endpoint = Args.text({ name: "endpoint" }).pipe(Args.withDescription("The endpoint of the run's root process."), Args.optional)
const pairs = Args.text({ name: "key=value" }).pipe(
  Args.withDescription("Arguments; values are parsed as JSON when they parse, else taken as strings."),
  Args.repeated
)

/** `key=value` words as an object; values are JSON when they parse. */
export const parsePairs = (words: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const args: Record<string, unknown> = {}
    for (const word of words) {
      const at = word.indexOf("=")
      if (at <= 0) return yield* new UsageError({ reason: `expected key=value, got "${word}"` })
      const raw = word.slice(at + 1)
      let value: unknown = raw
      try {
        value = JSON.parse(raw)
      } catch {
        // a plain string
      }
      args[word.slice(0, at)] = value
    }
    return args
  })

export const call = Command.make("call", { id: runId, endpoint, pairs }, (options) =>
  Effect.gen(function* () {
    // `[id] <endpoint> [key=value …]`: ids and endpoint names have no `=`.
    const words = [...Option.toArray(options.id), ...Option.toArray(options.endpoint), ...options.pairs]
    const firstPair = words.findIndex((word) => word.includes("="))
    const names = firstPair === -1 ? words : words.slice(0, firstPair)
    if (names.length === 0 || names.length > 2) {
      return yield* new UsageError({ reason: "usage: ramure call [id] <endpoint> [key=value …]" })
    }
    const args = yield* parsePairs(words.slice(names.length))
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, names.length === 2 ? Option.some(names[0]!) : Option.none())
    const client = yield* ControlClient.connect(yield* Runs.requireLive(home, run))
    const value = yield* client.call(names[names.length - 1]!, args)
    yield* Console.log(typeof value === "string" ? Terminal.visible(value) : Terminal.json(value, 2))
  }).pipe(Effect.scoped)
).pipe(Command.withDescription("Call an endpoint of a live run's root process and print its value: ramure call [id] <endpoint> [key=value …]."))
