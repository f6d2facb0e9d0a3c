/** Running an example as its own program, and checking that it left nothing behind. */
import { expect } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { alive, tmuxSessionsOf } from "../../packages/core/test/helpers.js"

export const root = path.resolve(__dirname, "../..")

export const runExample = async (file: string, args: ReadonlyArray<string> = [], extraEnv: NodeJS.ProcessEnv = {}) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-example-"))
  const env: NodeJS.ProcessEnv = { ...process.env, RAMURE_HOME: home, ...extraEnv }
  delete env.RAMURE_MODEL
  const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      path.join(root, "node_modules/.bin/tsx"),
      [path.join(root, "examples", file), ...args],
      { cwd: root, env, encoding: "utf8", timeout: 150_000 },
      (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })
    )
  })
  const [executionId] = fs.readdirSync(path.join(home, "logs"))
  const runtimeLog = fs
    .readFileSync(path.join(home, "logs", executionId!, "_runtime.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line))
  return { ...result, home, executionId: executionId!, runtimeLog }
}

export const expectClean = (run: Awaited<ReturnType<typeof runExample>>) => {
  expect(tmuxSessionsOf(run.executionId)).toEqual([])
  expect(fs.readdirSync(path.join(run.home, "runtimes"))).toEqual([])
  expect(run.runtimeLog.at(-1)).toMatchObject({ event: { _tag: "RunEnded", outcome: "done" } })
  const pids = run.runtimeLog.concat(
    fs.readdirSync(path.join(run.home, "logs", run.executionId)).filter((file) => file.endsWith(".jsonl")).flatMap((file) =>
      fs.readFileSync(path.join(run.home, "logs", run.executionId, file), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    )
  ).filter((entry) => entry.event._tag === "AgentCreated" && entry.event.pid).map((entry) => entry.event.pid as number)
  expect(pids.length).toBeGreaterThan(0)
  for (const pid of pids) expect(alive(pid)).toBe(false)
}
