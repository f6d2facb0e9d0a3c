/**
 * Machines like the local ones, whose `spawn` runs the program in a detached
 * tmux session on a ramure-owned socket (`tmux -L ramure`), so a person can
 * `tmux -L ramure attach -t <name>` and watch an agent work.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import { Context, Deferred, Duration, Effect, Layer, Schedule } from "effect"
import * as path from "node:path"
import { groupAlive, makeLocalBase, runCollect, signalGroup, type LocalBase } from "./internal/localMachine.js"
import type { ExecResult, Machine, MachineOptions, SpawnExit, SpawnSpec, Spawned } from "./Machine.js"
import { MachineError, MachineProvider } from "./Machine.js"
import { RunInfo, shortId } from "./RunInfo.js"

/** Options of the tmux provider and helpers. */
export interface TmuxOptions {
  /** tmux socket name (`tmux -L <socket>`); default `ramure`. */
  readonly socket?: string
}

/** The default socket: `tmux -L ramure ls` lists ramure's sessions. */
export const defaultSocket = "ramure"

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
export const available: Effect.Effect<boolean, never, CommandExecutor.CommandExecutor> = runCollect(
  Command.make("tmux", "-V")
).pipe(
  Effect.map((result) => result.exitCode === 0),
  Effect.orElseSucceed(() => false)
)

/** Names of the sessions on the ramure socket that belong to `executionId` (`ramure-<execid8>-…`). */
export const sessionsOf = (
  executionId: string,
  options: TmuxOptions = {}
): Effect.Effect<ReadonlyArray<string>, MachineError, CommandExecutor.CommandExecutor> =>
  listSessions(options.socket ?? defaultSocket).pipe(
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
 * ramure session). Pane processes get SIGTERM first. Returns the killed names.
 */
export const killRunSessions = (
  executionIdPrefix: string,
  options: TmuxOptions = {}
): Effect.Effect<ReadonlyArray<string>, MachineError, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const socket = options.socket ?? defaultSocket
    const prefix = shortId(executionIdPrefix)
    const names = (yield* listSessions(socket)).filter((name) => {
      const match = /^ramure-([^-]+)-/.exec(name)
      return match !== null && match[1]!.startsWith(prefix)
    })
    for (const name of names) {
      const panes = yield* tmux(socket, ["list-panes", "-s", "-t", `=${name}`, "-F", "#{pane_dead} #{pane_pid}"])
      for (const line of panes.exitCode === 0 ? panes.stdout.split("\n") : []) {
        const [dead, pid] = line.split(" ")
        if (dead === "0" && Number(pid) > 0) signalGroup(Number(pid), "SIGTERM")
      }
      yield* tmux(socket, ["kill-session", "-t", `=${name}`])
    }
    return names
  })

interface PaneState {
  readonly dead: boolean
  readonly exitCode: number | undefined
}

const spawn = (base: LocalBase, socket: string, config: string, executor: CommandExecutor.CommandExecutor) =>
  Effect.fn("TmuxMachine.spawn", { attributes: { machine: base.id } })(function* (spec: SpawnSpec) {
    const cwd = yield* base.spawnCwd(spec.cwd)
    const session = sessionName(spec.name)
    const run = (args: ReadonlyArray<string>) =>
      tmux(socket, args, base.id, config).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor))

    /** Dead, with its exit status, once the pane's process has exited; a vanished pane counts as dead. */
    const paneState = (paneId: string): Effect.Effect<PaneState> =>
      run(["display-message", "-p", "-t", paneId, "#{pane_dead} #{pane_dead_status} #{pane_dead_signal}"]).pipe(
        Effect.map((result): PaneState => {
          const [dead, status, signal] = result.stdout.trim().split(" ")
          if (result.exitCode !== 0) return { dead: true, exitCode: undefined }
          if (dead !== "1") return { dead: false, exitCode: undefined }
          if (status) return { dead: true, exitCode: Number(status) }
          return { dead: true, exitCode: signal ? 128 + Number(signal) : undefined }
        }),
        Effect.orElseSucceed((): PaneState => ({ dead: true, exitCode: undefined }))
      )
    /** Poll the pane until it is dead (or `limit` has passed); the last state seen. */
    const untilDead = (paneId: string, every: Duration.DurationInput, limit?: Duration.DurationInput) => {
      const polls = Schedule.recurUntil((state: PaneState) => state.dead).pipe(Schedule.addDelay(() => every))
      return paneState(paneId).pipe(Effect.repeat(limit === undefined ? polls : Schedule.upTo(polls, limit)))
    }

    const exited = yield* Deferred.make<SpawnExit>()
    // The background `sleep` keeps the pty open a moment after a quick exit:
    // without it tmux 3.3a sometimes drops the last output of the pane.
    const program = ["sh", "-c", '(sleep 0.5 &); exec "$@"', "sh", spec.command, ...spec.args]
    const env = Object.entries(spec.env).flatMap(([key, value]) => ["-e", `${key}=${value}`])
    const { paneId, pid } = yield* Effect.acquireRelease(
      run([
        "new-session", "-d", "-s", session, "-c", cwd.replaceAll("#", "##"), ...env,
        "-P", "-F", "#{pane_id} #{pane_pid}", "--", ...program
      ]).pipe(
        Effect.flatMap((result) => check(result, base.id, "new-session")),
        Effect.map((out) => {
          const [paneId, pid] = out.trim().split(" ")
          return { paneId: paneId?.startsWith("%") ? paneId : `=${session}:`, pid: Number(pid) || undefined }
        })
      ),
      ({ paneId, pid }) =>
        Effect.gen(function* () {
          const before = yield* paneState(paneId)
          let after = before
          if (!before.dead && pid !== undefined) {
            signalGroup(pid, "SIGTERM")
            after = yield* untilDead(paneId, "100 millis", "1500 millis")
          }
          yield* run(["kill-session", "-t", `=${session}`]).pipe(Effect.ignore)
          if (!after.dead && pid !== undefined && groupAlive(pid)) signalGroup(pid, "SIGKILL")
          yield* Deferred.succeed(exited, { exitCode: after.exitCode })
        }).pipe(Effect.catchAllCause((cause) => Effect.logWarning(`releasing tmux session ${session}`, cause)))
    )
    yield* untilDead(paneId, "200 millis").pipe(
      Effect.flatMap((state) => Deferred.succeed(exited, { exitCode: state.exitCode })),
      Effect.forkScoped
    )
    return {
      name: spec.name,
      pid,
      session,
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
      const socket = options.socket ?? defaultSocket
      const fs = yield* FileSystem.FileSystem
      const executor = yield* CommandExecutor.CommandExecutor
      const { home } = yield* RunInfo
      // Only these services: the caller's Scope must stay the caller's.
      const context = Context.pick(RunInfo, CommandExecutor.CommandExecutor, FileSystem.FileSystem)(
        yield* Effect.context<RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem>()
      )
      const config = path.join(home, "tmux.conf")
      const prepare = yield* Effect.cached(
        Effect.gen(function* () {
          if (!(yield* available)) return yield* Effect.fail(notInstalled("tmux", "make"))
          yield* fs.makeDirectory(home, { recursive: true })
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
        const spawnIn = spawn(base, socket, config, executor)
        return {
          id: base.id,
          kind: "tmux",
          cwd: base.cwd,
          exec: base.exec,
          readFile: base.readFile,
          writeFile: base.writeFile,
          spawn: spawnIn,
          describe: { id: base.id, kind: "tmux", cwd: base.cwd }
        } satisfies Machine
      })
      return MachineProvider.of({ kind: "tmux", make: (machineOptions) => make(machineOptions).pipe(Effect.provide(context)) })
    })
  )
