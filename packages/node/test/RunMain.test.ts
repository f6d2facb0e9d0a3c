/**
 * `Ramure.runMain`, through a real program: an outcome that is not a bug is
 * one line on stderr, without a stack trace; a defect keeps its stack.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(__dirname, "../../..")
const fixture = path.join(__dirname, "fixtures/outcome.ts")

const run = (mode: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-main-"))
    execFile(process.execPath, ["--import", "tsx", fixture, mode], { cwd: root, env: { ...process.env, RAMURE_HOME: home } }, (error, stdout, stderr) => {
      fs.rmSync(home, { recursive: true, force: true })
      resolve({ code: error === null ? 0 : (error.code as number | null), stdout, stderr })
    })
  })

describe("Ramure.runMain", () => {
  it("a program that completes prints its result and exits 0", async () => {
    expect(await run("done")).toEqual({ code: 0, stdout: "done\n", stderr: "" })
  }, 60_000)

  it("a ProcessTimeout is one line on stderr, exit code 1", async () => {
    expect(await run("timeout")).toEqual({ code: 1, stdout: "", stderr: "ProcessTimeout: process main timed out after 1s\n" })
  }, 60_000)

  it("Process.fail is one line on stderr, exit code 1", async () => {
    expect(await run("fail")).toEqual({ code: 1, stdout: "", stderr: "ProcessFailed: process main failed: the reviewer rejected it\n" })
  }, 60_000)

  it("a defect keeps its stack trace, exit code 1", async () => {
    const result = await run("defect")
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("Error: a bug in the program")
    expect(result.stderr).toMatch(/^\s+at .*outcome\.ts/m)
  }, 60_000)
})
