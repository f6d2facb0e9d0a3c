/**
 * Machines like the local ones, whose `spawn` runs the program in a detached
 * tmux session on a ramure-owned socket (`tmux -L ramure`), so a person can
 * `tmux -L ramure attach -t <name>` and watch an agent work.
 *
 * Every session is labelled with its owner (the run, its home, and its
 * orchestrator's pid and start time), so cleanup never takes another run's.
 * The tmux clients of many agents are shared: one pane listing serves every
 * agent that asked while the previous one ran, one `kill-session` client
 * kills every session released meanwhile.
 */
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import { Context, Deferred, Effect, Layer, Option, Schedule } from "effect"
import * as crypto from "node:crypto"
import * as path from "node:path"
import * as Batcher from "./internal/batcher.js"
import { killGroup, makeLocalBase, processRunning, type LocalBase } from "./LocalMachine.js"
import * as Owner from "./Owner.js"
import * as Tmux from "./Tmux.js"
import type { Machine, MachineOptions, SpawnExit, SpawnSpec, Spawned } from "@ramure/core/Machine"
import { MachineError, MachineProvider } from "@ramure/core/Machine"
import { RunInfo } from "@ramure/core/RunInfo"

/** Options of the tmux provider and helpers. */
export interface TmuxOptions {
  /** tmux socket name (`tmux -L <socket>`); default `RAMURE_TMUX_SOCKET`, else `ramure`. */
  readonly socket?: string
}

/** The default socket: `tmux -L ramure ls` lists ramure's sessions. */
export const defaultSocket = Tmux.defaultSocket

/** The socket in use: `RAMURE_TMUX_SOCKET`, else `ramure`. */
export const currentSocket = Tmux.currentSocket

/** The whole tmux configuration ramure uses (pi's recommended `extended-keys-format` breaks tmux 3.3a). */
export const tmuxConfig = Tmux.config

/** tmux session names cannot contain `.` or `:` (tmux would rename them silently). */
export const sessionName = Tmux.sessionName

const toMachineError = (machine: string, operation: string) => (error: Tmux.TmuxUnavailable | Tmux.TmuxFailed) =>
  new MachineError({ machine, operation, message: error.message })

/** Is tmux installed on this host? */
export const available: Effect.Effect<boolean, never, CommandExecutor.CommandExecutor> = Tmux.run(Tmux.defaultSocket, ["-V"]).pipe(
  Effect.map((result) => result.exitCode === 0),
  Effect.orElseSucceed(() => false)
)

/** Names of the sessions on the socket that belong to `executionId` (`ramure-<execid8>-…`). */
export const sessionsOf = (
  executionId: string,
  options: TmuxOptions = {}
): Effect.Effect<ReadonlyArray<string>, MachineError, CommandExecutor.CommandExecutor> =>
  Tmux.listPanes(options.socket ?? currentSocket()).pipe(
    Effect.map((panes) => [...new Set(panes.map((pane) => pane.session))].filter((name) => name.startsWith(Tmux.sessionPrefix(executionId)))),
    Effect.mapError(toMachineError("tmux", "list-panes"))
  )

/**
 * Kill every session on the socket that is provably orphaned: its owner label
 * names an orchestrator (pid and start time) that is no longer running,
 * whatever its home. Sessions of live runs, and sessions without a readable
 * label, are left alone. Every ramure session's verdict is returned.
 */
export const collectOrphans = (
  options: TmuxOptions = {}
): Effect.Effect<ReadonlyArray<Tmux.SessionVerdict>, MachineError, CommandExecutor.CommandExecutor> =>
  Tmux.collectOrphans(options.socket ?? currentSocket()).pipe(Effect.mapError(toMachineError("tmux", "gc")))

export type { SessionVerdict } from "./Tmux.js"

/** The tmux clients a provider shares between its machines' spawns. */
interface Shared {
  readonly socket: string
  readonly config: string
  /** Directory for env files (0700). */
  readonly envDirectory: string
  readonly owner: Owner.Owner
  readonly executor: CommandExecutor.CommandExecutor
  readonly fs: FileSystem.FileSystem
  /** The panes of the socket, from a listing that started after the call. */
  readonly panes: Effect.Effect<ReadonlyMap<string, Tmux.Pane>, Tmux.TmuxUnavailable | Tmux.TmuxFailed>
  /** Kill a session (by id), together with the others released meanwhile. */
  readonly killSession: (target: string) => Effect.Effect<void, Tmux.TmuxUnavailable>
}

/** A pane's state; a pane missing from a listing has exited with an unknown code. */
const stateOf = (panes: ReadonlyMap<string, Tmux.Pane>, paneId: string): Tmux.PaneState =>
  panes.get(paneId)?.state ?? { exitCode: undefined }

/** A pane this provider runs a program in: its ids, for watching, renaming and releasing it. */
interface PaneHandle {
  readonly paneId: string
  readonly panePid: number | undefined
  /** The session's id: it stays valid when the session is renamed. */
  readonly sessionId: string
  readonly session: string
}

/**
 * The pane's state once tmux has recorded it: tmux 3.3a can mark a pane dead
 * a moment before it records the exit status, and sometimes misses the
 * SIGCHLD of a pane's process altogether (it is woken up). A listing that
 * cannot be had (no process could be started) is asked again: it says
 * nothing about the pane.
 */
const settledState = (shared: Shared, paneId: string): Effect.Effect<"running" | SpawnExit> =>
  Effect.gen(function* () {
    let dying = 0
    while (true) {
      const panes = yield* shared.panes.pipe(Effect.either)
      if (panes._tag === "Left") {
        yield* Effect.sleep("100 millis")
        continue
      }
      const state = stateOf(panes.right, paneId)
      if (state !== "dying") return state
      const server = panes.right.get(paneId)?.serverPid
      if (server !== undefined) signalProcess(server, "SIGCHLD")
      if (++dying >= 50) return { exitCode: undefined }
      yield* Effect.sleep("20 millis")
    }
  })

/**
 * Run the program in the pane that `acquire` gives (a new one, or one taken
 * over) as a `Spawned` until the scope closes, then stop it (its process
 * group, then its session) and `cleanup`.
 */
const watch = <E>(
  base: LocalBase,
  shared: Shared,
  name: string,
  acquire: Effect.Effect<PaneHandle, E>,
  cleanup: Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const { socket } = shared
    const provide = Effect.provideService(CommandExecutor.CommandExecutor, shared.executor)
    const exited = yield* Deferred.make<SpawnExit>()
    const pane = yield* Effect.acquireRelease(acquire, ({ paneId, panePid, sessionId }) =>
      Effect.gen(function* () {
        const before = yield* settledState(shared, paneId)
        // A program that has exited leaves at most its wrapper, which needs no grace.
        if (panePid !== undefined) yield* killGroup(panePid, before === "running" ? "1500 millis" : "200 millis")
        const after = before === "running" ? yield* settledState(shared, paneId) : before
        yield* shared.killSession(sessionId).pipe(
          Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.upTo("10 seconds")))
        )
        yield* cleanup
        yield* Deferred.succeed(exited, after === "running" ? { exitCode: undefined } : after)
      }).pipe(Effect.catchAllCause((cause) => Effect.logWarning(`releasing tmux session ${name}`, cause))))
    const { paneId, panePid, sessionId } = pane
    // Watch the pane's process locally and ask tmux only once it has stopped: a tmux
    // client per agent every 200 ms would keep a run with many agents busy.
    yield* Effect.sync(() => panePid !== undefined && processRunning(panePid)).pipe(
      Effect.repeat({ schedule: Schedule.spaced("200 millis"), while: (running) => running }),
      Effect.zipRight(settledState(shared, paneId).pipe(
        Effect.repeat(
          Schedule.recurWhile((state: "running" | SpawnExit) => state === "running").pipe(Schedule.addDelay(() => "200 millis"))
        )
      )),
      Effect.flatMap((state) => Deferred.succeed(exited, state === "running" ? { exitCode: undefined } : state)),
      Effect.forkScoped
    )
    // The wrapper publishes the program's pid as soon as it has started.
    const pid = yield* shared.panes.pipe(
      Effect.map((panes) => panes.get(paneId)),
      Effect.repeat(
        Schedule.recurUntil((found: Tmux.Pane | undefined) =>
          found === undefined || found.state !== "running" || found.programPid !== undefined
        ).pipe(Schedule.addDelay(() => "20 millis"), Schedule.upTo("5 seconds"))
      ),
      Effect.map((found) => found?.programPid ?? panePid),
      Effect.orElseSucceed(() => panePid)
    )
    let currentName = pane.session
    return {
      name,
      pid,
      get session() {
        return currentName
      },
      rename: (newName: string) =>
        Effect.gen(function* () {
          const target = sessionName(newName)
          yield* Tmux.runChecked(socket, ["rename-session", "-t", sessionId, target]).pipe(
            provide,
            Effect.mapError(toMachineError(base.id, "rename-session"))
          )
          currentName = target
          return target
        }),
      exited: Deferred.await(exited),
      outputTail: Tmux.run(socket, ["capture-pane", "-p", "-J", "-t", paneId, "-S", "-40"]).pipe(
        provide,
        Effect.map((result) => (result.exitCode === 0 ? result.stdout.trimEnd().split("\n").slice(-40).join("\n") : "")),
        Effect.orElseSucceed(() => "")
      )
    } satisfies Spawned
  })

const spawn = (base: LocalBase, shared: Shared) =>
  Effect.fn("TmuxMachine.spawn", { attributes: { machine: base.id } })(function* (spec: SpawnSpec) {
    const { envDirectory, fs, socket } = shared
    const cwd = yield* base.spawnCwd(spec.cwd)
    const session = sessionName(spec.name)
    const invalid = Tmux.invalidEnvNames(spec.env)
    if (invalid.length > 0) return yield* Effect.fail(base.fail("spawn", `invalid environment variable names: ${invalid.join(", ")}`))
    const provide = Effect.provideService(CommandExecutor.CommandExecutor, shared.executor)
    const envFile = path.join(envDirectory, `${session}-${crypto.randomBytes(6).toString("hex")}.env`)
    const removeEnvFile = fs.remove(envFile, { force: true }).pipe(Effect.ignore)
    const env = Tmux.envScript({ ...spec.env, [Owner.ownerVariable]: Owner.encode(shared.owner) })
    yield* fs.writeFileString(envFile, env, { mode: 0o600 }).pipe(
      Effect.mapError((error) => {
        const advice = Tmux.resourceAdvice(error.message)
        return base.fail("spawn", advice === undefined ? `${spec.name}: ${error.message}` : `cannot write the environment file of ${spec.name}: ${advice}`)
      })
    )
    const create = Tmux.runChecked(socket, [
      "new-session", "-d", "-s", session, "-c", cwd.replaceAll("#", "##"),
      "-P", "-F", "#{pane_id} #{pane_pid} #{session_id}", "--", "sh", "-c", Tmux.wrapper, "sh", envFile, spec.command, ...spec.args,
      // In the same client, so no session is ever without its label.
      ";", ...Tmux.labelArgs(session, shared.owner)
    ], { config: shared.config }).pipe(
      provide,
      Effect.mapError(toMachineError(base.id, "new-session")),
      Effect.tapError(() => removeEnvFile),
      Effect.map((out): PaneHandle => {
        const [paneId, panePid, sessionId] = out.trim().split(" ")
        return {
          paneId: paneId?.startsWith("%") ? paneId : "",
          panePid: Number(panePid) || undefined,
          sessionId: sessionId?.startsWith("$") ? sessionId : Tmux.exact(session),
          session
        }
      })
    )
    return yield* watch(base, shared, spec.name, create, removeEnvFile)
  })

/**
 * Take over the program a previous orchestrator of this run started as
 * `name`, if it still runs: the session is labelled with this orchestrator
 * and watched and released as if spawned now.
 */
const adopt = (base: LocalBase, shared: Shared, executionId: string) =>
  Effect.fn("TmuxMachine.adopt", { attributes: { machine: base.id } })(function* (name: string) {
    const session = sessionName(name)
    const panes = yield* shared.panes.pipe(Effect.mapError(toMachineError(base.id, "list-panes")))
    const found = [...panes.values()].find((pane) => pane.session === session)
    if (found === undefined) return Option.none()
    const label = Owner.decode(found.ownerLabel)
    if (!Owner.isOwner(label) || label.executionId !== executionId) return Option.none()
    // Its program has ended: the session goes, so that the program can be started again under its name.
    if (found.state !== "running") {
      yield* Tmux.killSessions(shared.socket, [Tmux.exact(session)]).pipe(
        Effect.provideService(CommandExecutor.CommandExecutor, shared.executor),
        Effect.mapError(toMachineError(base.id, "adopt"))
      )
      return Option.none()
    }
    const relabel = Tmux.runChecked(shared.socket, [
      "display-message", "-p", "-t", found.id, "#{session_id}", ";", ...Tmux.labelArgs(session, shared.owner)
    ]).pipe(
      Effect.provideService(CommandExecutor.CommandExecutor, shared.executor),
      Effect.map((out): PaneHandle => ({
        paneId: found.id,
        panePid: found.panePid,
        sessionId: out.trim().startsWith("$") ? out.trim() : Tmux.exact(session),
        session
      })),
      Effect.mapError(toMachineError(base.id, "adopt"))
    )
    const spawned = yield* watch(base, shared, name, relabel, Effect.void)
    return Option.some(spawned)
  })


const signalProcess = (pid: number, signal: NodeJS.Signals): void => {
  try {
    if (pid > 0) process.kill(pid, signal)
  } catch {
    // gone already
  }
}

/**
 * A `MachineProvider` whose machines run spawned programs in tmux sessions on
 * the socket `options.socket` (default `RAMURE_TMUX_SOCKET`, else `ramure`).
 * Making a machine fails with a `MachineError` when tmux is not installed.
 */
export const layer = (
  options: TmuxOptions = {}
): Layer.Layer<MachineProvider, never, RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Layer.scoped(
    MachineProvider,
    Effect.gen(function* () {
      const socket = options.socket ?? currentSocket()
      const fs = yield* FileSystem.FileSystem
      const executor = yield* CommandExecutor.CommandExecutor
      const { executionId, home } = yield* RunInfo
      // Only these services: the caller's Scope must stay the caller's.
      const context = Context.pick(RunInfo, CommandExecutor.CommandExecutor, FileSystem.FileSystem)(
        yield* Effect.context<RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem>()
      )
      const config = path.join(home, "tmux.conf")
      const envDirectory = path.join(home, "tmux-env")
      const provide = Effect.provideService(CommandExecutor.CommandExecutor, executor)
      const panes = yield* Batcher.make((_: ReadonlyArray<void>) =>
        Tmux.listPanes(socket).pipe(provide, Effect.map((list) => new Map(list.map((pane) => [pane.id, pane]))))
      )
      const killSession = yield* Batcher.make((targets: ReadonlyArray<string>) =>
        Tmux.killSessions(socket, [...new Set(targets)]).pipe(provide)
      )
      const shared: Shared = {
        socket,
        config,
        envDirectory,
        owner: Owner.current(executionId, home),
        executor,
        fs,
        panes: panes(undefined),
        killSession
      }
      const prepare = yield* Effect.cached(
        Effect.gen(function* () {
          if (!(yield* available)) {
            return yield* new MachineError({ machine: "tmux", operation: "make", message: "tmux is not installed (apt-get install tmux)" })
          }
          yield* fs.makeDirectory(envDirectory, { recursive: true, mode: 0o700 })
          yield* fs.chmod(envDirectory, 0o700)
          yield* fs.writeFileString(config, tmuxConfig)
        }).pipe(
          provide,
          Effect.catchTag("SystemError", "BadArgument", (error) =>
            Effect.fail(new MachineError({ machine: "tmux", operation: "make", message: error.message }))
          )
        )
      )
      const make = Effect.fn("TmuxMachineProvider.make")(function* (machineOptions: MachineOptions) {
        yield* prepare
        const base = yield* makeLocalBase("tmux", machineOptions)
        const spawnIn = spawn(base, shared)
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
          adopt: adopt(base, shared, executionId),
          describe: { id: base.id, kind: "tmux", cwd: base.cwd }
        } satisfies Machine
      })
      return MachineProvider.of({ kind: "tmux", make: (machineOptions) => make(machineOptions).pipe(Effect.provide(context)) })
    })
  )
