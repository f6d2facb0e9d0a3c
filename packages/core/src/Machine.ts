/**
 * Machines: where agents run and where `exec` runs.
 *
 * A `MachineProvider` creates machines inside a `Scope`; closing the scope
 * releases the machine and everything started on it.
 */
import { Context, type Duration, Effect, Option, Schema, Scope, type Stream } from "effect"
import { CurrentProcess } from "./internal/processState.js"
import type { MachineInfo } from "./MachineInfo.js"
import { Journal } from "./Journal.js"
import { RunLog } from "./RunLog.js"
import type { SandboxOptions } from "./Sandbox.js"
import type { MakeError as WorktreeMakeError, Worktree, WorktreeOptions } from "./Worktree.js"

export { MachineInfo, SandboxInfo, SshAccess, WorktreeInfo } from "./MachineInfo.js"

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

/** A regular file opened for reading (`Machine.openFile`). */
export interface FileSource {
  /** Its size when it was opened: the stream gives exactly this many bytes. */
  readonly size: number
  /** Its permission bits (`0o644`, …). */
  readonly mode: number
  /** Its bytes, in chunks; fails if the file shrank meanwhile (bytes it grew by are not read). */
  readonly stream: Stream.Stream<Uint8Array, MachineError>
}

export interface ReadFileOptions {
  /** Refuse a file larger than this many bytes. */
  readonly maxBytes?: number
}

export interface WriteFileOptions {
  /** Permission bits of the file written (the umask applies); default: the replaced file's, else `0o666`. */
  readonly mode?: number
}

/**
 * A machine's files. Paths are relative to its working directory (or
 * absolute inside it), and nothing outside it is read or written:
 *
 * - the directories on the way are opened one by one and must really lie
 *   inside (a symbolic link to another directory inside is fine);
 * - a file is read only if it is a regular file with one name: a symbolic
 *   link, a hard-linked file (its other name may be outside), a FIFO, a
 *   device, a socket or a directory is refused. It is opened once, without
 *   following links or waiting for a writer, and checked through what was
 *   opened (its count of names as it is then: a hard link made and removed
 *   again meanwhile goes unseen, but making one takes access to the other
 *   name already);
 * - a file is written to a new temporary file beside it, then renamed into
 *   place: whatever had that name (a link, a hard-linked file, a FIFO) is
 *   replaced, never written through. A failed write leaves nothing.
 */
export interface MachineFiles {
  readonly readFile: (path: string, options?: ReadFileOptions) => Effect.Effect<Uint8Array, MachineError>
  /** Write a file, creating its parent directories. */
  readonly writeFile: (path: string, data: Uint8Array | string, options?: WriteFileOptions) => Effect.Effect<void, MachineError>
  /** Open a file for streaming, as `readFile` would read it; it stays open until the scope closes. */
  readonly openFile: (path: string, options?: ReadFileOptions) => Effect.Effect<FileSource, MachineError, Scope.Scope>
  /** Write `source` to a file, as `writeFile` does, streaming it (on another machine, or on another host). */
  readonly writeFileFrom: (path: string, source: FileSource, options?: WriteFileOptions) => Effect.Effect<void, MachineError>
}

export interface Machine extends MachineFiles {
  readonly id: string
  readonly kind: string
  /** Absolute working directory on the machine; relative paths resolve against it. */
  readonly cwd: string
  readonly exec: (command: string, options?: ExecOptions) => Effect.Effect<ExecResult, MachineError>
  /**
   * Start a long-running program. Closing the scope stops it (and, for tmux,
   * kills its session).
   */
  readonly spawn: (spec: SpawnSpec) => Effect.Effect<Spawned, MachineError, Scope.Scope>
  /**
   * Take over the program that a previous orchestrator of this run spawned
   * as `name`, if it still runs (machines whose programs outlive their
   * orchestrator, such as tmux ones): from here on it is watched and stopped
   * as if `spawn` had started it. None when it is gone.
   */
  readonly adopt?: (name: string) => Effect.Effect<Option.Option<Spawned>, MachineError, Scope.Scope>
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
  /**
   * The machine of a resumed run: take over what a previous orchestrator of
   * the run made under this name (its working directory, its worktree and
   * branch) as it is, instead of refusing it.
   */
  readonly adopt?: boolean
}

/** Everything making a machine can fail with. */
export type MakeError = MachineError | HostUnreachable | WorktreeMakeError

/** Creates machines; the machine lives until the scope closes. */
export class MachineProvider extends Context.Tag("@ramure/core/MachineProvider")<
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
): Effect.Effect<Machine, MakeError, MachineProvider | CurrentProcess | RunLog | Journal> =>
  Effect.gen(function* () {
    const provider = yield* MachineProvider
    const owner = yield* CurrentProcess
    const runLog = yield* RunLog
    // In a resumed run, the machine it had: the same name, so the same working directory.
    const journaled = yield* (yield* Journal).take(owner.path, "machine", options.name)
    const machine = yield* provider.make(Option.isSome(journaled) ? { ...options, adopt: true } : options).pipe(
      Scope.extend(owner.scope)
    )
    if (Option.isNone(journaled)) yield* runLog.log({ process: owner.path }, { _tag: "MachineCreated", machine: machine.describe })
    return machine
  })
