/**
 * What ramure keeps on one ssh host during a run: the run's private
 * directory, uploaded files, and the tmux sessions of the programs it
 * started there, watched by one poll of the host's panes.
 *
 * @internal
 */
import { Deferred, type Duration, Effect, Option, Ref, Schedule, Scope, Stream, SubscriptionRef } from "effect"
import { execFileSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { HostUnreachable, MachineError, type SpawnExit, type SpawnSpec, type Spawned } from "@ramure/core/Machine"
import { type RemoteResult, type SshConnection } from "./sshConnection.js"
import { startTimeOf } from "@ramure/node/Owner"
import * as SshOrphans from "./sshOrphans.js"
import * as Tmux from "@ramure/node/Tmux"

export interface HostSettings {
  /** Working root on the host; `~` and `~/…` are the remote user's home. */
  readonly root: string
  readonly piCommand: readonly [string, ...Array<string>]
  readonly tmuxSocket: string
  readonly pollInterval: Duration.DurationInput
}

export interface SshHost {
  readonly connection: SshConnection
  readonly settings: HostSettings
  /** Live machines on the host (for placement). */
  readonly load: Ref.Ref<number>
  /** File reads and writes at once on the host (see `remoteFiles.ts`). */
  readonly fileSlots: { readonly reading: Effect.Semaphore; readonly writing: Effect.Semaphore }
  /** The run's private directory on the host, created on first use (removed when the host's scope closes). */
  readonly runDirectory: Effect.Effect<string, HostUnreachable>
  /** Run a script, failing with a `MachineError` of `machine` unless it exits 0. */
  readonly runChecked: (
    machine: string,
    operation: string,
    script: string,
    args?: ReadonlyArray<string>,
    stdin?: Uint8Array
  ) => Effect.Effect<RemoteResult, MachineError | HostUnreachable>
  readonly writePrivateFile: (machine: string, file: string, data: string) => Effect.Effect<void, MachineError>
  readonly upload: (machine: string, localFile: string) => Effect.Effect<string, MachineError>
  /** Start a program in a tmux session on the host; closing the scope kills it and its session. */
  readonly spawn: (machine: string, cwd: string, spec: SpawnSpec) => Effect.Effect<Spawned, MachineError, Scope.Scope>
}


const setupScript = `
root=$1 run=$2 conf=$3
case $root in "~") root=$HOME ;; "~/"*) root=$HOME/\${root#"~/"} ;; esac
umask 077
mkdir -p -- "$root/$run" && cd -- "$root" && root=$(pwd -P) || exit 1
printf '%s' "$conf" > "$root/$run/tmux.conf" || exit 1
printf '%s\\n' "$root"`

const writeScript = `umask 077; mkdir -p -- "$(dirname -- "$1")" && cat > "$1.tmp$$" && mv -f -- "$1.tmp$$" "$1"`


const spawnScript = `
sock=$1 conf=$2 session=$3 cwd=$4 env_file=$5 wrapper=$6; shift 6
[ -d "$cwd" ] || { echo "no such directory: $cwd" >&2; exit 1; }
command -v tmux >/dev/null 2>&1 || { echo "tmux is not installed" >&2; exit 1; }
umask 077
mkdir -p -- "$(dirname -- "$env_file")" && cat > "$env_file" || exit 1
tmux -L "$sock" -f "$conf" new-session -d -s "$session" -c "$cwd" -- sh -c "$wrapper" sh "$env_file" "$@" || { rm -f -- "$env_file"; exit 1; }`

/**
 * SIGTERM the pane's process group, SIGKILL what is left after 1.5 s, then
 * kill the session; prints the pane's last state. Zombies do not count: tmux
 * 3.3a can leave the pane's process one until its server gets a SIGCHLD.
 */
const releaseScript = `
sock=$1 session=$2 env_file=$3
set -- $(tmux -L "$sock" display-message -p -t "=$session:" '#{pane_pid} #{pid}' 2>/dev/null)
pid=$1 server=$2
running() { ps -e -o pgid= -o stat= | awk -v group="$pid" '$1 == group && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
if [ -n "$pid" ] && kill -s TERM -- "-$pid" 2>/dev/null; then
  i=0
  while running && [ $i -lt 30 ]; do sleep 0.05; i=$((i + 1)); done
  running && kill -s KILL -- "-$pid" 2>/dev/null
  kill -s CHLD "$server" 2>/dev/null
fi
tmux -L "$sock" display-message -p -t "=$session:" '#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}' 2>/dev/null
tmux -L "$sock" kill-session -t "=$session" 2>/dev/null
rm -f -- "$env_file"
exit 0`

/**
 * \`session|dead|status|signal\` per pane. tmux 3.3a sometimes misses the
 * SIGCHLD of a pane's process and leaves it dead without a status: wake it.
 */
const listScript = `
panes=$(tmux -L "$1" list-panes -a -F '#{session_name}|#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}|#{pid}' 2>/dev/null)
printf '%s\n' "$panes"
printf '%s\n' "$panes" | while IFS='|' read -r session dead status signal server; do
  [ "$dead" = 1 ] && [ -z "$status$signal" ] && kill -s CHLD "$server" 2>/dev/null
done
exit 0`

/** A pane (`dead|status|signal`): running, dead without a recorded status yet, or exited. */
const paneState = (line: string | undefined): Tmux.PaneState => {
  if (line === undefined) return { exitCode: undefined }
  const [dead, status, signal] = line.trim().split("|")
  return Tmux.paneState(dead, status, signal)
}

interface PaneSnapshot {
  /** Number of the poll; a spawn only trusts polls that started after it. */
  readonly poll: number
  /** `session → "dead|status|signal"` */
  readonly panes: ReadonlyMap<string, string>
}

const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

export const make = (options: {
  readonly connection: SshConnection
  readonly settings: HostSettings
  readonly executionId: string
  /** The host's scope (its connection's): the run directory is removed when it closes. */
  readonly scope: Scope.Scope
  /** Where the host's use is recorded until it is released (for a later cleanup after a SIGKILL). */
  readonly record: { readonly home: string; readonly name: string }
  /** Commands at once over the connection. */
  readonly maxChannels: number
}): Effect.Effect<SshHost> =>
  Effect.gen(function* () {
    const { connection, executionId, scope, settings } = options
    const hostName = connection.host.name
    const load = yield* Ref.make(0)
    // A copy between two machines of the host holds a channel for its read and one for its write.
    const reading = Math.max(1, Math.floor(options.maxChannels / 2))
    const fileSlots = {
      reading: yield* Effect.makeSemaphore(reading),
      writing: yield* Effect.makeSemaphore(Math.max(1, options.maxChannels - reading))
    }
    const fail = (machine: string, operation: string, message: string) =>
      new MachineError({ machine, operation, message: `${operation} on host ${hostName}: ${message}` })

    const runChecked = (
      machine: string,
      operation: string,
      script: string,
      args: ReadonlyArray<string> = [],
      stdin?: Uint8Array
    ) =>
      connection.run(script, args, stdin === undefined ? {} : { stdin }).pipe(
        Effect.filterOrFail(
          (result) => result.exitCode === 0,
          (result) => fail(machine, operation, result.stderr.trim() || `exit code ${result.exitCode}`)
        )
      )

    // ---- the run's directory ------------------------------------------------------------
    const recordOf = (runDirectory: string): SshOrphans.HostRecord => ({
      executionId,
      pid: process.pid,
      pidStarted: startTimeOf(process.pid),
      host: hostName,
      sshArgs: connection.clientArgs,
      controlPath: connection.controlPath,
      destination: connection.host.destination,
      tmuxSocket: settings.tmuxSocket,
      runDirectory
    })
    const directory = yield* Ref.make(Option.none<string>())
    const settingUp = yield* Effect.makeSemaphore(1)
    const runDirectory = settingUp.withPermits(1)(
      Effect.gen(function* () {
        const known = yield* Ref.get(directory)
        if (Option.isSome(known)) return known.value
        const result = yield* connection.run(setupScript, [settings.root, executionId, Tmux.config])
        if (result.exitCode !== 0) {
          return yield* new HostUnreachable({
            host: hostName,
            reason: `cannot create the run's directory under ${settings.root}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`
          })
        }
        const dir = path.posix.join(decode(result.stdout).trim(), executionId)
        yield* Ref.set(directory, Option.some(dir))
        const recordFile = yield* SshOrphans.write(options.record.home, options.record.name, recordOf(dir))
        // Runs before the connection closes (finalizers run in reverse order).
        yield* Scope.addFinalizer(
          scope,
          connection.run(`rm -rf -- "$1"`, [dir], { reconnectTimeout: "5 seconds", timeout: "10 seconds" }).pipe(
            Effect.filterOrFail((removed) => removed.exitCode === 0, (removed) => new HostUnreachable({ host: hostName, reason: removed.stderr })),
            Effect.zipRight(Effect.sync(() => nodeFs.rmSync(recordFile, { force: true }))),
            Effect.catchAll((error) => Effect.logWarning(`ramure: could not remove ${dir} on ${hostName}: ${error.reason}`))
          )
        )
        return dir
      })
    )

    const writePrivateFile = (machine: string, file: string, data: string) =>
      runChecked(machine, "writeFile", writeScript, [file], new TextEncoder().encode(data)).pipe(
        Effect.asVoid,
        Effect.catchTag("HostUnreachable", (error) => Effect.fail(fail(machine, "writeFile", error.reason)))
      )

    // ---- uploads, cached by content ----------------------------------------------------------
    const uploaded = new Map<string, string>()
    const uploading = yield* Effect.makeSemaphore(1)
    const upload = (machine: string, localFile: string) =>
      uploading.withPermits(1)(
        Effect.gen(function* () {
          const data = yield* Effect.try({
            try: () => nodeFs.readFileSync(localFile),
            catch: (error) => fail(machine, "upload", `cannot read ${localFile}: ${String(error)}`)
          })
          const digest = crypto.createHash("sha256").update(data).digest("hex").slice(0, 16)
          const known = uploaded.get(digest)
          if (known !== undefined) return known
          const dir = yield* Effect.mapError(runDirectory, (error) => fail(machine, "upload", error.reason))
          // Kept across runs, next to the runs' directories: the same file is sent once per host.
          const target = path.posix.join(path.posix.dirname(dir), ".cache", `${digest}-${path.basename(localFile)}`)
          const present = yield* connection.run(`[ -f "$1" ]`, [target]).pipe(
            Effect.map((result) => result.exitCode === 0),
            Effect.mapError((error) => fail(machine, "upload", error.reason))
          )
          if (!present) {
            yield* runChecked(machine, "upload", writeScript, [target], data).pipe(
              Effect.catchTag("HostUnreachable", (error) => Effect.fail(fail(machine, "upload", error.reason)))
            )
          }
          uploaded.set(digest, target)
          return target
        })
      )

    // ---- the panes of the host's tmux, polled while programs run ----------------------------
    const snapshots = yield* SubscriptionRef.make<PaneSnapshot | undefined>(undefined)
    /** Programs running on the host: the poll runs only while there are some. */
    let running = 0
    let polls = 0
    const pollOnce = Effect.gen(function* () {
      const poll = ++polls
      const result = yield* connection.run(listScript, [settings.tmuxSocket])
      // 255: ssh itself failed; the panes are unknown, not gone.
      if (result.exitCode !== 0) return
      const panes = new Map<string, string>()
      for (const line of decode(result.stdout).split("\n")) {
        const bar = line.indexOf("|")
        if (bar > 0) panes.set(line.slice(0, bar), line.slice(bar + 1))
      }
      yield* SubscriptionRef.set(snapshots, { poll, panes })
    }).pipe(Effect.ignore)
    // One poll of all panes for every program on the host, and only while some run.
    const poller = yield* Effect.cached(
      Effect.forkIn(
        Effect.whenEffect(pollOnce, Effect.sync(() => running > 0)).pipe(
          Effect.repeat(Schedule.spaced(settings.pollInterval))
        ),
        scope
      )
    )

    /** The exit of a session's program, from the polls that started after `after`; "dying" for 5 polls is an unknown exit. */
    const exitOfSession = (session: string, after: number) => {
      let dying = 0
      return snapshots.changes.pipe(
        Stream.filterMap((snapshot) => {
          if (snapshot === undefined || snapshot.poll <= after) return Option.none()
          const state = paneState(snapshot.panes.get(session))
          if (state === "running") return Option.none()
          if (state === "dying") return ++dying >= 5 ? Option.some({ exitCode: undefined }) : Option.none()
          return Option.some(state)
        }),
        Stream.runHead,
        Effect.map(Option.getOrElse((): SpawnExit => ({ exitCode: undefined })))
      )
    }

    // ---- a forced exit (second Ctrl-C) still cleans the host and closes the master ----------
    // The listener is removed when the host is released, so this runs only if the process
    // exits before that; it must be synchronous.
    const onExit = () => {
      const dir = Option.getOrUndefined(Effect.runSync(Ref.get(directory)))
      if (dir === undefined) return
      const ssh = (args: ReadonlyArray<string>) => {
        try {
          execFileSync("ssh", args, { stdio: "ignore", timeout: 5000 })
          return true
        } catch {
          return false
        }
      }
      const cleaned = ssh([...connection.clientArgs, SshOrphans.cleanupCommand(recordOf(dir))])
      ssh(["-S", connection.controlPath, "-O", "exit", connection.host.destination])
      if (cleaned) nodeFs.rmSync(SshOrphans.recordFile(options.record.home, options.record.name), { force: true })
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("exit", onExit)),
      () => Effect.sync(() => process.removeListener("exit", onExit))
    ).pipe(Scope.extend(scope))

    const spawn = (machine: string, cwd: string, spec: SpawnSpec) =>
      Effect.gen(function* () {
        const invalid = Tmux.invalidEnvNames(spec.env)
        if (invalid.length > 0) return yield* Effect.fail(fail(machine, "spawn", `invalid environment variable names: ${invalid.join(", ")}`))
        const dir = yield* Effect.mapError(runDirectory, (error) => fail(machine, "spawn", error.reason))
        const session = Tmux.sessionName(spec.name)
        const workDir = spec.cwd === undefined ? cwd : path.posix.resolve(cwd, spec.cwd)
        const envFile = path.posix.join(dir, ".env", `${session}-${crypto.randomBytes(6).toString("hex")}.env`)
        const env = Tmux.envScript(spec.env)
        const args = [
          settings.tmuxSocket, path.posix.join(dir, "tmux.conf"), session, workDir.replaceAll("#", "##"), envFile, Tmux.wrapper,
          Tmux.escapeArg(spec.command), ...spec.args.map(Tmux.escapeArg)
        ]
        const started = Effect.gen(function* () {
          yield* runChecked(machine, "spawn", spawnScript, args, new TextEncoder().encode(env)).pipe(
            Effect.catchTag("HostUnreachable", (error) => Effect.fail(fail(machine, "spawn", error.reason)))
          )
          running++
          return polls
        })
        const released = yield* Deferred.make<SpawnExit>()
        const spawnedAt = yield* Effect.acquireRelease(started, () =>
          connection.run(releaseScript, [settings.tmuxSocket, session, envFile], { reconnectTimeout: "10 seconds" }).pipe(
            Effect.map((result): SpawnExit => {
              const state = paneState(decode(result.stdout).trim() || undefined)
              return state === "running" || state === "dying" ? { exitCode: undefined } : state
            }),
            Effect.catchAll((error) =>
              Effect.as(Effect.logWarning(`ramure: could not stop ${session} on ${hostName}: ${error.reason}`), { exitCode: undefined })
            ),
            Effect.flatMap((exit) => Deferred.succeed(released, exit)),
            Effect.ensuring(Effect.sync(() => running--))
          ))
        yield* poller
        const exited = yield* Effect.cached(exitOfSession(session, spawnedAt))
        return {
          name: spec.name,
          // A process id on another host means nothing here.
          pid: undefined,
          session,
          exited: Effect.raceFirst(exited, Deferred.await(released)),
          outputTail: connection.run(`tmux -L "$1" capture-pane -p -J -t "=$2:" -S -40 2>/dev/null`, [settings.tmuxSocket, session], {
            reconnectTimeout: "2 seconds"
          }).pipe(
            Effect.map((result) => decode(result.stdout).trimEnd().split("\n").slice(-40).join("\n")),
            Effect.orElseSucceed(() => "")
          )
        } satisfies Spawned
      })

    return { connection, settings, load, fileSlots, runDirectory, runChecked, writePrivateFile, upload, spawn } satisfies SshHost
  })
