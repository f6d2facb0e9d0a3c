/**
 * Build and review: a builder writes code, an auditor reviews it. The builder
 * submits through a tool; the process copies the file to the auditor's
 * machine; the auditor approves or rejects; a rejection goes back to the
 * builder — until approval (or three rounds). The two are also connected, so
 * they can message each other directly.
 *
 *   npx tsx examples/build-and-review.ts
 */
import { Agent, Process, Ramure, ScriptedModel } from "ramure"
import { Console, Effect, Schema } from "effect"
import * as support from "./support.js"

const buildAndReview = Process.make(
  "build-and-review",
  (task: string) =>
    Effect.gen(function* () {
      const [builder, auditor] = yield* Effect.all(
        [
          Agent.make("builder", { systemPrompt: "You write small TypeScript modules. Call submit when a file is ready." }),
          Agent.make("auditor", { systemPrompt: "You review code strictly. Call approve or reject." })
        ],
        { concurrency: "unbounded" }
      )
      yield* Agent.connect(builder, auditor, { direction: "both" })
      let rounds = 0

      yield* builder.on(
        "submit",
        { description: "Submit a file for review", parameters: Schema.Struct({ path: Schema.String }) },
        ({ path }) =>
          Effect.gen(function* () {
            rounds++
            yield* auditor.machine.writeFile(path, yield* builder.machine.readFile(path))
            yield* Process.emit("submitted", { round: rounds, path })
            yield* auditor.send(`Round ${rounds}: review ${path} (it is in your working directory). Call approve or reject.`)
            return `submitted for review (round ${rounds})`
          })
      )
      yield* auditor.on(
        "approve",
        { description: "Approve the submission", parameters: Schema.Struct({ note: Schema.String }) },
        ({ note }) => Process.done({ rounds, note })
      )
      yield* auditor.on(
        "reject",
        { description: "Reject the submission", parameters: Schema.Struct({ reason: Schema.String }) },
        ({ reason }) =>
          rounds >= 3
            ? Process.fail(`still rejected after ${rounds} rounds: ${reason}`)
            : Effect.as(builder.send(`The auditor rejected your submission: ${reason}. Fix it and submit again.`), "sent to the builder")
      )
      yield* builder.send(task)
      return yield* Process.wait()
    }),
  { success: Schema.Struct({ rounds: Schema.Number, note: Schema.String }), timeout: "10 minutes" }
)

const toolSaw = (text: string) => (request: ScriptedModel.ChatRequest) =>
  ScriptedModel.lastToolResults(request).some((result) => result.content.includes(text)) ? undefined : `expected a tool result with "${text}"`

const script: Record<string, ScriptedModel.Script> = {
  builder: [
    support.call("bash", { command: "printf 'export const add = (a: number, b: number) => a - b\\n' > add.ts" }),
    support.call("submit", { path: "add.ts" }),
    support.say("Submitted add.ts."),
    {
      ...support.call("bash", { command: "printf 'export const add = (a: number, b: number) => a + b\\n' > add.ts" }),
      expect: (request) => (ScriptedModel.lastUserText(request)?.includes("rejected") ? undefined : "expected the rejection")
    },
    support.call("submit", { path: "add.ts" }),
    support.say("Fixed and resubmitted.")
  ],
  auditor: [
    support.call("bash", { command: "cat add.ts" }),
    { ...support.call("reject", { reason: "add subtracts (a - b)" }), expect: toolSaw("a - b") },
    support.say("Rejected."),
    support.call("bash", { command: "cat add.ts" }),
    { ...support.call("approve", { note: "add is correct now" }), expect: toolSaw("a + b") },
    support.say("Approved.")
  ]
}

buildAndReview("Write add.ts exporting add(a, b) that returns the sum, then submit it.").pipe(
  Effect.tap(({ note, rounds }) => Console.log(`\nApproved after ${rounds} round(s): ${note}`)),
  Effect.provide(support.layer(script, { program: "build-and-review" })),
  Ramure.runMain
)
