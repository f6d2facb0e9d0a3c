/**
 * The progress line a program shows on stderr while its run works: in a real
 * pseudo-terminal (`script`), live and then summed up; nothing when stderr is
 * not a terminal or when it is turned off. And a run that exports no traces
 * loads no OpenTelemetry code.
 */
import { describe, expect, it } from "@effect/vitest"
import * as RunStatus from "@ramure/core/RunStatus"
import type { LogEntry } from "@ramure/core/RunEvent"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Duration, Effect, Schedule } from "effect"
import { activity, count, duration, enabled, finalLine, line, summary } from "../src/NodeProgress.js"

const repoRoot = path.resolve(__dirname, "../../..")
const fixture = path.join(__dirname, "fixtures/progress-run.ts")

/** The fixture run, in a pseudo-terminal (`script`) or with pipes; killed with the scope if still running. */
const start = (options: { readonly tty: boolean; readonly env?: NodeJS.ProcessEnv; readonly preload?: ReadonlyArray<string> }) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-progress-"))
      const node = [process.execPath, ...(options.preload ?? []).flatMap((file) => ["--import", file]), "--import", "tsx", fixture]
      const env = { ...process.env, RAMURE_HOME: home, COLUMNS: "200", ...options.env }
      const child: ChildProcess = options.tty
        ? spawn("script", ["-qec", node.join(" "), "/dev/null"], { cwd: repoRoot, env, stdio: "pipe" })
        : spawn(node[0]!, node.slice(1), { cwd: repoRoot, env, stdio: "pipe" })
      const output = { stdout: "", stderr: "" }
      child.stdout!.on("data", (chunk) => (output.stdout += chunk))
      child.stderr!.on("data", (chunk) => (output.stderr += chunk))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      return { child, output, home, exited: Effect.promise(() => exited) }
    }),
    ({ child, home }) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        fs.rmSync(home, { recursive: true, force: true })
      })
  )

/** Wait until `check` holds (the run is slow on a loaded machine; no step is timed). */
const until = (what: string, check: () => boolean, timeout: Duration.DurationInput = "60 seconds") =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail("not yet"))).pipe(
    Effect.retry({ schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting for ${what}`) }),
    Effect.orDie
  )

const ESC = "\u001b"

describe("progress line", () => {
  it.scopedLive("in a terminal: a live line (agents, tool calls, tokens, cost, what happened last), the program's output above it, a summary at the end", () =>
    Effect.gen(function* () {
      const run = yield* start({ tty: true })
      const all = () => run.output.stdout + run.output.stderr
      // Both agents are working, have had their model's answer, and wait.
      yield* until("the live line", () => /2 agents: 2 working │ 0 tool calls │ 2\.4k→600 tokens \$0\.0250/.test(all()))
      yield* until("the program's output", () => all().includes("waiting"))
      run.child.stdin!.write("\n")
      expect(yield* run.exited).toBe(0)
      const output = all()
      expect(output).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] 2 agents: 2 working │ 0 tool calls │ 2\.4k→600 tokens \$0\.0250 │ (alpha|beta) \S/)
      // What the program printed while the line was shown replaced it, on a line of its own.
      expect(output).toMatch(new RegExp(`\\r${ESC}\\[2Kgo\\r?\\n`))
      expect(output).toMatch(new RegExp(`\\r${ESC}\\[2Kboth reported\\r?\\n`))
      expect(output).toMatch(
        new RegExp(`\\r${ESC}\\[2Kramure: run done after \\d+s │ 2 agents: 2 done │ 2 tool calls │ 2\\.4k→600 tokens \\$0\\.0250\\r?\\n`)
      )
      // Nothing is drawn after the summary.
      expect(output.slice(output.indexOf("ramure: run done"))).not.toContain(`${ESC}[2K`)
    }))

  it.scopedLive("without a terminal, or turned off with RAMURE_PROGRESS=0, nothing is shown", () =>
    Effect.gen(function* () {
      const piped = yield* start({ tty: false })
      yield* until("the program to wait", () => piped.output.stdout.includes("waiting"))
      piped.child.stdin!.write("\n")
      expect(yield* piped.exited).toBe(0)
      expect(piped.output.stdout).toBe("waiting\ngo\nboth reported\n")
      expect(piped.output.stderr).toBe("")

      const off = yield* start({ tty: true, env: { RAMURE_PROGRESS: "0" } })
      yield* until("the program to wait", () => off.output.stdout.includes("waiting"))
      off.child.stdin!.write("\n")
      expect(yield* off.exited).toBe(0)
      expect(off.output.stdout).toContain("both reported")
      expect(off.output.stdout).not.toContain("agents:")
      expect(off.output.stdout).not.toContain(`${ESC}[2K`)
      expect(off.output.stdout).not.toContain("ramure: run")
    }))

  it.scopedLive("a run that exports no traces loads no OpenTelemetry code", () =>
    Effect.gen(function* () {
      const loaded = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ramure-modules-")), "loaded.txt")
      const preload = [path.join(__dirname, "fixtures/loaded-modules.mjs")]
      const plain = yield* start({ tty: false, env: { LOADED_MODULES_FILE: loaded }, preload })
      yield* until("the program to wait", () => plain.output.stdout.includes("waiting"))
      plain.child.stdin!.write("\n")
      expect(yield* plain.exited).toBe(0)
      expect(fs.existsSync(loaded) ? fs.readFileSync(loaded, "utf8") : "").toBe("")

      // The same program, told where to export, loads the SDK (so the check above can fail).
      const traced = yield* start({
        tty: false,
        env: { LOADED_MODULES_FILE: loaded, OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_BSP_EXPORT_TIMEOUT: "100" },
        preload
      })
      yield* until("the program to wait", () => traced.output.stdout.includes("waiting"))
      traced.child.stdin!.write("\n")
      expect(yield* traced.exited).toBe(0)
      expect(fs.readFileSync(loaded, "utf8")).toContain("@effect/opentelemetry")
    }))
})

describe("progress line text", () => {
  const entry = (event: LogEntry["event"], agent?: string, n = 1): LogEntry => ({
    n,
    ts: new Date(0).toISOString(),
    process: "main",
    ...(agent === undefined ? {} : { agent }),
    event
  })

  it("counts agents by state, tool calls (the process's and pi's own), tokens and cost", () => {
    const status = RunStatus.fromEntries([
      entry({ _tag: "AgentCreated", name: "a", machine: { id: "a", kind: "local", cwd: "/" } }, "a"),
      entry({ _tag: "AgentCreated", name: "b", machine: { id: "b", kind: "local", cwd: "/" } }, "b"),
      entry({ _tag: "AgentCreated", name: "c", machine: { id: "c", kind: "local", cwd: "/" } }, "c"),
      entry({ _tag: "AgentConnected", after: 0, first: true }, "b"),
      entry({ _tag: "AgentConnected", after: 0, first: true }, "c"),
      entry({ _tag: "WorkStarted" }, "c"),
      entry({ _tag: "ToolCalled", callId: "1", tool: "submit", args: {} }, "c"),
      entry({ _tag: "ToolExecutionEnded", toolCallId: "2", tool: "bash", isError: false, result: "" }, "c"),
      entry({ _tag: "MessageEnded", role: "assistant", text: "", usage: { input: 12_345, output: 999, cost: 1.5 } }, "c")
    ])
    expect(summary(status)).toBe("3 agents: 1 starting · 1 ready · 1 working │ 2 tool calls │ 12k→999 tokens $1.5000")
    expect(line(status, "c → submit", 0, 200)).toBe(`⠋ ${summary(status)} │ c → submit`)
    const cut = line(status, "c → submit", 1, 30)
    expect(cut).toHaveLength(29)
    expect(cut.endsWith("…")).toBe(true)
    expect(finalLine({ ...status, outcome: "failed" }, 125_000)).toBe(`ramure: run failed after 2m05s │ ${summary(status)}`)
  })

  it("names what happened last harmlessly: a tool name from the agent cannot reach the terminal as escape sequences", () => {
    expect(activity(entry({ _tag: "ToolCalled", callId: "1", tool: "x\u001b]52;c;AAAA\u0007", args: {} }, "a"))).toBe("a → x??52?c?AAAA?")
    expect(activity(entry({ _tag: "ToolExecutionStarted", toolCallId: "1", tool: "bash" }, "a"))).toBe("a runs bash")
    expect(activity(entry({ _tag: "ProcessStarted", name: "main" }))).toBeUndefined()
    expect([count(999), count(1000), count(12_345), count(2_500_000)]).toEqual(["999", "1.0k", "12k", "2.5M"])
    expect([duration(4_000), duration(3_600_000 + 120_000)]).toEqual(["4s", "1h02m"])
  })

  it("is shown only on a terminal, unless turned off", () => {
    expect(enabled({}, {}, true)).toBe(true)
    expect(enabled({}, {}, false)).toBe(false)
    expect(enabled({ progress: false }, {}, true)).toBe(false)
    expect(enabled({}, { RAMURE_PROGRESS: "0" }, true)).toBe(false)
    expect(enabled({}, { RAMURE_PROGRESS: "off" }, true)).toBe(false)
    expect(enabled({}, { RAMURE_PROGRESS: "1" }, false)).toBe(false)
  })
})
