/**
 * Quick start: one agent reads this repository's README and reports a
 * summary through a typed `finish` tool.
 *
 *   npm run example
 */
import { Agent, Machine, Process, Ramure } from "ramure"
import { Console, Effect, Schema } from "effect"
import * as support from "./support.js"

const summarize = Process.make(
  "summarize",
  (file: string) =>
    Effect.gen(function* () {
      const repo = yield* Machine.make({ name: "repo", cwd: process.cwd() })
      const agent = yield* Agent.make("summarizer", {
        machine: repo,
        systemPrompt: "You summarize documents in two sentences."
      })
      yield* Console.log(`agent ${agent.id} is up — watch it with: npx ramure connect --agent ${agent.id}`)
      yield* agent.on(
        "finish",
        { description: "Report your summary", parameters: Schema.Struct({ summary: Schema.String }) },
        ({ summary }) => Process.done(summary)
      )
      yield* agent.send(`Read ${file} and call finish with a two-sentence summary.`)
      return yield* Process.wait()
    }),
  { success: Schema.String, timeout: "5 minutes" }
)

const script = {
  summarizer: [
    support.call("bash", { command: "head -n 12 README.md" }),
    {
      ...support.call("finish", {
        summary:
          "ramure runs coding agents as Effect programs: processes own agents, tools and child processes. " +
          "Everything a process created is cleaned up when it ends."
      }),
      expect: (request) =>
        request.messages.some((m) => m.role === "tool" && m.content.includes("ramure"))
          ? undefined
          : "the agent should have read the README"
    },
    support.say("Done.")
  ]
} satisfies Record<string, ReadonlyArray<import("ramure").ScriptedModel.Turn>>

summarize("README.md").pipe(
  Effect.tap((summary) => Console.log(`\nSummary: ${summary}`)),
  Effect.provide(support.layer(script, { program: "quickstart" })),
  Ramure.runMain
)
