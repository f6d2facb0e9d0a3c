/**
 * Machines: where agents run and where `exec` runs.
 *
 * A `MachineProvider` creates machines inside a `Scope`; closing the scope
 * releases the machine and everything started on it.
 */
import { Context, type Duration, Effect, Schema, Scope } from "effect"
import { CurrentProcess } from "./internal/processState.js"
import { Runtime } from "./Runtime.js"
import type { SandboxOptions } from "./Sandbox.js"
import type { MakeError as WorktreeMakeError, Worktree, WorktreeOptions } from "./Worktree.js"

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

/** How to reach a machine's host with OpenSSH (through the run's master connection while it lives). */
export const SshAccess = Schema.Struct({
  /** Host name or `~/.ssh/config` alias. */
  destination: Schema.String,
  port: Schema.optional(Schema.Number),
  user: Schema.optional(Schema.String),
  identityFile: Schema.optional(Schema.String),
  configFile: Schema.optional(Schema.String),
  /** Extra `-o` options. */
  options: Schema.optional(Schema.Array(Schema.String)),
  /** The master connection's control socket (`ssh -S`). */
  controlPath: Schema.String,
  /** The tmux socket name on that host (`tmux -L`). */
  tmuxSocket: Schema.String
})
export type SshAccess = typeof SshAccess.Type

/** A machine whose programs run in a bubblewrap sandbox (see `Sandbox`). */
export const SandboxInfo = Schema.Struct({
  network: Schema.Literal("host", "none"),
  /** bwrap and its arguments, up to the program: append `--` and a command to run it in the machine's sandbox. */
  command: Schema.Array(Schema.String)
})
export type SandboxInfo = typeof SandboxInfo.Type

/** A machine whose working directory is a worktree of a repository (see `Worktree`). */
export const WorktreeInfo = Schema.Struct({ repo: Schema.String, branch: Schema.String, base: Schema.String })
export type WorktreeInfo = typeof WorktreeInfo.Type

/** What a person (or the CLI) needs to find a machine. */
export const MachineInfo = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  cwd: Schema.String,
  host: Schema.optional(Schema.String),
  ssh: Schema.optional(SshAccess),
  sandbox: Schema.optional(SandboxInfo),
  worktree: Schema.optional(WorktreeInfo)
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
  /**
   * Host paths the program needs besides the working directory (a sandboxed
   * machine shows it only these and the system): its own files (`read`) and
   * its state (`write`).
   */
  readonly needs?: { readonly read?: ReadonlyArray<string>; readonly write?: ReadonlyArray<string> }
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

/** A machine's host could not be reached (connection refused, authentication failed, …). */
export class HostUnreachable extends Schema.TaggedError<HostUnreachable>()("HostUnreachable", {
  host: Schema.String,
  /** What ssh (or the transport) said. */
  reason: Schema.String
}) {
  override get message() {
    return `cannot reach host ${this.host}: ${this.reason}`
  }
}

/**
 * What a machine on another host offers the launchers that start programs
 * there: they cannot use this host's files.
 */
export interface RemoteHost {
  /** The host's name in the provider's configuration. */
  readonly name: string
  /** The program (and leading arguments) that starts pi on that host. */
  readonly piCommand: readonly [string, ...Array<string>]
  /** The run's private directory (0700) on that host, outside every machine's working directory. */
  readonly stateDirectory: string
  /** Write a private (0600) file on that host, creating its directories (0700); `file` is absolute. */
  readonly writePrivateFile: (file: string, data: string) => Effect.Effect<void, MachineError>
  /** Copy a file of this host to that host, once per content; its path there. */
  readonly upload: (localFile: string) => Effect.Effect<string, MachineError>
}

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
  /** Set when the machine is on another host. */
  readonly remote?: RemoteHost
  /** Set when the working directory is a worktree of a repository: the agent's work, its branch. */
  readonly worktree?: Worktree
}

export interface MachineOptions {
  /** Name of the machine, unique within the run. */
  readonly name: string
  /** Use this existing directory as the working directory instead of a fresh one. */
  readonly cwd?: string
  /**
   * Put the machine on this host (providers of several hosts, such as ssh);
   * providers of this host alone refuse any host.
   */
  readonly host?: string
  /**
   * Make the working directory a worktree of a repository, on a branch of
   * its own (see `Worktree`); released, the machine commits what was left
   * to the branch and removes the worktree.
   */
  readonly worktree?: WorktreeOptions
  /** Run the machine's programs and commands in a bubblewrap sandbox (see `Sandbox`). */
  readonly sandbox?: boolean | SandboxOptions
}

/** Everything making a machine can fail with. */
export type MakeError = MachineError | HostUnreachable | WorktreeMakeError

/** Creates machines; the machine lives until the scope closes. */
export class MachineProvider extends Context.Tag("ramure/MachineProvider")<
  MachineProvider,
  {
    readonly kind: string
    readonly make: (options: MachineOptions) => Effect.Effect<Machine, MakeError, Scope.Scope>
  }
>() {}

/**
 * A standalone machine owned by the current process: released (its programs
 * stopped) when the process ends. Give it to several agents with
 * `Agent.make(name, { machine })`.
 */
export const make = (
  options: MachineOptions
): Effect.Effect<Machine, MakeError, MachineProvider | CurrentProcess | Runtime> =>
  Effect.gen(function* () {
    const provider = yield* MachineProvider
    const owner = yield* CurrentProcess
    const runtime = yield* Runtime
    const machine = yield* provider.make(options).pipe(Scope.extend(owner.scope))
    yield* runtime.log({ type: "machine_created", process: owner.path, data: { machine: machine.describe } })
    return machine
  })
