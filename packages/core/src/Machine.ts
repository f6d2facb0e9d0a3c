/**
 * Machines: where agents run and where `exec` runs.
 *
 * A `MachineProvider` creates machines inside a `Scope`; closing the scope
 * releases the machine and everything started on it.
 */
import { Context, type Duration, Effect, Schema, Scope } from "effect"
import { CurrentProcess } from "./internal/processState.js"
import { Runtime } from "./Runtime.js"

/** The result of running a shell command on a machine. */
export interface ExecResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
}

export interface ExecOptions {
  /** Kill the command after this long; the result then has exit code 124. */
  readonly timeout?: Duration.DurationInput
  /** Extra environment variables for the command. */
  readonly env?: Readonly<Record<string, string>>
}

/** What a person (or the CLI) needs to find a machine. */
export const MachineInfo = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  cwd: Schema.String,
  host: Schema.optional(Schema.String)
})
export type MachineInfo = typeof MachineInfo.Type

/** A long-running program started on a machine (a pi agent, a scripted driver, …). */
export interface SpawnSpec {
  /** Unique, human-readable name (tmux session name for the tmux provider). */
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  /** Working directory; defaults to the machine's. */
  readonly cwd?: string
  /** Keep the program's stdin open until it stops (default: closed at once, like `</dev/null`). */
  readonly keepStdinOpen?: boolean
}

export interface Spawned {
  readonly name: string
  /** OS process id of the program, when known. */
  readonly pid: number | undefined
  /** The tmux session a person can attach to, if any. */
  readonly session: string | undefined
  /** Completes when the program exits (with its exit code when known). */
  readonly exited: Effect.Effect<SpawnExit>
  /** The last lines the program printed (for start-up failure reports). */
  readonly outputTail: Effect.Effect<string>
  /** Rename the program's tmux session (tmux machines); returns the name it now has. */
  readonly rename?: (name: string) => Effect.Effect<string, MachineError>
}

export interface SpawnExit {
  readonly exitCode: number | undefined
}

export class MachineError extends Schema.TaggedError<MachineError>()("MachineError", {
  machine: Schema.String,
  operation: Schema.String,
  message: Schema.String
}) {}

export interface Machine {
  readonly id: string
  readonly kind: string
  /** Absolute working directory on the machine; relative paths resolve against it. */
  readonly cwd: string
  readonly exec: (command: string, options?: ExecOptions) => Effect.Effect<ExecResult, MachineError>
  readonly readFile: (path: string) => Effect.Effect<Uint8Array, MachineError>
  readonly writeFile: (path: string, data: Uint8Array | string) => Effect.Effect<void, MachineError>
  /**
   * Start a long-running program. Closing the scope stops it (and, for tmux,
   * kills its session).
   */
  readonly spawn: (spec: SpawnSpec) => Effect.Effect<Spawned, MachineError, Scope.Scope>
  readonly describe: MachineInfo
}

export interface MachineOptions {
  /** Name of the machine, unique within the run. */
  readonly name: string
  /** Use this existing directory as the working directory instead of a fresh one. */
  readonly cwd?: string
}

/** Creates machines; the machine lives until the scope closes. */
export class MachineProvider extends Context.Tag("ramure/MachineProvider")<
  MachineProvider,
  {
    readonly kind: string
    readonly make: (options: MachineOptions) => Effect.Effect<Machine, MachineError, Scope.Scope>
  }
>() {}

/**
 * A standalone machine owned by the current process: released (its programs
 * stopped) when the process ends. Give it to several agents with
 * `Agent.make(name, { machine })`.
 */
export const make = (
  options: MachineOptions
): Effect.Effect<Machine, MachineError, MachineProvider | CurrentProcess | Runtime> =>
  Effect.gen(function* () {
    const provider = yield* MachineProvider
    const owner = yield* CurrentProcess
    const runtime = yield* Runtime
    const machine = yield* provider.make(options).pipe(Scope.extend(owner.scope))
    yield* runtime.log({ type: "machine_created", process: owner.path, data: { machine: machine.describe } })
    return machine
  })
