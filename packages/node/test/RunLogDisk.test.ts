/**
 * The run's log on a real disk: full (a 512 KiB tmpfs as the logs directory),
 * or the orchestrator killed with SIGKILL in the middle of tool calls.
 */
import { describe, expect, it } from "@effect/vitest"
import * as AgentClient from "@ramure/protocol/AgentClient"
import { Deferred, Effect, Fiber, Queue } from "effect"
import { execFile, execFileSync, fork } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

import { readFile } from "../src/JsonlLogSink.js"

const root = path.resolve(__dirname, "../../..")
const fixture = (name: string) => path.join(__dirname, "fixtures", name)

type Message = { readonly launch: { readonly agentId: string; readonly url: string; readonly secret: string } } | { readonly ready: string }

interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const run = (args: ReadonlyArray<string>, home: string) =>
  new Promise<Result>((resolve) => {
    execFile(process.execPath, ["--import", "tsx", ...args], { cwd: root, env: { ...process.env, RAMURE_HOME: home }, timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error.code as number | null), stdout, stderr }))
  })

/** `ramure …` from its sources. */
const ramure = (home: string, args: ReadonlyArray<string>) => run([path.join(root, "packages/cli/src/main.ts"), ...args], home)

const unavailable = process.getuid?.() === 0 ? undefined : "mounting a tmpfs needs root (CI runs the tests as root)"
if (unavailable !== undefined) {
  if (process.env.CI) throw new Error(`the full-disk test cannot run, and CI must run it: ${unavailable}`)
  console.warn(`full-disk test skipped: ${unavailable}`)
}

describe.runIf(unavailable === undefined)("a full disk", () => {
  it("fails the run loudly: exit code 1, one line saying why, no torn line, and ramure ls --all shows the reason", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-disk-"))
    const logs = path.join(home, "logs")
    fs.mkdirSync(logs, { mode: 0o700 })
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", logs])
    try {
      const result = await run([fixture("log-flood.ts")], home)
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/^LogWriteFailed: cannot write the run's log \S+: ENOSPC: no space left on device, write\n$/)

      const [executionId, ...others] = fs.readdirSync(logs)
      expect(others).toEqual([])
      const directory = path.join(logs, executionId!)
      const logFiles = fs.readdirSync(directory).filter((name) => name.endsWith(".jsonl"))
      expect(logFiles.sort()).toEqual(["_runtime.jsonl", "w.jsonl"])
      for (const file of logFiles) {
        const text = fs.readFileSync(path.join(directory, file), "utf8")
        expect(text.endsWith("\n")).toBe(true)
        // Every line whole: a batch that did not fit was cut back, never left half written.
        for (const line of text.slice(0, -1).split("\n")) expect(() => JSON.parse(line)).not.toThrow()
      }
      const runtime = fs.readFileSync(path.join(directory, "_runtime.jsonl"), "utf8").trimEnd().split("\n").map((line) => JSON.parse(line))
      const ended = runtime.at(-1)
      expect(ended.event).toMatchObject({ _tag: "RunEnded", outcome: "failed" })
      expect(ended.event.error).toMatch(/^LogWriteFailed: cannot write the run's log .*ENOSPC/)
      expect(runtime.find((e) => e.event._tag === "ProcessEnded")?.event).toMatchObject({ outcome: "failed" })
      // A lot was logged before the disk filled up.
      expect(fs.statSync(path.join(directory, "w.jsonl")).size).toBeGreaterThan(256 * 1024)

      const listed = await ramure(home, ["ls", "--all", "--json"])
      expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ id: executionId, live: false, outcome: `failed: ${ended.event.error}` })])
      expect((await ramure(home, ["ls", "--all"])).stdout).toContain("failed: LogWriteFailed: cannot write the run's log")
    } finally {
      execFileSync("umount", [logs])
      fs.rmSync(home, { recursive: true, force: true })
    }
  }, 180_000)
})

describe("a SIGKILL of the orchestrator", () => {
  it.live("loses no tool result an agent received: each is in the log (written before it was sent)", () =>
    Effect.gen(function* () {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-kill-"))
      const messages = yield* Queue.unbounded<Message>()
      const child = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const child = fork(fixture("remote-agents.ts"), ["10"], {
            cwd: root,
            env: { ...process.env, RAMURE_HOME: home },
            execArgv: ["--import", "tsx"],
            stdio: ["ignore", "inherit", "inherit", "ipc"]
          })
          child.on("message", (message) => Queue.unsafeOffer(messages, message as Message))
          return child
        }),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      const exited = Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
      })
      const clients: Array<AgentClient.AgentClient> = []
      let executionId: string | undefined
      while (executionId === undefined) {
        const message = yield* Queue.take(messages)
        if ("launch" in message) {
          const { agentId, secret, url } = message.launch
          clients.push(yield* AgentClient.make({ url, agentId, token: secret }))
        } else executionId = message.ready
      }
      yield* Effect.forEach(clients, (client) => client.synced, { discard: true })

      // Every agent has 32 calls of `echo` in flight at all times; the orchestrator is killed once 1,000 results have arrived.
      const received: Array<{ readonly agent: string; readonly callId: string; readonly text: string }> = []
      const enough = yield* Deferred.make<void>()
      const callers = clients.flatMap((client) => Array.from({ length: 32 }, (_, lane) => ({ client, lane })))
      const calling = yield* Effect.forEach(callers, ({ client, lane }) =>
        Effect.gen(function* () {
          for (let i = 0; ; i++) {
            const callId = `${client.agentId}-${lane}-${i}`
            const text = `${callId} ${"y".repeat(200)}`
            const result = yield* client.call("echo", { text }, callId)
            received.push({ agent: client.agentId, callId, text: result.text })
            if (received.length >= 1_000) yield* Deferred.succeed(enough, undefined)
          }
        }), { concurrency: "unbounded", discard: true }).pipe(Effect.fork)
      yield* Deferred.await(enough)
      child.kill("SIGKILL")
      yield* exited
      yield* Fiber.interrupt(calling)

      const directory = path.join(home, "logs", executionId)
      const returned = new Map(
        fs.readdirSync(directory).filter((file) => file.startsWith("w")).flatMap((file) => readFile(path.join(directory, file)))
          .flatMap((entry) => (entry.event._tag === "ToolReturned" ? [[entry.event.callId, entry.event.text] as const] : []))
      )
      expect(received.length).toBeGreaterThanOrEqual(1_000)
      const missing = received.filter((result) => returned.get(result.callId) !== result.text)
      expect(missing).toEqual([])
      fs.rmSync(home, { recursive: true, force: true })
    }).pipe(Effect.scoped), 120_000)
})
