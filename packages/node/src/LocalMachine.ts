/**
 * Shared implementation of machines that live on this host (the local and the
 * tmux providers): working directory, `exec`, confined file access
 * (`localFiles.ts`), and the
 * process-group helpers both `spawn`s use.
 *
 * @internal
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { Duration, Effect, Exit, Schedule, Stream } from "effect"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ExecOptions, ExecResult, Machine, MachineOptions } from "@ramure/core/Machine"
import { MachineError } from "@ramure/core/Machine"
import { RunInfo, workDirectory } from "@ramure/core/RunInfo"
import * as LocalFiles from "./internal/localFiles.js"
import * as Owner from "./Owner.js"

/** How long a process group gets between SIGTERM and SIGKILL. */
export const terminateGrace: Duration.Duration = Duration.seconds(2)

/**
 * Send `signal` to the process group led by `pid` (ramure starts every program
 * as a group leader); false if the group is gone.
 */
export const signalGroup = (pid: number, signal: NodeJS.Signals | 0): boolean => {
  try {
    process.kill(-pid, signal)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Is process `pid` running (a zombie is not)? One file read on Linux. */
export const processRunning = (pid: number): boolean => {
  try {
    const stat = nodeFs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? false : Owner.signalAlive(pid)
  }
}

/**
 * The running (non-zombie) processes of the group led by `pid`; undefined
 * where /proc cannot be read. On Linux zombies do not count: an orphan stays a
 * zombie until init reaps it, which some container inits do lazily.
 */
const groupMembers = (pid: number): Array<number> | undefined => {
  let entries: Array<string>
  try {
    entries = nodeFs.readdirSync("/proc")
  } catch {
    return undefined
  }
  return entries.flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return []
    try {
      const stat = nodeFs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return state !== "Z" && Number(pgrp) === pid ? [Number(entry)] : []
    } catch {
      return []
    }
  })
}

/** Is any process of the group led by `pid` still running? */
export const groupAlive = (pid: number): boolean => {
  if (!signalGroup(pid, 0)) return false
  const members = groupMembers(pid)
  return members === undefined || members.length > 0
}

/**
 * Wait (up to `limit`) until the members the group led by `pid` has now are
 * gone, checking each every 10 ms (one small read each). A member forked
 * meanwhile is the caller's to check (`groupAlive`).
 */
const awaitGroupGone = (pid: number, limit: Duration.DurationInput) =>
  Effect.suspend(() => {
    const members = groupMembers(pid)
    const check = members === undefined ? () => groupAlive(pid) : () => members.some(processRunning)
    // Bounded by the schedule, not by a timeout: finalizers are uninterruptible.
    return Effect.sync(check).pipe(
      Effect.repeat({ schedule: Schedule.spaced("10 millis").pipe(Schedule.upTo(limit)), while: (alive) => alive })
    )
  })

/**
 * SIGTERM the process group led by `pid`, wait up to `grace` for it to vanish,
 * then SIGKILL whatever is left (and wait briefly for it to go). Never fails.
 */
export const killGroup = (pid: number, grace: Duration.DurationInput = terminateGrace): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (!signalGroup(pid, "SIGTERM")) return
    yield* awaitGroupGone(pid, grace)
    if (groupAlive(pid) && signalGroup(pid, "SIGKILL")) yield* awaitGroupGone(pid, "1 second")
  })

/** The exit code of a process; a death by signal N reads as 128 + N, like a shell reports it. */
export const exitCodeOf = (proc: CommandExecutor.Process): Effect.Effect<number | undefined> =>
  proc.exitCode.pipe(
    Effect.map((code): number | undefined => code),
    Effect.catchAll((error) => {
      const signal = /signal: (SIG[A-Z0-9]+)/.exec(error.message)?.[1]
      const number = signal === undefined ? undefined : os.constants.signals[signal as NodeJS.Signals]
      return Effect.succeed(number === undefined ? undefined : 128 + number)
    })
  )

/** Keeps the last `maxLines` lines of one or more text streams (a bounded ring buffer). */
export class OutputTail {
  private readonly lines: Array<string> = []
  private readonly partial = new Map<string, string>()
  constructor(
    readonly maxLines = 40,
    readonly maxLineLength = 4096
  ) {}

  push(source: string, text: string): void {
    const parts = ((this.partial.get(source) ?? "") + text).split("\n")
    const rest = parts.pop()!
    for (const line of parts) {
      this.lines.push(line.slice(-this.maxLineLength))
      if (this.lines.length > this.maxLines) this.lines.shift()
    }
    this.partial.set(source, rest.slice(-this.maxLineLength))
  }

  render(): string {
    const pending = [...this.partial.values()].filter((line) => line.length > 0)
    return [...this.lines, ...pending].slice(-this.maxLines).join("\n")
  }
}

/** Run a command to completion and capture its output (for tools such as tmux). */
export const runCollect = (
  command: Command.Command
): Effect.Effect<ExecResult, PlatformError, CommandExecutor.CommandExecutor> => runCommand(command)

/**
 * Run `command` to completion (its stdin is `input`, else closed) and capture
 * its output; an interrupted or timed-out command has its whole process group
 * killed. A timeout makes the exit code 124, like `timeout(1)`.
 */
export const runCommand = (
  command: Command.Command,
  options: { readonly timeout?: Duration.DurationInput | undefined; readonly input?: string | undefined } = {}
): Effect.Effect<ExecResult, PlatformError, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const stdout: Array<string> = []
    const stderr: Array<string> = []
    const drain = (stream: Stream.Stream<Uint8Array, PlatformError>, into: Array<string>) =>
      stream.pipe(Stream.decodeText(), Stream.runForEach((text) => Effect.sync(() => into.push(text))))
    const stdin = options.input === undefined ? Stream.empty : Stream.make(new TextEncoder().encode(options.input))
    const run = Effect.acquireRelease(Command.start(Command.stdin(command, stdin)), (proc, exit) =>
      Exit.isSuccess(exit) ? Effect.void : killGroup(proc.pid)
    ).pipe(
      Effect.flatMap((proc) =>
        Effect.all([drain(proc.stdout, stdout), drain(proc.stderr, stderr), exitCodeOf(proc)], {
          concurrency: "unbounded"
        })
      ),
      Effect.map(([, , exitCode]) => exitCode ?? 1),
      Effect.scoped
    )
    const exitCode = yield* options.timeout === undefined
      ? run
      : Effect.timeoutTo(run, { duration: options.timeout, onSuccess: (code) => code, onTimeout: () => 124 })
    return { exitCode, stdout: stdout.join(""), stderr: stderr.join("") }
  })

const isValidName = (name: string): boolean =>
  name.length > 0 && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0")

/** Everything of a machine except `spawn`, plus helpers for implementing `spawn`. */
export interface LocalBase extends Omit<Machine, "spawn" | "describe" | "kind"> {
  /** Resolve a spawn's working directory (default: the machine's); it must be an existing directory. */
  readonly spawnCwd: (cwd: string | undefined) => Effect.Effect<string, MachineError>
  readonly fail: (operation: string, message: string) => MachineError
  /** The owner marker every program started here carries in its environment (see owner.ts). */
  readonly ownerEnv: Record<string, string>
}

/**
 * The working directory, `exec` and files of a machine on
 * this host. The directory is `options.cwd` (must exist) or a fresh
 * `workDirectory(home, executionId)/<name>`, which is kept afterwards.
 */
export const makeLocalBase = (
  kind: string,
  options: MachineOptions
): Effect.Effect<LocalBase, MachineError, RunInfo | FileSystem.FileSystem | CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const executor = yield* CommandExecutor.CommandExecutor
    const run = yield* RunInfo
    const fail = (operation: string, message: string) => new MachineError({ machine: options.name, operation, message })
    const platformFail = (operation: string) => (error: PlatformError) => fail(operation, error.message)

    const existingDirectory = (operation: string, dir: string): Effect.Effect<string, MachineError> =>
      fs.stat(dir).pipe(
        Effect.mapError(() => fail(operation, `working directory does not exist: ${dir}`)),
        Effect.filterOrFail(
          (info) => info.type === "Directory",
          () => fail(operation, `not a directory: ${dir}`)
        ),
        Effect.zipRight(fs.realPath(dir).pipe(Effect.mapError(platformFail(operation))))
      )

    if (!isValidName(options.name)) return yield* Effect.fail(fail("make", `invalid machine name: ${JSON.stringify(options.name)}`))
    if (options.host !== undefined) {
      return yield* Effect.fail(fail("make", `${kind} machines run on this host only, not on ${JSON.stringify(options.host)}`))
    }
    const cwd = yield* options.cwd !== undefined
      ? existingDirectory("make", path.resolve(options.cwd))
      : Effect.gen(function* () {
          const dir = path.join(workDirectory(run.home, run.executionId), options.name)
          yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(platformFail("make")))
          return yield* fs.realPath(dir).pipe(Effect.mapError(platformFail("make")))
        })

    const attributes = { machine: options.name, kind }
    const ownerEnv = { [Owner.ownerVariable]: Owner.encode(Owner.current(run.executionId, run.home)) }

    const exec = Effect.fn("Machine.exec", { attributes })(function* (command: string, execOptions?: ExecOptions) {
      return yield* runCommand(
        Command.make("bash", "-c", command).pipe(Command.workingDirectory(cwd), Command.env({ ...execOptions?.env, ...ownerEnv })),
        { timeout: execOptions?.timeout }
      ).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor), Effect.mapError(platformFail("exec")))
    })

    const spawnCwd = (dir: string | undefined) =>
      dir === undefined ? Effect.succeed(cwd) : existingDirectory("spawn", path.resolve(cwd, dir))

    return { id: options.name, cwd, exec, ...LocalFiles.make(cwd, fail, attributes), spawnCwd, fail, ownerEnv }
  })
