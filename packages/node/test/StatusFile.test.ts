import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import { RunInfo } from "@ramure/core/RunInfo"
import * as RamureTest from "@ramure/testing/RamureTest"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FILE } from "../src/StatusFile.js"

const tempHome = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-status-test-"))),
  (home) => Effect.sync(() => fs.rmSync(home, { recursive: true, force: true }))
)

const statusFile = (home: string, executionId: string) => path.join(home, "logs", executionId, FILE)

/** Wait (polling the file) until STATUS.md satisfies `done`; its text. */
const eventually = (file: string, done: (text: string) => boolean) =>
  Effect.gen(function* () {
    while (true) {
      const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
      if (done(text)) return text
      yield* Effect.sleep("20 millis")
    }
  }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`${file} never got there`) }))

const Task = Schema.Struct({
  spec: Schema.String,
  priority: Schema.optional(Schema.Int.annotations({ default: 0 }))
})

describe("STATUS.md", () => {
  it.live("tells whoever opens the run's folder what is going on, and how it ended", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      let during = ""
      const worker = Process.make("worker", () =>
        Effect.gen(function* () {
          yield* Process.expose(
            "add_task",
            { description: "Append a task.\nThe task runs after the others | in order.", parameters: Task },
            ({ spec }) => (spec === "boom" ? Effect.fail("no room") : Effect.succeed(`added ${spec}`))
          )
          return yield* Effect.never
        }))
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const { executionId } = yield* RunInfo
          yield* Agent.make("alice", { budget: { cost: 2, turns: 10, onExceeded: "pause" } })
          const child = yield* Process.spawn(worker)
          yield* child.call("add_task", { spec: "write docs" })
          yield* Effect.ignore(child.call("add_task", { spec: "boom" }))
          // Written as the run goes: the agent, the endpoint and both calls are there before it ends.
          during = yield* eventually(statusFile(home, executionId), (text) => text.includes("failed in"))
          return executionId
        }))
      const executionId = yield* main().pipe(Effect.provide(RamureTest.layerScripted({}, { home, program: "status-test", summary: "Tries the status file" })))
      const text = fs.readFileSync(statusFile(home, executionId), "utf8")

      expect(during).toContain("| alice | idle |")
      expect(during).toContain("Still running.")
      expect(during).toContain("## Budgets\n\n| Budget | Spent / limit | On exceeded | State |\n|---|---|---|---|\n" +
        "| agent alice | cost $0.0000/$2.0000, turns 0/10 | pause | ok |")
      expect(text).toContain(`# ramure run ${executionId.slice(0, 8)}`)
      expect(text).toContain("ramure runs coding agents")
      expect(text).toContain(`- Run: \`${executionId}\``)
      expect(text).toContain("- Program: `status-test`")
      expect(text).toContain("- Summary: Tries the status file")
      expect(text).toMatch(/\| alice \| done: released when its process main ended \| - \| local \/\S+ \| 0 \(\+0 pi\) \| 0\/0 \|/)
      expect(text).toContain("| agent alice | cost $0.0000/$2.0000, turns 0/10 | pause | ended |")
      expect(text).toContain("- `main/worker`: add_task(spec: string, priority?: integer = 0) — Append a task.")
      expect(text).not.toContain("in order")
      expect(text).toMatch(/`main\/worker\.add_task` by main: ok in \d+ ms/)
      expect(text).toMatch(/`main\/worker\.add_task` by main: failed in \d+ ms: no room/)
      expect(text).toMatch(/## Outcome\n\ndone\n$/)
      expect(fs.readdirSync(path.dirname(statusFile(home, executionId))).filter((name) => name.includes("tmp"))).toEqual([])
    }).pipe(Effect.scoped))

  it.live("a run whose process failed is never 'done', even when its program carried on", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      let executionId = ""
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          executionId = (yield* RunInfo).executionId
          yield* Process.fail("the build broke")
          return yield* Process.wait()
        }))
      // The program catches the failure: the run itself ends well.
      const caught = yield* main().pipe(Effect.either, Effect.provide(RamureTest.layerScripted({}, { home, program: "status-test" })))
      expect(caught._tag).toBe("Left")
      const text = fs.readFileSync(statusFile(home, executionId), "utf8")
      expect(text).toMatch(/## Outcome\n\nfailed: ProcessFailed: process main failed: the build broke\n$/)
    }).pipe(Effect.scoped))
})
