/**
 * Machines on other hosts, reached with OpenSSH.
 *
 * Each host gets one ControlMaster connection, opened when a machine first
 * needs it and closed with the layer. It carries every command and reverse
 * tunnels (`-R`) for the run's WebSocket and the `forwardPorts`, so agents
 * there reach the run on their own 127.0.0.1: nothing listens on the remote
 * but loopback, and nothing here but loopback. A dropped connection is
 * re-opened with the same tunnels, and the agents' extensions reconnect.
 *
 * A machine is a working directory under the host's `root`; programs run in
 * tmux sessions there. What the remote needs: a POSIX shell, bash, coreutils,
 * tmux, Node and pi.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Duration, Effect, ExecutionStrategy, Layer, Ref, Scope } from "effect"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import * as RemoteFiles from "./internal/remoteFiles.js"
import * as SshConnection from "./internal/sshConnection.js"
import * as SshHost from "./internal/sshHost.js"
import * as SshOrphans from "./internal/sshOrphans.js"
import type { ExecOptions, Machine, MachineOptions, SshAccess } from "@ramure/core/Machine"
import { HostUnreachable, MachineError, MachineProvider } from "@ramure/core/Machine"
import { Run } from "@ramure/core/Run"
import { RunInfo, shortId } from "@ramure/core/RunInfo"

export { HostUnreachable } from "@ramure/core/Machine"

/** One remote host. */
export interface HostOptions {
  /** How processes ask for this host (`Agent.make(name, { host })`); default `destination`. */
  readonly name?: string
  /** Host name, address, or `~/.ssh/config` alias. */
  readonly destination: string
  readonly port?: number
  readonly user?: string
  readonly identityFile?: string
  /** An ssh config file (`ssh -F`) instead of the user's. */
  readonly configFile?: string
  /** Extra ssh options, `Key=value` (`ssh -o`). */
  readonly options?: ReadonlyArray<string>
  /** Working root there (default `~/.ramure`); a run's files live in `<root>/<execution id>/`. */
  readonly root?: string
  /** The command that starts pi there (default `["pi"]`). */
  readonly pi?: readonly [string, ...Array<string>]
  /** The tmux socket there (`tmux -L`, default `ramure`). */
  readonly tmuxSocket?: string
}

export interface Options {
  readonly hosts: ReadonlyArray<HostOptions>
  /**
   * Ports of this host's 127.0.0.1 that agents must reach too (a local model
   * endpoint): forwarded to the same port of each remote's 127.0.0.1.
   */
  readonly forwardPorts?: ReadonlyArray<number>
  /** Commands at once over one connection (default 8; sshd's `MaxSessions` is 10). */
  readonly maxChannels?: number
  /** How long an operation waits for a dropped connection to come back (default 30 s). */
  readonly reconnectTimeout?: Duration.DurationInput
  /** How often a host's tmux panes are checked for programs that exited (default 500 ms). */
  readonly pollInterval?: Duration.DurationInput
}

const isValidName = (name: string): boolean =>
  name.length > 0 && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0")

/**
 * `timeout` (0: none) makes the command its own process group and kills all
 * of it when it fires (exit 124); its pid, in `pidfile`, lets an interrupted
 * `exec` kill the group too.
 */
const execScript = `
cd -- "$1" || exit 1
seconds=$2 command=$3 pidfile=$4; shift 4
mkdir -p -- "$(dirname -- "$pidfile")" || exit 1
env "$@" timeout -k 2 "$seconds" bash -c "$command" &
echo $! > "$pidfile"
wait $!
status=$?
rm -f -- "$pidfile"
exit $status`

/** Kill the group of an interrupted `exec` (waiting briefly for it to have started). */
const killExecScript = `
i=0
while [ ! -f "$1" ] && [ $i -lt 20 ]; do sleep 0.05; i=$((i + 1)); done
[ -f "$1" ] && kill -s TERM -- "-$(cat "$1")" 2>/dev/null
rm -f -- "$1"
exit 0`

const makeMachine = (host: SshHost.SshHost, options: MachineOptions) =>
  Effect.gen(function* () {
    const config = host.connection.host
    const fail = (operation: string, message: string) =>
      new MachineError({ machine: options.name, operation, message: `${operation} on host ${config.name}: ${message}` })
    if (!isValidName(options.name)) return yield* Effect.fail(fail("make", `invalid machine name: ${JSON.stringify(options.name)}`))
    const runDirectory = yield* host.runDirectory
    const run = (operation: string, script: string, args: ReadonlyArray<string>, stdin?: Uint8Array) =>
      host.runChecked(options.name, operation, script, args, stdin).pipe(
        Effect.catchTag("HostUnreachable", (error) => Effect.fail(fail(operation, error.reason)))
      )
    const created = options.cwd === undefined
    const requested = options.cwd ?? path.posix.join(runDirectory, options.name)
    const made = yield* run("make", `${created ? `mkdir -p -- "$1" && ` : ""}cd -- "$1" && pwd -P`, [requested])
    const cwd = new TextDecoder().decode(made.stdout).trim()
    if (created) {
      yield* Effect.addFinalizer(() =>
        run("stop", `rm -rf -- "$1"`, [cwd]).pipe(
          Effect.catchAll((error) => Effect.logWarning(`ramure: could not remove ${cwd} on ${config.name}: ${error.message}`))
        )
      )
    }

    const attributes = { machine: options.name, kind: "ssh", host: config.name }

    const exec = Effect.fn("Machine.exec", { attributes })(function* (command: string, execOptions?: ExecOptions) {
      const env = Object.entries(execOptions?.env ?? {}).map(([key, value]) => `${key}=${value}`)
      const timeout = execOptions?.timeout === undefined ? undefined : Duration.decode(execOptions.timeout)
      const seconds = timeout === undefined ? "0" : String(Math.max(Duration.toMillis(timeout), 1) / 1000)
      const pidFile = path.posix.join(runDirectory, ".exec", `${crypto.randomBytes(8).toString("hex")}.pid`)
      const result = yield* host.connection.run(execScript, [cwd, seconds, command, pidFile, ...env], {
        // A backstop for a connection that hangs: the remote `timeout` normally answers first.
        ...(timeout === undefined ? {} : { timeout: Duration.sum(timeout, Duration.seconds(5)) })
      }).pipe(
        Effect.mapError((error) => fail("exec", error.reason)),
        Effect.onInterrupt(() =>
          host.connection.run(killExecScript, [pidFile], { reconnectTimeout: "5 seconds", timeout: "10 seconds" }).pipe(Effect.ignore)
        )
      )
      const decoder = new TextDecoder()
      return { exitCode: result.exitCode, stdout: decoder.decode(result.stdout), stderr: result.stderr }
    })

    const spawnIn = Effect.fn("SshMachine.spawn", { attributes })((spec: Parameters<Machine["spawn"]>[0]) =>
      host.spawn(options.name, cwd, spec)
    )

    return {
      id: options.name,
      kind: "ssh",
      cwd,
      exec,
      ...RemoteFiles.make({ connection: host.connection, slots: host.fileSlots, cwd, fail, attributes }),
      spawn: spawnIn,
      describe: {
        id: options.name,
        kind: "ssh",
        cwd,
        host: config.name,
        ssh: {
          destination: config.destination,
          ...(config.port === undefined ? {} : { port: config.port }),
          ...(config.user === undefined ? {} : { user: config.user }),
          ...(config.identityFile === undefined ? {} : { identityFile: config.identityFile }),
          ...(config.configFile === undefined ? {} : { configFile: config.configFile }),
          ...(config.options.length === 0 ? {} : { options: config.options }),
          controlPath: host.connection.controlPath,
          tmuxSocket: host.settings.tmuxSocket
        }
      },
      remote: {
        name: config.name,
        piCommand: host.settings.piCommand,
        stateDirectory: runDirectory,
        writePrivateFile: (file, data) => host.writePrivateFile(options.name, file, data),
        upload: (localFile) => host.upload(options.name, localFile)
      }
    } satisfies Machine
  })

/** The host a new machine goes to: the one named, else the one with the fewest live machines. */
const place = (hosts: ReadonlyArray<SshHost.SshHost>, options: MachineOptions) =>
  Effect.gen(function* () {
    if (options.host !== undefined) {
      const named = hosts.find((host) => host.connection.host.name === options.host)
      if (named !== undefined) return named
      const known = hosts.map((host) => host.connection.host.name).join(", ")
      return yield* new MachineError({ machine: options.name, operation: "make", message: `no host named ${JSON.stringify(options.host)} (hosts: ${known})` })
    }
    const loads = yield* Effect.forEach(hosts, (host) => Ref.get(host.load))
    return hosts[loads.indexOf(Math.min(...loads))]!
  })

/**
 * A `MachineProvider` of machines on `options.hosts`. Needs the run's
 * `Run` (its port is forwarded to every host).
 */
export const layer = (
  options: Options
): Layer.Layer<MachineProvider, never, Run | RunInfo | CommandExecutor.CommandExecutor> =>
  Layer.scoped(
    MachineProvider,
    Effect.gen(function* () {
      const run = yield* Run
      const { executionId, home } = yield* RunInfo
      const layerScope = yield* Effect.scope
      const names = options.hosts.map((host) => host.name ?? host.destination)
      if (names.length === 0) return yield* Effect.dieMessage("SshMachineProvider: no hosts")
      const duplicate = names.find((name, i) => names.indexOf(name) !== i)
      if (duplicate !== undefined) return yield* Effect.dieMessage(`SshMachineProvider: two hosts are named ${duplicate}`)
      const maxChannels = options.maxChannels ?? 8
      // A copy between two machines of one host streams through two channels at once.
      if (maxChannels < 2) return yield* Effect.dieMessage("SshMachineProvider: maxChannels must be at least 2")

      const forwardPorts = [Number(new URL(run.url).port), ...(options.forwardPorts ?? [])]
      // Unix socket paths are short (108 bytes): one short name per host.
      const controlDirectory = path.join(home, "ssh")
      yield* Effect.sync(() => nodeFs.mkdirSync(controlDirectory, { recursive: true, mode: 0o700 }))

      // Runs that died (SIGKILL) before releasing their hosts: clean up after them, in the background.
      yield* collectOrphans(home).pipe(
        Effect.flatMap((collected) =>
          Effect.forEach(collected, (item) =>
            Effect.logWarning(
              `ramure: run ${shortId(item.executionId)} died without cleaning up host ${item.host}: ` +
                (item.reached ? `removed its directory${item.sessions.length > 0 ? ` and tmux sessions ${item.sessions.join(", ")}` : ""}` : "unreachable, will retry")
            ))
        ),
        Effect.forkIn(layerScope)
      )

      const hosts = yield* Effect.forEach(options.hosts, (host, index) =>
        Effect.gen(function* () {
          // Each host closes on its own, in parallel with the others.
          const scope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
          const connection = yield* SshConnection.make({
            host: {
              name: names[index]!,
              destination: host.destination,
              port: host.port,
              user: host.user,
              identityFile: host.identityFile,
              configFile: host.configFile,
              options: host.options ?? []
            },
            controlPath: path.join(controlDirectory, `${shortId(executionId)}-${index}`),
            forwardPorts,
            maxChannels,
            reconnectTimeout: options.reconnectTimeout ?? "30 seconds"
          }, scope)
          return yield* SshHost.make({
            connection,
            executionId,
            scope,
            record: { home, name: `${executionId}-${index}` },
            maxChannels,
            settings: {
              root: host.root ?? "~/.ramure",
              piCommand: host.pi ?? ["pi"],
              tmuxSocket: host.tmuxSocket ?? "ramure",
              pollInterval: options.pollInterval ?? "500 millis"
            }
          })
        }))

      const make = (machineOptions: MachineOptions): Effect.Effect<Machine, MachineError | HostUnreachable, Scope.Scope> =>
        Effect.gen(function* () {
          const host = yield* place(hosts, machineOptions)
          yield* Effect.acquireRelease(Ref.update(host.load, (n) => n + 1), () => Ref.update(host.load, (n) => n - 1))
          return yield* makeMachine(host, machineOptions)
        }).pipe(Effect.withSpan("SshMachineProvider.make", { attributes: { machine: machineOptions.name } }))

      return MachineProvider.of({ kind: "ssh", make })
    })
  )

/**
 * The `ssh` arguments that run `command` on a machine's host (from its
 * `describe().ssh`): through the run's connection while it lives, directly
 * otherwise. `tty` asks for a terminal (`ramure connect`, `ramure ssh`).
 */
export const sshArgs = (access: SshAccess, command: string, options: { readonly tty?: boolean } = {}): Array<string> => [
  ...SshConnection.baseArgs({
    name: access.destination,
    destination: access.destination,
    port: access.port,
    user: access.user,
    identityFile: access.identityFile,
    configFile: access.configFile,
    options: access.options ?? []
  }),
  options.tty ? "-t" : "-T",
  "-o", "ControlMaster=no",
  "-S", access.controlPath,
  access.destination,
  command
]

/**
 * Clean up after runs killed (SIGKILL) while they used ssh hosts: their
 * tmux sessions and process groups there are killed, their directories
 * removed, their master connections closed. Hosts that do not answer are
 * retried next time. (`ramure gc` and every run with ssh machines do it.)
 */
export const collectOrphans = SshOrphans.collect

export type { Collected } from "./internal/sshOrphans.js"

/** Quote a value for the remote POSIX shell. */
export const shellQuote = SshConnection.shellQuote
