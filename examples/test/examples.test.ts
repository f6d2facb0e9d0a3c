/**
 * Every example runs end to end as its own program: real pi agents in real
 * tmux sessions against the scripted model, in a private RAMURE_HOME. Each
 * must succeed, print its result, and leave no session, process or registry
 * entry behind.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { expectClean, root, runExample } from "./helpers.js"

describe("examples (real pi in tmux, scripted model)", () => {
  it("quickstart summarizes the README through its finish tool", async () => {
    const run = await runExample("quickstart.ts")
    expect(run.status, run.stderr).toBe(0)
    expect(run.stderr).toContain("scripted model")
    expect(run.stdout).toContain("Summary: ramure runs coding agents as Effect programs")
    expectClean(run)
  })

  it("build-and-review loops through a rejection to an approval", async () => {
    const run = await runExample("build-and-review.ts")
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain("Approved after 2 round(s): add is correct now")
    expect(run.runtimeLog.filter((e) => e.event._tag === "ProcessEmitted" && e.event.type === "submitted")).toHaveLength(2)
    expectClean(run)
  })

  it("fanout counts lines with one agent per package, concurrently", async () => {
    const run = await runExample("fanout.ts")
    expect(run.status, run.stderr).toBe(0)
    const wc = (pkg: string) =>
      Number(execFileSync("bash", ["-c", `find packages/${pkg}/src -name '*.ts' | xargs cat | wc -l`], { cwd: root, encoding: "utf8" }))
    for (const pkg of ["core", "cli", "pi-extension"]) expect(run.stdout).toMatch(new RegExp(`${pkg}\\s+${wc(pkg)} lines`))
    expectClean(run)
  })

  it("spawn-retry observes a failed child and succeeds on the retry", async () => {
    const run = await runExample("spawn-retry.ts")
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain("[supervisor/attempt] failed")
    expect(run.stdout).toContain("attempt 1 failed")
    expect(run.stdout).toContain("Solved on attempt 2: 1")
    expectClean(run)
  })

  it("worktrees: three sandboxed agents fix three bugs on their own branches, and the process merges them", async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-example-repo-"))
    const run = await runExample("worktrees.ts", [directory])
    expect(run.status, run.stderr).toBe(0)
    const repo = path.join(directory, "demo")
    const id8 = run.executionId.slice(0, 8)
    const git = (...args: Array<string>) => execFileSync("git", args, { cwd: repo, encoding: "utf8" })
    for (const bug of ["slug", "median", "clamp"]) {
      expect(run.stdout).toMatch(new RegExp(`${bug}\\s+ramure/${id8}/fix-${bug}  \\S`))
      // Each branch holds its agent's commit of its one file.
      expect(git("diff", "--name-only", "main~3", `ramure/${id8}/fix-${bug}`).split("\n")).toContain(`src/${bug}.js`)
      const created = run.runtimeLog.concat(
        fs.readFileSync(path.join(run.home, "logs", run.executionId, `fix-${bug}.jsonl`), "utf8").trim().split("\n").map((l) => JSON.parse(l))
      ).find((entry) => entry.event._tag === "AgentCreated")
      expect(created.event.machine.sandbox.network).toBe("host")
      expect(created.event.machine.worktree.branch).toBe(`ramure/${id8}/fix-${bug}`)
      expect(fs.existsSync(path.join(run.home, "work", run.executionId, `fix-${bug}`))).toBe(false)
    }
    expect(run.stdout).toContain("merged 3 branches into main (fast-forward, merge, merge)")
    expect(run.stdout).toContain("ok slug\nok median\nok clamp\nall tests pass")
    // The merged result is the user's checkout, clean, and its tests pass.
    expect(git("status", "--porcelain")).toBe("")
    expect(git("log", "--format=%s", "main").split("\n")).toEqual(expect.arrayContaining([
      "Lowercase slugs",
      "Average the middle pair of an even-length list",
      "Clamp between lo and hi"
    ]))
    expect(execFileSync(process.execPath, ["test.js"], { cwd: repo, encoding: "utf8" })).toBe("ok slug\nok median\nok clamp\n")
    expectClean(run)
    fs.rmSync(directory, { recursive: true, force: true })
  })

  it("attach-pool lets a dispatcher agent use a pool's endpoints as tools", async () => {
    const run = await runExample("attach-pool.ts")
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain(`node ${process.version} on Linux`)
    expectClean(run)
  })
})
