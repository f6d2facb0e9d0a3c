/**
 * The one tmux dialect of ramure, for local tmux machines, ssh hosts, the
 * last-resort cleanup and the CLI: the socket, the configuration, session
 * names (`ramure-<id8>-<agent>`), the pane wrapper, argument escaping, pane
 * states, and the ownership label every session carries.
 *
 * Free of imports from the rest of ramure (owner.ts aside): the runtime and
 * the signal handlers load it.
 *
 * @internal
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Data, Effect, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as Owner from "./Owner.js"
import * as Registry from "./Registry.js"

// ---- the dialect ------------------------------------------------------------------------

/** The default socket: `tmux -L ramure ls` lists ramure's sessions. */
export const defaultSocket = "ramure"

/** The socket in use: `RAMURE_TMUX_SOCKET`, else `ramure`. */
export const currentSocket = (): string => process.env.RAMURE_TMUX_SOCKET || defaultSocket

/** The whole tmux configuration ramure uses (pi's recommended `extended-keys-format` breaks tmux 3.3a). */
export const config = "set -g extended-keys on\nset -g remain-on-exit on\n"

/** The session option that names a session's owner (`Owner.encode`). */
export const ownerOption = "@ramure_owner"

/** The pane option in which the wrapper publishes the program's pid. */
export const pidOption = "@ramure_pid"

/** The prefix of the sessions of a run: `ramure-<first 8 characters of its execution id>-`. */
export const sessionPrefix = (executionId: string): string => `ramure-${executionId.slice(0, 8)}-`

/** The 8-character execution id prefix in a ramure session name. */
export const runOfSession = (session: string): string | undefined => /^ramure-([0-9a-f]{8})-/.exec(session)?.[1]

/** tmux session names cannot contain `.` or `:` (tmux would rename them silently). */
export const sessionName = (name: string): string => name.replace(/[^A-Za-z0-9_-]/g, "_")

/** tmux splits its argv into commands at any argument ending in `;`; a trailing `\;` stands for a literal `;`. */
export const escapeArg = (arg: string): string => (arg.endsWith(";") ? `${arg.slice(0, -1)}\\;` : arg)

/** A POSIX shell single-quoted word. */
export const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`

/** Environment names a shell cannot export. */
export const invalidEnvNames = (env: Record<string, string>): Array<string> =>
  Object.keys(env).filter((key) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))

/** A shell script that exports `env` (the pane sources it, then deletes it). */
export const envScript = (env: Record<string, string>): string =>
  Object.entries(env).map(([key, value]) => `export ${key}=${shellQuote(value)}\n`).join("")

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
export const wrapper = [
  "env_file=$1; shift",
  `sh -c '. "$0"; rm -f "$0"; tmux set-option -p ${pidOption} "$$" 2>/dev/null; exec "$@"' "$env_file" "$@"`,
  "status=$?; sleep 0.2; exit $status"
].join("; ")

/** A pane's program: running, exited with a status tmux has not recorded yet, or exited. */
export type PaneState = "running" | "dying" | { readonly exitCode: number | undefined }

/** The state from a pane's `#{pane_dead}`, `#{pane_dead_status}` and `#{pane_dead_signal}`. */
export const paneState = (dead: string | undefined, status: string | undefined, signal: string | undefined): PaneState => {
  if (dead !== "1") return "running"
  if (status) return { exitCode: Number(status) }
  if (signal) return { exitCode: 128 + Number(signal) }
  return "dying"
}

/** One pane as `list-panes -a` reports it. */
export interface Pane {
  readonly id: string
  readonly session: string
  /** The pane's process (the wrapper, its process group's leader). */
  readonly panePid: number | undefined
  /** The tmux server's pid. */
  readonly serverPid: number | undefined
  readonly state: PaneState
  /** The program's pid, once the wrapper has published it. */
  readonly programPid: number | undefined
  /** The session's owner label, "" when it has none. */
  readonly ownerLabel: string
}

const paneFields = [
  "#{pane_id}", "#{session_name}", "#{pane_pid}", "#{pid}", "#{pane_dead}", "#{pane_dead_status}",
  "#{pane_dead_signal}", `#{${pidOption}}`, `#{${ownerOption}}`
]
/** Fields are separated by a tab; the owner label (which may hold anything but a newline) comes last. */
const paneFormat = paneFields.join("\t")

const parsePanes = (text: string): Array<Pane> =>
  text.split("\n").flatMap((line) => {
    const [id, session, panePid, serverPid, dead, status, signal, programPid, ...owner] = line.split("\t")
    if (id === undefined || !id.startsWith("%") || session === undefined) return []
    return [{
      id,
      session,
      panePid: Number(panePid) || undefined,
      serverPid: Number(serverPid) || undefined,
      state: paneState(dead, status, signal),
      programPid: Number(programPid) || undefined,
      ownerLabel: owner.join("\t")
    }]
  })

/** tmux answered that no server runs on the socket: no sessions at all. */
const noServer = (stderr: string): boolean => /no server running|error connecting to|No such file or directory/.test(stderr)

// ---- running tmux -----------------------------------------------------------------------

/** tmux could not be run at all (not installed, or no process could be started: EMFILE, EAGAIN …). */
export class TmuxUnavailable extends Data.TaggedError("TmuxUnavailable")<{
  readonly reason: "NotInstalled" | "CannotStart"
  readonly message: string
}> {}

/** tmux ran and refused (a non-zero exit). */
export class TmuxFailed extends Data.TaggedError("TmuxFailed")<{
  readonly command: string
  readonly message: string
}> {}

/** What to do when this process runs out of a resource, if `message` says so. */
export const resourceAdvice = (message: string): string | undefined => {
  const code = /\b(EMFILE|ENFILE|EAGAIN|ENOMEM)\b/.exec(message)?.[1]
  if (code === undefined) return undefined
  return code === "EMFILE" || code === "ENFILE"
    ? `too many open files (${code}); raise the limit (ulimit -n) or start fewer agents at once (maxStartingAgents)`
    : `the system refused a new process (${code}); start fewer agents at once (maxStartingAgents)`
}

/** A readable sentence for a failure to start a tmux client. */
export const describeSpawnError = (message: string): string => `cannot start tmux: ${resourceAdvice(message) ?? message}`

export interface TmuxResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
}

const collect = <E>(stream: Stream.Stream<Uint8Array, E>) => stream.pipe(Stream.decodeText(), Stream.mkString)

/**
 * Run one tmux client (`args` may hold several commands separated by `";"`,
 * which is never escaped; other arguments are).
 */
export const run = (
  socket: string,
  args: ReadonlyArray<string>,
  options: { readonly config?: string | undefined } = {}
): Effect.Effect<TmuxResult, TmuxUnavailable, CommandExecutor.CommandExecutor> =>
  Effect.scoped(
    Effect.gen(function* () {
      const command = Command.make(
        "tmux", "-L", socket, ...(options.config === undefined ? [] : ["-f", options.config]),
        ...args.map((arg) => (arg === ";" ? arg : escapeArg(arg)))
      ).pipe(Command.stdin(Stream.empty))
      const proc = yield* Command.start(command)
      const [stdout, stderr, exitCode] = yield* Effect.all([collect(proc.stdout), collect(proc.stderr), proc.exitCode], {
        concurrency: "unbounded"
      })
      return { exitCode: Number(exitCode), stdout, stderr }
    })
  ).pipe(
    Effect.catchAll((error) =>
      Effect.fail(
        error._tag === "SystemError" && error.reason === "NotFound"
          ? new TmuxUnavailable({ reason: "NotInstalled", message: "tmux is not installed (apt-get install tmux)" })
          : new TmuxUnavailable({ reason: "CannotStart", message: describeSpawnError(error.message) })
      )
    )
  )

/** Like `run`, failing with `TmuxFailed` unless tmux exits 0; its stdout. */
export const runChecked = (socket: string, args: ReadonlyArray<string>, options: { readonly config?: string | undefined } = {}) =>
  Effect.flatMap(run(socket, args, options), (result) =>
    result.exitCode === 0
      ? Effect.succeed(result.stdout)
      : Effect.fail(new TmuxFailed({ command: args[0] ?? "tmux", message: `tmux ${args[0]}: ${result.stderr.trim()}` })))

/** Every pane on the socket (none when no server runs there). */
export const listPanes = (socket: string) =>
  Effect.flatMap(run(socket, ["list-panes", "-a", "-F", paneFormat]), (result) =>
    result.exitCode === 0 || noServer(result.stderr)
      ? Effect.succeed(result.exitCode === 0 ? parsePanes(result.stdout) : [])
      : Effect.fail(new TmuxFailed({ command: "list-panes", message: `tmux list-panes: ${result.stderr.trim()}` })))

/** The arguments of one tmux client that kills these sessions (by name or id), one after another. */
export const killSessionsArgs = (targets: ReadonlyArray<string>): Array<string> =>
  targets.flatMap((target, i) => [...(i === 0 ? [] : [";"]), "kill-session", "-t", target])

/** `=name`, the exact-match target of a session name. */
export const exact = (session: string): string => `=${session}`

/**
 * Kill sessions with as few tmux clients as possible: one for all, unless one
 * of them is already gone (tmux stops at the first error), then one each.
 */
export const killSessions = (socket: string, targets: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    if (targets.length === 0) return
    const all = yield* run(socket, killSessionsArgs(targets))
    if (all.exitCode === 0 || targets.length === 1) return
    yield* Effect.forEach(targets, (target) => run(socket, ["kill-session", "-t", target]), { discard: true })
  })

// ---- ownership ---------------------------------------------------------------------------

/** The `set-option` command (after a `;`) that labels the session named `session` as owned by `owner`. */
export const labelArgs = (session: string, owner: Owner.Owner): Array<string> => [
  "set-option", "-t", `=${session}:`, ownerOption, Owner.encode(owner)
]

/** What a ramure session on the socket is, for cleanup. */
export type SessionVerdict =
  | { readonly _tag: "Live"; readonly session: string; readonly owner: Owner.Owner }
  | { readonly _tag: "Orphaned"; readonly session: string; readonly owner: Owner.Owner; readonly groups: ReadonlyArray<number> }
  /** Its orchestrator is gone, and its agents wait until `until` (epoch ms) for the run to be resumed: left alone. */
  | { readonly _tag: "Waiting"; readonly session: string; readonly owner: Owner.Owner; readonly until: number }
  /** A `ramure-*` session without a label, or with one that names no owner: left alone. */
  | { readonly _tag: "Unattributed"; readonly session: string; readonly why: string }

/** Until when the agents of a gone owner's run wait to be re-adopted (see `Registry.waitingUntil`). */
export type WaitingUntil = (owner: Owner.Owner) => number | undefined

const registryWindow: WaitingUntil = (owner) => Registry.waitingUntil(owner.home, owner.executionId)

/** Judge every ramure session on the socket by its owner label (see `Owner.ownerAlive`) and its run's resume window. */
export const judge = (
  panes: ReadonlyArray<Pane>,
  waitingUntil: WaitingUntil = registryWindow,
  /** The owner's run has a live orchestrator now (it was resumed). */
  resumed: (owner: Owner.Owner) => boolean = (owner) => Registry.runAlive(owner.home, owner.executionId)
): Array<SessionVerdict> => {
  const bySession = new Map<string, Array<Pane>>()
  for (const pane of panes) bySession.set(pane.session, [...(bySession.get(pane.session) ?? []), pane])
  const verdicts: Array<SessionVerdict> = []
  for (const [session, sessionPanes] of bySession) {
    const label = sessionPanes[0]!.ownerLabel
    if (label === "") {
      if (session.startsWith("ramure-")) verdicts.push({ _tag: "Unattributed", session, why: "it has no owner label" })
      continue
    }
    const owner = Owner.decode(label)
    const until = Owner.isOwner(owner) && !Owner.ownerAlive(owner) ? waitingUntil(owner) : undefined
    if (!Owner.isOwner(owner)) {
      verdicts.push({ _tag: "Unattributed", session, why: owner.invalid })
    } else if (Owner.ownerAlive(owner) || resumed(owner)) {
      verdicts.push({ _tag: "Live", session, owner })
    } else if (until !== undefined) {
      verdicts.push({ _tag: "Waiting", session, owner, until })
    } else {
      const groups = sessionPanes.flatMap((pane) => (pane.panePid === undefined ? [] : [pane.panePid]))
      verdicts.push({ _tag: "Orphaned", session, owner, groups })
    }
  }
  return verdicts
}

const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch {
    // gone already
  }
}

/** Kill what is provably orphaned on the socket (process groups first, then sessions); every verdict. */
export const collectOrphans = (socket: string) =>
  Effect.gen(function* () {
    const verdicts = judge(yield* listPanes(socket))
    const orphaned = verdicts.filter((verdict) => verdict._tag === "Orphaned")
    for (const verdict of orphaned) verdict.groups.forEach((group) => signalGroup(group, "SIGKILL"))
    yield* killSessions(socket, orphaned.map((verdict) => exact(verdict.session)))
    return verdicts
  })

// ---- the synchronous part, for last-resort paths ----------------------------------------

const runSync = (socket: string, args: ReadonlyArray<string>): string | undefined => {
  try {
    return execFileSync("tmux", ["-L", socket, ...args.map((arg) => (arg === ";" ? arg : escapeArg(arg)))], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"]
    })
  } catch {
    return undefined
  }
}

const killSessionsSync = (socket: string, targets: ReadonlyArray<string>): void => {
  if (targets.length === 0) return
  if (runSync(socket, killSessionsArgs(targets)) !== undefined || targets.length === 1) return
  for (const target of targets) runSync(socket, ["kill-session", "-t", target])
}

/**
 * Kill, synchronously, the sessions on the socket that `select` picks
 * (process groups first, with SIGKILL). Every ramure session's verdict, and
 * those killed.
 */
export const killSync = (
  socket: string,
  select: (verdict: SessionVerdict) => boolean
): { readonly verdicts: ReadonlyArray<SessionVerdict>; readonly killed: ReadonlyArray<SessionVerdict> } => {
  const panes = parsePanes(runSync(socket, ["list-panes", "-a", "-F", paneFormat]) ?? "")
  const verdicts = judge(panes)
  const killed = verdicts.filter(select)
  const sessions = new Set(killed.map((verdict) => verdict.session))
  for (const pane of panes) if (sessions.has(pane.session) && pane.panePid !== undefined) signalGroup(pane.panePid, "SIGKILL")
  killSessionsSync(socket, [...sessions].map(exact))
  return { verdicts, killed }
}

/** Is the verdict about a session of the run `executionId` started by this very process? */
export const ownedByThisProcess = (executionId: string) => (verdict: SessionVerdict): boolean =>
  verdict._tag !== "Unattributed" && verdict.owner.executionId === executionId && verdict.owner.pid === process.pid
