/**
 * Cleanup by ownership outside tmux: programs of local machines carry their
 * owner in their environment; only those whose orchestrator is gone are killed.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import { collectSync } from "../src/Orphans.js"
import { startTimeOf } from "../src/Owner.js"
import { alive } from "../../core/test/helpers.js"

const running = alive

/** A detached `sleep` (its own process group) marked as owned by `owner`. */
const marked = (owner: string) => {
  const child = spawn("sleep", ["1000"], { detached: true, stdio: "ignore", env: { ...process.env, RAMURE_OWNER: owner } })
  child.unref()
  return child.pid!
}

describe("orphan collection outside tmux", () => {
  it("kills the process groups of a dead orchestrator (any home), and leaves a live one's and a recycled pid's rightful owner", () => {
    const socket = `ramure-orphans-${process.pid}-${crypto.randomBytes(3).toString("hex")}`
    const dead = spawnSync("true").pid!
    const orphan = marked(`${dead}:77:0ddba11a-0000-4000-8000-000000000000:/another/home`)
    const recycled = marked(`${process.pid}:1:0ddba11b-0000-4000-8000-000000000000:/another/home`)
    const live = marked(`${process.pid}:${startTimeOf(process.pid)}:0ddba11c-0000-4000-8000-000000000000:/another/home`)
    try {
      const collected = collectSync(socket)
      const killed = collected.orphans.flatMap((run) => run.processes)
      expect(killed).toEqual(expect.arrayContaining([orphan, recycled]))
      expect(killed).not.toContain(live)
      expect(collected.orphans.find((run) => run.processes.includes(orphan))?.owner).toEqual({
        pid: dead,
        started: "77",
        executionId: "0ddba11a-0000-4000-8000-000000000000",
        home: "/another/home"
      })
      expect(running(live)).toBe(true)
      // A SIGKILLed process dies when next scheduled; bounded so a survivor fails the test.
      const deadline = Date.now() + 10_000
      while ([orphan, recycled].some(running) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
      expect([orphan, recycled].filter(running)).toEqual([])
    } finally {
      for (const pid of [orphan, recycled, live]) {
        try {
          process.kill(-pid, "SIGKILL")
        } catch {
          // gone
        }
      }
    }
  })
})
