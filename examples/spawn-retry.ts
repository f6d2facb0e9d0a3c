/**
 * Spawn and observe, with retry: a supervisor spawns an attempt as a child
 * process, follows its events, and retries when the child fails — each
 * attempt gets a fresh agent, and a failed attempt's agent is gone before the
 * next one starts.
 *
 *   npx tsx examples/spawn-retry.ts
 */
import { Agent, Errors, Process, Ramure, ScriptedModel } from "ramure"
import { Cause, Console, Effect, Exit, Option, Schema, Stream } from "effect"
import * as support from "./support.js"

const attempt = Process.make(
  "attempt",
  (n: number) =>
    Effect.gen(function* () {
      const solver = yield* Agent.make("solver", { systemPrompt: "You solve small shell puzzles." })
      yield* solver.on(
        "solved",
        { description: "Report the answer", parameters: Schema.Struct({ answer: Schema.String }) },
        ({ answer }) => Process.done(answer)
      )
      yield* solver.on(
        "give_up",
        { description: "Give up on this attempt", parameters: Schema.Struct({ reason: Schema.String }) },
        ({ reason }) => Process.fail(reason)
      )
      yield* Process.emit("attempt", { n })
      yield* solver.send(`Attempt ${n}: how many lines does /etc/hostname have? Call solved with the number, or give_up.`)
      return yield* Process.wait()
    }),
  { success: Schema.String, timeout: "3 minutes" }
)

const describeEvent = (event: Process.ProcessEvent): string => {
  switch (event._tag) {
    case "event":
      return `${event.type} ${JSON.stringify(event.data)}`
    case "failed":
      return `failed: ${Errors.describe(event.error)}`
    case "done":
      return `done: ${JSON.stringify(event.value)}`
    case "cancelled":
      return `cancelled: ${event.reason}`
    case "agent":
      return `agent ${event.agent} is up`
    case "endpoint":
      return `endpoint ${event.name}`
    case "started":
      return "started"
  }
}

const supervisor = Process.make("supervisor", (maxAttempts: number) =>
  Effect.gen(function* () {
    for (let n = 1; n <= maxAttempts; n++) {
      const child = yield* Process.spawn(attempt, n)
      yield* child.events.pipe(
        Stream.runForEach((event) => Console.log(`[${child.path}] ${describeEvent(event)}`)),
        Effect.fork
      )
      const exit = yield* Effect.exit(child.await)
      if (Exit.isSuccess(exit)) return { attempts: n, answer: exit.value }
      const reason = Option.getOrUndefined(Cause.failureOption(exit.cause))
      yield* Console.log(`attempt ${n} failed (${Errors.describe(reason)}); retrying`)
    }
    return yield* new Errors.ProcessFailed({ process: "supervisor", reason: `no attempt succeeded in ${maxAttempts}` })
  }))

/**
 * Each attempt has its own agent named "solver": the run calls them `solver` and `solver-2` (an id is never
 * reused in a run). The first gives up, the second solves it.
 */
const script: Record<string, ScriptedModel.Script> = {
  solver: [
    support.call("give_up", { reason: "I did not look before answering" }),
    support.say("Gave up.")
  ],
  "solver-2": [
    support.call("bash", { command: "wc -l < /etc/hostname" }),
    support.call("solved", (request: ScriptedModel.ChatRequest) => ({
      answer: ScriptedModel.lastToolResults(request)[0]?.content.trim() ?? "?"
    })),
    support.say("Solved.")
  ]
}

supervisor(3).pipe(
  Effect.tap(({ answer, attempts }) => Console.log(`\nSolved on attempt ${attempts}: ${answer}`)),
  Effect.provide(support.layer(script, { program: "spawn-retry" })),
  Ramure.runMain
)
