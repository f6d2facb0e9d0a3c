/**
 * Concurrent fan-out: one agent per package counts its TypeScript lines, all
 * at once; the process collects the reports.
 *
 *   npx tsx examples/fanout.ts
 */
import { Agent, Machine, Process, Ramure, ScriptedModel } from "ramure"
import { Console, Effect, Schema } from "effect"
import * as support from "./support.js"

const packages = ["core", "cli", "pi-extension"]

const countLines = Process.make("count", (repo: Machine.Machine, pkg: string) =>
  Effect.gen(function* () {
    const agent = yield* Agent.make(`counter-${pkg}`, { machine: repo })
    yield* agent.on(
      "report",
      { description: "Report the line count", parameters: Schema.Struct({ lines: Schema.Int }) },
      ({ lines }) => Process.done({ pkg, lines })
    )
    yield* agent.send(`Count the lines of the TypeScript files under packages/${pkg}/src and call report.`)
    return yield* Process.wait()
  }),
  { success: Schema.Struct({ pkg: Schema.String, lines: Schema.Number }), timeout: "5 minutes" }
)

const fanout = Process.make("fanout", () =>
  Effect.gen(function* () {
    const repo = yield* Machine.make({ name: "repo", cwd: process.cwd() })
    return yield* Effect.all(packages.map((pkg) => countLines(repo, pkg)), { concurrency: "unbounded" })
  }))

/** The scripted counter runs wc and reports the number it read. */
const counter = (pkg: string): ScriptedModel.Script => [
  support.call("bash", { command: `find packages/${pkg}/src -name '*.ts' | xargs cat | wc -l` }),
  support.call("report", (request: ScriptedModel.ChatRequest) => ({
    lines: Number(ScriptedModel.lastToolResults(request)[0]?.content.trim() ?? -1)
  })),
  support.say("Reported.")
]

fanout().pipe(
  Effect.tap((reports) => Console.log("\n" + reports.map(({ lines, pkg }) => `${pkg.padEnd(14)} ${lines} lines`).join("\n"))),
  Effect.provide(support.layer(Object.fromEntries(packages.map((pkg) => [`counter-${pkg}`, counter(pkg)])), { program: "fanout" })),
  Ramure.runMain
)
