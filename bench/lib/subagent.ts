/**
 * pi's own answer to fan-out, for comparison: the `subagent` example
 * extension that ships with pi. A parent pi (print mode, scripted model)
 * calls `subagent` with parallel tasks; the extension runs each as a
 * `pi --mode json -p` child process.
 */
import * as PiAgents from "@ramure/pi/PiAgents"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import * as Command from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { now } from "./Figure.js"
import { model } from "./pi.js"

/** The extension's entry file, if this pi ships it. */
export const subagentExtension = (): string | undefined => {
  const cli = PiAgents.piCli()
  if (cli === undefined) return undefined
  for (let dir = path.dirname(cli); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "examples", "extensions", "subagent", "index.ts")
    if (fs.existsSync(candidate)) return candidate
  }
  return undefined
}

const workerAgent = `---
name: worker
description: Does one small task
model: ${model}
---

You are a worker. Do the task and answer briefly.
`

/**
 * Run a parent pi whose model asks `subagent` for `children` parallel tasks;
 * the time from the parent's tool call until its model gets the results.
 */
export const runPiSubagentFanout = (dir: string, children: number) =>
  Effect.gen(function* () {
    const marks = { called: 0, answered: 0 }
    const tasks = Array.from({ length: children }, (_, i) => ({ agent: "worker", task: `Say done ${i + 1}.` }))
    // Parent and children share one script (they send the same agent header): the children's turns
    // all come between the parent's tool call and the parent's next request.
    const server = yield* ScriptedModel.make({
      scripts: {
        parent: [
          { expect: () => void (marks.called = now()), toolCalls: [{ name: "subagent", arguments: { tasks } }] },
          ...tasks.map(() => ({ text: "done" })),
          { expect: () => void (marks.answered = now()), text: "all done" }
        ]
      }
    })
    const agentDir = path.join(dir, "pi")
    fs.mkdirSync(path.join(agentDir, "agents"), { recursive: true, mode: 0o700 })
    fs.writeFileSync(path.join(agentDir, "agents", "worker.md"), workerAgent)
    fs.writeFileSync(path.join(agentDir, "models.json"), JSON.stringify(ScriptedModel.piModelsJson(server.baseUrl())))
    const slash = model.indexOf("/")
    fs.writeFileSync(
      path.join(agentDir, "settings.json"),
      JSON.stringify({ defaultProvider: model.slice(0, slash), defaultModel: model.slice(slash + 1) })
    )
    const exitCode = yield* Command.make(
      process.execPath,
      PiAgents.piCli()!,
      "-p",
      "--no-session",
      "--no-skills",
      "--no-prompt-templates",
      "--no-context-files",
      "--no-extensions",
      "-e",
      subagentExtension()!,
      "--model",
      model,
      "Fan out."
    ).pipe(
      Command.workingDirectory(dir),
      // pi -p reads piped stdin until it closes.
      Command.stdin(Stream.empty),
      Command.env({
        PI_CODING_AGENT_DIR: agentDir,
        PI_OFFLINE: "1",
        PI_SKIP_VERSION_CHECK: "1",
        PI_TELEMETRY: "0",
        RAMURE_AGENT_ID: "parent"
      }),
      Command.exitCode,
      Effect.provide(NodeContext.layer)
    )
    const failures = yield* server.failures
    if (exitCode !== 0 || failures.length > 0 || marks.answered === 0) {
      return yield* Effect.fail(new Error(`pi subagent fan-out failed (exit ${exitCode}): ${JSON.stringify(failures)}`))
    }
    return marks.answered - marks.called
  }).pipe(Effect.scoped)
