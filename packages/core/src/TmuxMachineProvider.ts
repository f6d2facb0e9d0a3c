/**
 * Machines like the local ones, whose `spawn` runs the program in a detached
 * tmux session on a ramure-owned socket (`tmux -L ramure`), so a person can
 * `tmux -L ramure attach -t <name>` and watch an agent work.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import { Context, Deferred, Effect, Layer, Schedule } from "effect"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { killGroup, makeLocalBase, runCollect, type LocalBase } from "./internal/localMachine.js"
import type { ExecResult, Machine, MachineOptions, SpawnExit, SpawnSpec, Spawned } from "./Machine.js"
import { MachineError, MachineProvider } from "./Machine.js"
import { RunInfo, shortId } from "./RunInfo.js"

/** Options of the tmux provider and helpers. */
export interface TmuxOptions {
  /** tmux socket name (`tmux -L <socket>`); default `RAMURE_TMUX_SOCKET`, else `ramure`. */
  readonly socket?: string
}

/** The default socket: `tmux -L ramure ls` lists ramure's sessions. */
export const defaultSocket = "ramure"

/** The socket in use: `RAMURE_TMUX_SOCKET`, else `ramure`. */
export const currentSocket = (): string => process.env.RAMURE_TMUX_SOCKET || defaultSocket

/** The whole tmux configuration ramure uses (pi's recommended `extended-keys-format` breaks tmux 3.3a). */
export const tmuxConfig = "set -g extended-keys on\nset -g remain-on-exit on\n"

const notInstalled = (machine: string, operation: string) =>
  new MachineError({ machine, operation, message: "tmux is not installed (apt-get install tmux)" })

/**
 * tmux splits its argv into commands at any argument ending in `;`; a trailing
 * `\;` stands for a literal `;`.
 */
const escapeArg = (arg: string): string => (arg.endsWith(";") ? `${arg.slice(0, -1)}\\;` : arg)

/** tmux session names cannot contain `.` or `:` (tmux would rename them silently). */
export const sessionName = (name: string): string => name.replace(/[^A-Za-z0-9_-]/g, "_")

const tmux = (socket: string, args: ReadonlyArray<string>, machine = "tmux", config?: string) =>
  runCollect(
    Command.make("tmux", "-L", socket, ...(config === undefined ? [] : ["-f", config]), ...args.map(escapeArg))
  ).pipe(
    Effect.mapError((error) =>
      error._tag === "SystemError" && error.reason === "NotFound"
        ? notInstalled(machine, args[0] ?? "tmux")
        : new MachineError({ machine, operation: args[0] ?? "tmux", message: error.message })
    )
  )

const check = (result: ExecResult, machine: string, operation: string) =>
  result.exitCode === 0
    ? Effect.succeed(result.stdout)
    : Effect.fail(new MachineError({ machine, operation, message: `tmux ${operation}: ${result.stderr.trim()}` }))

/** Is tmux installed on this host? */
export const available: Effect.Effect<boolean, never, CommandExecutor.CommandExecutor> = Effect.suspend(() =>
  // Lazy: this module sits in an import cycle (Machine → Runtime → internal/orphans → here).
  runCollect(Command.make("tmux", "-V"))
).pipe(
  Effect.map((result) => result.exitCode === 0),
  Effect.orElseSucceed(() => false)
)

/** Names of the sessions on the ramure socket that belong to `executionId` (`ramure-<execid8>-…`). */
export const sessionsOf = (
  executionId: string,
  options: TmuxOptions = {}
): Effect.Effect<ReadonlyArray<string>, MachineError, CommandExecutor.CommandExecutor> =>
  listSessions(options.socket ?? currentSocket()).pipe(
    Effect.map((names) => names.filter((name) => name.startsWith(`ramure-${shortId(executionId)}-`)))
  )

const listSessions = (socket: string) =>
  tmux(socket, ["list-sessions", "-F", "#{session_name}"]).pipe(
    // No server running on the socket means no sessions.
    Effect.map((result) => (result.exitCode === 0 ? result.stdout.split("\n").filter((n) => n.length > 0) : []))
  )

/**
 * Kill every session on the ramure socket of the runs whose execution id starts
 * with `executionIdPrefix` (up to 8 characters are compared; "" means every
 * ramure session). Pane process groups get SIGTERM, then SIGKILL after 1.5 s.
 * Returns the killed names.
 */
export const killRunSessions = (
  executionIdPrefix: string,
  options: TmuxOptions = {}
): Effect.Effect<ReadonlyArray<string>, MachineError, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const socket = options.socket ?? currentSocket()
    const prefix = shortId(executionIdPrefix)
    const names = (yield* listSessions(socket)).filter((name) => {
      const match = /^ramure-([^-]+)-/.exec(name)
      return match !== null && match[1]!.startsWith(prefix)
    })
    yield* Effect.forEach(
      names,
      (name) =>
        Effect.gen(function* () {
          const panes = yield* tmux(socket, ["list-panes", "-s", "-t", `=${name}`, "-F", "#{pane_pid}"])
          const pids = panes.exitCode === 0 ? panes.stdout.split("\n").map(Number).filter((pid) => pid > 0) : []
          yield* Effect.forEach(pids, (pid) => killGroup(pid, "1500 millis"), { concurrency: "unbounded" })
          yield* tmux(socket, ["kill-session", "-t", `=${name}`])
        }),
      { concurrency: "unbounded", discard: true }
    )
    return names
  })

/**
 * The pane runs `sh` (the pane's process, leader of its process group), which
 * runs the program and lingers 0.2 s after it exits: tmux 3.3a drops output
 * still unread when the pane's process exits, so a program that prints an
 * error and exits at once would otherwise often leave an empty pane. An inner
 * `sh` loads (and deletes) the env file, records its pid (the program's, after
 * `exec`) in the pane option `@ramure_pid`, and execs the program. The exit
 * status is the program's (128 + N after signal N).
 *
 * The environment goes through a 0600 file rather than `new-session -e`: the
 * tmux server keeps the argv of the client that started it, so `-e` values
 * would stay visible in `ps` for the server's lifetime.
 */
const wrapper = [
  "env_file=$1; shift",
  `sh -c '. "$0"; rm -f "$0"; tmux set-option -p @ramure_pid "$$" 2>/dev/null; exec "$@"' "$env_file" "$@"`,
  "status=$?; sleep 0.2; exit $status"
].join("; ")

const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`

const hasProc = nodeFs.existsSync("/proc/self/stat")

/** Is the process `pid` running (a zombie is not)? One file read on Linux, no tmux. */
const processRunning = (pid: number): boolean => {
  if (hasProc) {
    try {
      const stat = nodeFs.readFileSync(`/proc/${pid}/stat`, "utf8")
      return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
    } catch {
      return false
    }
  }
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const signalProcess = (pid: number, signal: NodeJS.Signals): void => {
  try {
    if (pid > 0) process.kill(pid, signal)
  } catch {
    // gone already
  }
}

/** A pane's process: running, exited with the status tmux has not recorded yet, or exited. */
type PaneState = "alive" | "dying" | SpawnExit

interface SpawnContext {
  readonly socket: string
  readonly config: string
  /** Directory for env files (0700). */
  readonly envDirectory: string
  readonly executor: CommandExecutor.CommandExecutor
  readonly fs: FileSystem.FileSystem
}

const spawn = (base: LocalBase, { config, envDirectory, executor, fs, socket }: SpawnContext) =>
  Effect.fn("TmuxMachine.spawn", { attributes: { machine: base.id } })(function* (spec: SpawnSpec) {
    const cwd = yield* base.spawnCwd(spec.cwd)
    const session = sessionName(spec.name)
    const invalid = Object.keys(spec.env).filter((key) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
    if (invalid.length > 0) return yield* Effect.fail(base.fail("spawn", `invalid environment variable names: ${invalid.join(", ")}`))
    const run = (args: ReadonlyArray<string>) =>
      tmux(socket, args, base.id, config).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor))

    /** A vanished pane (or tmux server) counts as exited with an unknown code. */
    const paneState = (paneId: string): Effect.Effect<PaneState> =>
      run(["display-message", "-p", "-t", paneId, "#{pane_dead} #{pid} #{pane_dead_status} #{pane_dead_signal}"]).pipe(
        Effect.map((result): PaneState => {
          if (result.exitCode !== 0) return { exitCode: undefined }
          const [dead, server, status, signal] = result.stdout.trim().split(" ")
          if (dead !== "1") return "alive"
          if (status) return { exitCode: Number(status) }
          if (signal) return { exitCode: 128 + Number(signal) }
          // tmux 3.3a sometimes misses the SIGCHLD of a pane's process and
          // leaves it a zombie without a recorded status: wake it up.
          signalProcess(Number(server), "SIGCHLD")
          return "dying"
        }),
        Effect.orElseSucceed((): PaneState => ({ exitCode: undefined }))
      )
    /** tmux 3.3a can mark a pane dead a moment before it records the exit status: wait for it (up to 1 s). */
    const settledState = (paneId: string): Effect.Effect<"alive" | SpawnExit> =>
      paneState(paneId).pipe(
        Effect.repeat(
          Schedule.recurWhile((state: PaneState) => state === "dying").pipe(
            Schedule.addDelay(() => "20 millis"),
            Schedule.upTo("1 second")
          )
        ),
        Effect.map((state) => (state === "dying" ? { exitCode: undefined } : state))
      )

    const exited = yield* Deferred.make<SpawnExit>()
    const envFile = path.join(envDirectory, `${session}-${crypto.randomBytes(6).toString("hex")}.env`)
    const removeEnvFile = fs.remove(envFile, { force: true }).pipe(Effect.ignore)
    const env = Object.entries(spec.env).map(([key, value]) => `export ${key}=${shellQuote(value)}\n`).join("")
    yield* fs.writeFileString(envFile, env, { mode: 0o600 }).pipe(
      Effect.mapError((error) => base.fail("spawn", `${spec.name}: ${error.message}`))
    )
    const { paneId, panePid, sessionId } = yield* Effect.acquireRelease(
      run([
        "new-session", "-d", "-s", session, "-c", cwd.replaceAll("#", "##"),
        "-P", "-F", "#{pane_id} #{pane_pid} #{session_id}", "--", "sh", "-c", wrapper, "sh", envFile, spec.command, ...spec.args
      ]).pipe(
        Effect.tapError(() => removeEnvFile),
        Effect.flatMap((result) => check(result, base.id, "new-session")),
        Effect.map((out) => {
          const [paneId, panePid, sessionId] = out.trim().split(" ")
          return {
            paneId: paneId?.startsWith("%") ? paneId : `=${session}:`,
            panePid: Number(panePid) || undefined,
            // The session's id stays valid when the session is renamed.
            sessionId: sessionId?.startsWith("$") ? sessionId : `=${session}`
          }
        })
      ),
      ({ paneId, panePid, sessionId }) =>
        Effect.gen(function* () {
          const before = yield* settledState(paneId)
          if (panePid !== undefined) yield* killGroup(panePid, "1500 millis")
          const after = before === "alive" ? yield* settledState(paneId) : before
          yield* run(["kill-session", "-t", sessionId])
          yield* removeEnvFile
          yield* Deferred.succeed(exited, after === "alive" ? { exitCode: undefined } : after)
        }).pipe(Effect.catchAllCause((cause) => Effect.logWarning(`releasing tmux session ${session}`, cause)))
    )
    // Watch the pane's process locally and ask tmux for the exit status only once it has stopped:
    // a tmux process per agent every 200 ms would keep a run with many agents busy.
    yield* Effect.sync(() => panePid !== undefined && processRunning(panePid)).pipe(
      Effect.repeat({ schedule: Schedule.spaced("200 millis"), while: (running) => running }),
      Effect.zipRight(settledState(paneId).pipe(
        Effect.repeat(
          Schedule.recurWhile((state: "alive" | SpawnExit) => state === "alive").pipe(
            Schedule.addDelay(() => "200 millis")
          )
        )
      )),
      Effect.flatMap((state) => Deferred.succeed(exited, state === "alive" ? { exitCode: undefined } : state)),
      Effect.forkScoped
    )
    // The wrapper publishes the program's pid as soon as it has started.
    const pid = yield* run(["display-message", "-p", "-t", paneId, "#{pane_dead} #{@ramure_pid}"]).pipe(
      Effect.map((result) => result.stdout.trim().split(" ")),
      Effect.repeat(
        Schedule.recurUntil(([dead, pid]: Array<string>) => dead !== "0" || pid !== undefined).pipe(
          Schedule.addDelay(() => "20 millis"),
          Schedule.upTo("5 seconds")
        )
      ),
      Effect.map(([, pid]) => Number(pid) || panePid),
      Effect.orElseSucceed(() => panePid)
    )
    let currentName = session
    return {
      name: spec.name,
      pid,
      get session() {
        return currentName
      },
      rename: (name: string) =>
        Effect.gen(function* () {
          const target = sessionName(name)
          yield* run(["rename-session", "-t", sessionId, target]).pipe(
            Effect.flatMap((result) => check(result, base.id, "rename-session"))
          )
          currentName = target
          return target
        }),
      exited: Deferred.await(exited),
      outputTail: run(["capture-pane", "-p", "-J", "-t", paneId, "-S", "-40"]).pipe(
        Effect.map((result) => (result.exitCode === 0 ? result.stdout.trimEnd().split("\n").slice(-40).join("\n") : "")),
        Effect.orElseSucceed(() => "")
      )
    } satisfies Spawned
  })

/**
 * A `MachineProvider` whose machines run spawned programs in tmux sessions on
 * the socket `options.socket` (default `ramure`). Making a machine fails with a
 * `MachineError` when tmux is not installed.
 */
export const layer = (
  options: TmuxOptions = {}
): Layer.Layer<MachineProvider, never, RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Layer.effect(
    MachineProvider,
    Effect.gen(function* () {
      const socket = options.socket ?? currentSocket()
      const fs = yield* FileSystem.FileSystem
      const executor = yield* CommandExecutor.CommandExecutor
      const { home } = yield* RunInfo
      // Only these services: the caller's Scope must stay the caller's.
      const context = Context.pick(RunInfo, CommandExecutor.CommandExecutor, FileSystem.FileSystem)(
        yield* Effect.context<RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem>()
      )
      const config = path.join(home, "tmux.conf")
      const envDirectory = path.join(home, "tmux-env")
      const prepare = yield* Effect.cached(
        Effect.gen(function* () {
          if (!(yield* available)) return yield* Effect.fail(notInstalled("tmux", "make"))
          yield* fs.makeDirectory(envDirectory, { recursive: true, mode: 0o700 })
          yield* fs.chmod(envDirectory, 0o700)
          yield* fs.writeFileString(config, tmuxConfig)
        }).pipe(
          Effect.provideService(CommandExecutor.CommandExecutor, executor),
          Effect.catchTag("SystemError", "BadArgument", (error) =>
            Effect.fail(new MachineError({ machine: "tmux", operation: "make", message: error.message }))
          )
        )
      )
      const make = Effect.fn("TmuxMachineProvider.make")(function* (machineOptions: MachineOptions) {
        yield* prepare
        const base = yield* makeLocalBase("tmux", machineOptions)
        const spawnIn = spawn(base, { socket, config, envDirectory, executor, fs })
        return {
          id: base.id,
          kind: "tmux",
          cwd: base.cwd,
          exec: base.exec,
          readFile: base.readFile,
          writeFile: base.writeFile,
          openFile: base.openFile,
          writeFileFrom: base.writeFileFrom,
          spawn: spawnIn,
          describe: { id: base.id, kind: "tmux", cwd: base.cwd }
        } satisfies Machine
      })
      return MachineProvider.of({ kind: "tmux", make: (machineOptions) => make(machineOptions).pipe(Effect.provide(context)) })
    })
  )
