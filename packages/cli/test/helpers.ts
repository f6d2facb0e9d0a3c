/**
 * Test helpers: build the bundle, run `ramure` as a real subprocess, start
 * fixture runs (test/fixtures/run.ts) and tmux on a private socket. Every
 * subprocess has a timeout and is killed when its scope closes.
 */
import { Duration, Effect, Layer, Schedule } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const cliRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const repoRoot = path.resolve(cliRoot, "../..")
export const bin = path.join(cliRoot, "bin", "ramure.js")
export const fixture = (name: string) => path.join(cliRoot, "test", "fixtures", name)

/** Bundle the CLI (dist/ramure.js) from the current sources. */
export const build = Effect.sync(() => void execFileSync(process.execPath, [path.join(cliRoot, "build.mjs")], { stdio: "inherit" }))

/** A fresh, private RAMURE_HOME, removed with the scope. */
export const tempHome = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-cli-"))),
  (home) => Effect.sync(() => fs.rmSync(home, { recursive: true, force: true }))
)

/** A tmux socket name of our own; its server (and socket file) are gone with the scope. */
export const tmuxSocket = Effect.acquireRelease(
  Effect.sync(() => `ramure-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`),
  (socket) =>
    Effect.zipRight(
      exec("tmux", ["-L", socket, "kill-server"]),
      Effect.sync(() => fs.rmSync(path.join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid!()}`, socket), { force: true }))
    )
)

export interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const collect = (child: ChildProcess) => {
  const output = { stdout: "", stderr: "" }
  child.stdout?.on("data", (chunk) => (output.stdout += chunk))
  child.stderr?.on("data", (chunk) => (output.stderr += chunk))
  return output
}

/** Run a program to completion (killed after `timeout`). */
export const exec = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly input?: string; readonly timeout?: Duration.DurationInput } = {}
) =>
  Effect.async<Result>((resume) => {
    const child = spawn(command, args, { cwd: repoRoot, env: options.env ?? process.env, stdio: "pipe" })
    const output = collect(child)
    const timer = setTimeout(() => child.kill("SIGKILL"), Duration.toMillis(options.timeout ?? "30 seconds"))
    child.on("error", (error) => (output.stderr += String(error)))
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, ...output }))
    })
    child.stdin.on("error", () => {}) // EPIPE when the program does not read its input
    child.stdin.end(options.input ?? "")
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

/** The environment the CLI runs in during a test. */
export const cliEnv = (home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  RAMURE_HOME: home,
  RAMURE_TMUX_SOCKET: "ramure-test-unused",
  TMUX: "",
  ...extra
})

/** `node bin/ramure.js …` with `RAMURE_HOME=home`. */
export const ramure = (home: string, args: ReadonlyArray<string>, options: { readonly env?: NodeJS.ProcessEnv; readonly input?: string } = {}) =>
  exec(process.execPath, [bin, ...args], { env: cliEnv(home, options.env), ...(options.input === undefined ? {} : { input: options.input }) })

/** A program running in the background until it exits or the scope closes. */
export interface Background {
  readonly child: ChildProcess
  readonly output: () => { readonly stdout: string; readonly stderr: string }
  readonly exited: Effect.Effect<number | null>
}

export const background = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.acquireRelease(
    Effect.sync((): Background => {
      const child = spawn(command, args, { cwd: repoRoot, env, stdio: "pipe" })
      const output = collect(child)
      child.on("error", (error) => (output.stderr += String(error)))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      return { child, output: () => output, exited: Effect.promise(() => exited) }
    }),
    ({ child, exited }) =>
      Effect.gen(function* () {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill("SIGTERM")
        yield* exited.pipe(
          Effect.timeout("5 seconds"),
          Effect.catchAll(() => Effect.sync(() => child.kill("SIGKILL")))
        )
      })
  )

/** Poll `check` until it returns a value other than `undefined`, or fail after `timeout`. */
export const eventually = <A>(what: string, check: Effect.Effect<A | undefined>, timeout: Duration.DurationInput = "20 seconds") =>
  check.pipe(
    Effect.flatMap((value) => (value === undefined ? Effect.fail("not yet") : Effect.succeed(value))),
    Effect.retry({ while: (error) => error === "not yet", schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out waiting for ${what}`) }),
    Effect.orDie
  )

/** A fixture run (see fixtures/run.ts). */
export interface FixtureRun {
  readonly id: string
  readonly pid: number
  readonly process: Background
}

/**
 * Start a fixture run in `home` (fixtures/run.ts, or the `script` given) and wait for its
 * "ready <id>" line; it is killed with the scope if still running.
 */
export const startRun = (home: string, args: ReadonlyArray<string> = [], env: NodeJS.ProcessEnv = {}, script = "run.ts") =>
  Effect.gen(function* () {
    const run = yield* background(process.execPath, ["--import", "tsx", fixture(script), ...args], cliEnv(home, env))
    const id = yield* eventually(
      "the fixture run to be ready",
      Effect.sync(() => /^ready (\S+)$/m.exec(run.output().stdout)?.[1] ?? (run.child.exitCode !== null ? "exited" : undefined)),
      "90 seconds"
    )
    if (id === "exited") return yield* Effect.dieMessage(`fixture exited: ${run.output().stderr}`)
    return { id, pid: run.child.pid!, process: run } satisfies FixtureRun
  })

/** Whether a process exists. */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Builds the CLI once for a test file. */
export const built = Layer.effectDiscard(build)

/** Write a registry entry by hand (for stale and unreachable runs). */
export const writeEntry = (
  home: string,
  entry: { readonly execution_id: string; readonly pid: number; readonly server_url?: string; readonly pid_started?: string }
) => {
  const directory = path.join(home, "runtimes")
  fs.mkdirSync(directory, { recursive: true, mode: 0o700 })
  const file = path.join(directory, `${entry.execution_id}.json`)
  fs.writeFileSync(
    file,
    JSON.stringify({ server_url: "ws://127.0.0.1:9", token: "t", program: "ghost", started_at: new Date().toISOString(), ...entry }),
    { mode: 0o600 }
  )
  return file
}

/** The pid of a process that has exited (and been reaped). */
export const deadPid = (): number => Number(execFileSync("sh", ["-c", "echo $$"]).toString().trim())

/** Lines of a log file. */
export const readJsonl = (file: string): Array<any> =>
  fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line)) : []

/** `ramure web` serving `home` (for `id`); its printed address. */
export const serveWeb = (home: string, args: ReadonlyArray<string> = [], env: NodeJS.ProcessEnv = {}) =>
  Effect.gen(function* () {
    const server = yield* background(process.execPath, [bin, "web", ...args], cliEnv(home, env))
    const url = yield* eventually(
      "ramure web's address",
      Effect.sync(() => /^ramure web: (http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]+\/)(#\S+)?$/m.exec(server.output().stdout)?.[0] ??
        (server.child.exitCode !== null ? `exited: ${server.output().stderr}` : undefined))
    )
    if (url.startsWith("exited")) return yield* Effect.dieMessage(url)
    return url.slice("ramure web: ".length)
  })
