/**
 * `ramure resume`: a run whose orchestrator was killed (SIGKILL) is started
 * again as itself, and what it had done is replayed from its log, not done
 * again: a completed step, an emit, a child process that had ended.
 */
import { expect, layer } from "@effect/vitest"
import { readDirectory } from "@ramure/node/JsonlLogSink"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { built, eventually, ramure, startRun, tempHome } from "./helpers.js"

const fixture = "resume-run.ts"

const workDirectory = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-resume-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

layer(built, { timeout: "180 seconds", excludeTestServices: true })("ramure resume", (it) => {
  it.scoped("a killed run resumes as itself: its log goes on, and what it had done is not done again", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const work = yield* workDirectory
      const run = yield* startRun(home, [work], {}, fixture)
      run.process.child.kill("SIGKILL")
      yield* run.process.exited
      const before = readDirectory(path.join(home, "logs", run.id))

      // Not resumable while the release file is missing? It is: the program waits; release it, and resume.
      fs.writeFileSync(path.join(work, "release"), "")
      const resumed = yield* ramure(home, ["resume", run.id.slice(0, 8)])
      expect(resumed.stderr).toContain(`ramure: resuming run ${run.id.slice(0, 8)} (resume-run)`)
      // What is resumed, and what was replayed: no stale-entry warning, no error.
      expect(resumed.stderr.trim().split("\n")).toEqual([
        expect.stringMatching(/^ramure: resuming run /),
        `ramure: run ${run.id.slice(0, 8)} has caught up with its journal: replayed 1 process that had ended, 1 step and ` +
        "0 messages already sent; took over 0 agents, started 0 again"
      ])
      expect(resumed.code).toBe(0)
      expect(resumed.stdout).toContain(`ready ${run.id}`)
      expect(resumed.stdout).toContain(JSON.stringify({ prepared: "prepared", value: 42 }))

      // The step and the child ran once, before the kill; the resumed program got their results from the journal.
      expect(fs.readFileSync(path.join(work, "step.txt"), "utf8")).toBe("ran\n")
      expect(fs.readFileSync(path.join(work, "child.txt"), "utf8")).toBe("ran\n")

      const after = readDirectory(path.join(home, "logs", run.id))
      // One log: the entries before the kill are kept, the numbers go on without a gap.
      expect(after.slice(0, before.length)).toEqual(before)
      expect(after.map((e) => e.n)).toEqual(after.map((_, i) => i + 1))
      const tags = after.map((e) => e.event._tag)
      expect(tags.filter((t) => t === "RunStarted")).toHaveLength(1)
      expect(tags.filter((t) => t === "RunResumed")).toHaveLength(1)
      expect(tags.filter((t) => t === "ProcessEmitted")).toHaveLength(1)
      expect(tags.filter((t) => t === "StepCompleted")).toHaveLength(1)
      expect(after.filter((e) => e.event._tag === "ProcessStarted").map((e) => e.process)).toEqual(["main", "main/child"])
      expect(after.at(-1)?.event).toEqual({ _tag: "RunEnded", outcome: "done" })

      // Done now: nothing more to resume.
      const again = yield* ramure(home, ["resume", run.id.slice(0, 8)])
      expect(again.code).not.toBe(0)
      expect(again.stderr).toBe(`ramure: run ${run.id.slice(0, 8)} ended (done): there is nothing to resume\n`)
    }))

  it.scoped("a live run, or one that did not record how it started, is not resumed", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const work = yield* workDirectory
      const run = yield* startRun(home, [work], {}, fixture)
      const live = yield* ramure(home, ["resume", run.id.slice(0, 8)])
      expect(live.code).not.toBe(0)
      expect(live.stderr).toContain(`run ${run.id.slice(0, 8)} is live`)
      fs.writeFileSync(path.join(work, "release"), "")
      yield* eventually("the run's end", Effect.sync(() => (run.process.child.exitCode === null ? undefined : true)))
      expect(run.process.child.exitCode).toBe(0)
    }))
})
