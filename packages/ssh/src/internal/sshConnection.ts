/**
 * One host reached with OpenSSH: a ControlMaster connection that carries
 * every command and the reverse tunnels (`-R`), opened on first use and
 * re-opened with the same tunnels whenever it drops.
 *
 * @internal
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import { Chunk, Deferred, Duration, Effect, Fiber, Ref, Schedule, type Sink, Scope, Stream, SubscriptionRef } from "effect"
import * as nodeFs from "node:fs"
import { HostUnreachable } from "@ramure/core/Machine"
import { exitCodeOf, runCollect } from "@ramure/node/LocalMachine"

/** How to reach a host (the provider's host options, resolved). */
export interface HostConfig {
  readonly name: string
  readonly destination: string
  readonly port: number | undefined
  readonly user: string | undefined
  readonly identityFile: string | undefined
  readonly configFile: string | undefined
  readonly options: ReadonlyArray<string>
}

export interface RemoteResult {
  readonly exitCode: number
  readonly stdout: Uint8Array
  readonly stderr: string
}

export interface RunOptions {
  readonly stdin?: Uint8Array
  /** Stop waiting (and kill the local ssh) after this long: exit code 124. */
  readonly timeout?: Duration.DurationInput
  /** How long to wait for a dropped connection to come back (default: the connection's). */
  readonly reconnectTimeout?: Duration.DurationInput
}

/** A command running on the host, its input and output streamed (`SshConnection.start`). */
export interface RemoteProcess {
  /** Its stdin: the end of the stream fed into it ends the input. */
  readonly stdin: Sink.Sink<void, Uint8Array, never, PlatformError>
  readonly stdout: Stream.Stream<Uint8Array, HostUnreachable>
  /** Once it has exited: its exit code (255: ssh itself failed) and the end of its stderr. */
  readonly exit: Effect.Effect<{ readonly exitCode: number; readonly stderr: string }>
}

export type ConnectionState =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "Up"; readonly pid: number }
  | { readonly _tag: "Down"; readonly reason: string }

export interface SshConnection {
  readonly host: HostConfig
  readonly controlPath: string
  /** `ssh` arguments (before the remote command) that go through the master connection. */
  readonly clientArgs: ReadonlyArray<string>
  readonly state: SubscriptionRef.SubscriptionRef<ConnectionState>
  /** Wait until the master is up, opening it on first use. */
  readonly ready: (reconnectTimeout?: Duration.DurationInput) => Effect.Effect<void, HostUnreachable>
  /** Run the POSIX `sh` script `script` on the host with positional parameters `args`. */
  readonly run: (
    script: string,
    args?: ReadonlyArray<string>,
    options?: RunOptions
  ) => Effect.Effect<RemoteResult, HostUnreachable>
  /**
   * Start the script with its stdin and stdout as streams (for what must not
   * be held in memory). It holds one of the connection's channels, and is
   * killed if still running, until the scope closes.
   */
  readonly start: (
    script: string,
    args?: ReadonlyArray<string>,
    options?: { readonly reconnectTimeout?: Duration.DurationInput }
  ) => Effect.Effect<RemoteProcess, HostUnreachable, Scope.Scope>
}

/** Quote for a POSIX shell (the remote login shell parses ssh's command line). */
export const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`

/** The remote command line that runs `script` with `sh` and the given positional parameters. */
export const remoteCommand = (script: string, args: ReadonlyArray<string> = []): string =>
  ["sh", "-c", shellQuote(script), "sh", ...args.map(shellQuote)].join(" ")

/** The options every ssh invocation of `host` shares: no prompts, bounded waits, dead peers detected. */
export const baseArgs = (host: HostConfig): Array<string> => [
  "-o", "BatchMode=yes",
  "-o", "ConnectTimeout=10",
  "-o", "ServerAliveInterval=5",
  "-o", "ServerAliveCountMax=3",
  ...(host.configFile === undefined ? [] : ["-F", host.configFile]),
  ...(host.port === undefined ? [] : ["-p", String(host.port)]),
  ...(host.user === undefined ? [] : ["-l", host.user]),
  ...(host.identityFile === undefined ? [] : ["-i", host.identityFile, "-o", "IdentitiesOnly=yes"]),
  ...host.options.flatMap((option) => ["-o", option])
]

/** Arguments of a command through the master at `controlPath` (a direct connection if the master is gone). */
export const clientArgs = (host: HostConfig, controlPath: string): Array<string> => [
  ...baseArgs(host),
  "-T",
  "-o", "ControlMaster=no",
  "-S", controlPath,
  host.destination
]

const concat = (chunks: Chunk.Chunk<Uint8Array>): Uint8Array => {
  const all = Chunk.toReadonlyArray(chunks)
  const out = new Uint8Array(all.reduce((size, chunk) => size + chunk.byteLength, 0))
  let offset = 0
  for (const chunk of all) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}

const lastLines = (text: string): string => text.trim().split("\n").slice(-5).join("\n")

export interface ConnectionOptions {
  readonly host: HostConfig
  readonly controlPath: string
  /** Ports of this host's loopback reachable on the same port of the host's loopback. */
  readonly forwardPorts: ReadonlyArray<number>
  /** Concurrent commands over the connection (sshd's MaxSessions is 10 by default). */
  readonly maxChannels: number
  readonly reconnectTimeout: Duration.DurationInput
}

/**
 * A connection to `options.host`; nothing is opened until the first `ready`
 * or `run`. Its master lives in `scope` (closing it kills the master).
 */
export const make = (
  options: ConnectionOptions,
  scope: Scope.Scope
): Effect.Effect<SshConnection, never, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const executor = yield* CommandExecutor.CommandExecutor
    const { controlPath, host } = options
    const state = yield* SubscriptionRef.make<ConnectionState>({ _tag: "Idle" })
    const opening = yield* Effect.makeSemaphore(1)
    const channels = yield* Effect.makeSemaphore(options.maxChannels)
    const keeping = yield* Ref.make(false)
    const unreachable = (reason: string) => new HostUnreachable({ host: host.name, reason })

    const masterArgs = [
      ...baseArgs(host),
      "-M", "-N", "-n",
      "-o", "ControlPersist=no",
      "-o", "ExitOnForwardFailure=yes",
      ...options.forwardPorts.flatMap((port) => ["-R", `127.0.0.1:${port}:127.0.0.1:${port}`]),
      "-S", controlPath,
      host.destination
    ]
    const check = runCollect(Command.make("ssh", "-S", controlPath, "-O", "check", host.destination)).pipe(
      Effect.map((result) => result.exitCode === 0),
      Effect.orElseSucceed(() => false)
    )
    // A master killed with SIGKILL leaves its socket behind; ssh would then run without one.
    const removeStaleSocket = Effect.sync(() => nodeFs.rmSync(controlPath, { force: true }))

    /**
     * One master connection, from start to exit: `onUp` once it answers,
     * then the reason it ended. Fails if it never came up.
     */
    const lifetime = (onUp: (pid: number) => Effect.Effect<void>) =>
      Effect.scoped(
        Effect.gen(function* () {
          yield* removeStaleSocket
          const proc = yield* Command.start(Command.make("ssh", ...masterArgs)).pipe(
            Effect.mapError((error) =>
              unreachable(error._tag === "SystemError" && error.reason === "NotFound" ? "ssh is not installed" : error.message)
            )
          )
          const stderr = yield* Ref.make("")
          yield* proc.stderr.pipe(
            Stream.decodeText(),
            Stream.runForEach((text) => Ref.update(stderr, (all) => (all + text).slice(-4096))),
            Effect.ignore,
            Effect.forkScoped
          )
          yield* proc.stdout.pipe(Stream.runDrain, Effect.ignore, Effect.forkScoped)
          const exited = yield* Deferred.make<number | undefined>()
          yield* exitCodeOf(proc).pipe(Effect.flatMap((code) => Deferred.succeed(exited, code)), Effect.forkScoped)
          const ended = Effect.zipWith(Deferred.await(exited), Ref.get(stderr), (code, text) =>
            lastLines(text) || `ssh exited with code ${code ?? "unknown"}`)

          const up = yield* check.pipe(
            Effect.repeat({ schedule: Schedule.spaced("25 millis"), until: (ok) => ok }),
            Effect.as(true),
            Effect.raceFirst(Effect.as(Deferred.await(exited), false)),
            Effect.timeoutTo({ duration: "20 seconds", onSuccess: (up) => up, onTimeout: () => false })
          )
          if (!up) return yield* Effect.fail(unreachable(yield* Effect.map(ended, (reason) => reason)))
          yield* onUp(proc.pid)
          return yield* ended
        })
      ).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor))

    /** Keep a master up: re-open it (same tunnels) whenever it ends, until the scope closes. */
    const keep = (opened: Deferred.Deferred<void, HostUnreachable>) =>
      Effect.gen(function* () {
        let failures = 0
        while (true) {
          let wasUp = false
          const outcome = yield* Effect.either(
            lifetime((pid) =>
              Effect.gen(function* () {
                wasUp = true
                failures = 0
                yield* SubscriptionRef.set(state, { _tag: "Up", pid })
                yield* Deferred.succeed(opened, undefined)
              })
            )
          )
          const reason = outcome._tag === "Right" ? outcome.right : outcome.left.reason
          yield* SubscriptionRef.set(state, { _tag: "Down", reason })
          if (!(yield* Deferred.isDone(opened))) {
            // The first connection failed: whoever asked for it gets the error.
            return yield* Deferred.fail(opened, unreachable(reason))
          }
          if (wasUp) yield* Effect.logWarning(`ramure: the ssh connection to ${host.name} dropped (${reason}); reconnecting`)
          yield* Effect.sleep(Duration.millis(Math.min(100 * 2 ** failures++, 2000)))
        }
      }).pipe(Effect.ensuring(Ref.set(keeping, false)))

    const awaitUp = (limit: Duration.DurationInput) =>
      state.changes.pipe(
        Stream.filter((current) => current._tag === "Up"),
        Stream.runHead,
        Effect.timeoutTo({ duration: limit, onSuccess: () => true, onTimeout: () => false }),
        Effect.flatMap((up) =>
          up ? Effect.void : Effect.flatMap(SubscriptionRef.get(state), (current) =>
            Effect.fail(unreachable(current._tag === "Down" ? current.reason : `not connected within ${Duration.format(limit)}`)))
        )
      )

    const ready = (reconnectTimeout: Duration.DurationInput = options.reconnectTimeout) =>
      Effect.gen(function* () {
        if ((yield* SubscriptionRef.get(state))._tag === "Up") return
        yield* opening.withPermits(1)(
          Effect.gen(function* () {
            if (yield* Ref.get(keeping)) return
            const opened = yield* Deferred.make<void, HostUnreachable>()
            yield* Ref.set(keeping, true)
            yield* Effect.forkIn(keep(opened), scope)
            yield* Deferred.await(opened)
          })
        )
        yield* awaitUp(reconnectTimeout)
      })

    const args = clientArgs(host, controlPath)
    const run = (script: string, scriptArgs: ReadonlyArray<string> = [], runOptions: RunOptions = {}) =>
      Effect.gen(function* () {
        yield* ready(runOptions.reconnectTimeout)
        const command = Command.make("ssh", ...args, remoteCommand(script, scriptArgs)).pipe(
          Command.stdin(runOptions.stdin === undefined ? Stream.empty : Stream.make(runOptions.stdin))
        )
        const once = Effect.scoped(
          Effect.gen(function* () {
            const proc = yield* Command.start(command)
            const [stdout, stderr, exitCode] = yield* Effect.all(
              [
                Effect.map(Stream.runCollect(proc.stdout), concat),
                proc.stderr.pipe(Stream.decodeText(), Stream.mkString),
                exitCodeOf(proc)
              ],
              { concurrency: "unbounded" }
            )
            return { exitCode: exitCode ?? 255, stdout, stderr } satisfies RemoteResult
          })
        ).pipe(
          Effect.provideService(CommandExecutor.CommandExecutor, executor),
          Effect.mapError((error) => unreachable(error.message))
        )
        const limited = runOptions.timeout === undefined
          ? once
          : Effect.timeoutTo(once, {
            duration: runOptions.timeout,
            onSuccess: (result): RemoteResult => result,
            onTimeout: (): RemoteResult => ({ exitCode: 124, stdout: new Uint8Array(), stderr: "" })
          })
        return yield* channels.withPermits(1)(limited)
      })

    const start = (script: string, scriptArgs: ReadonlyArray<string> = [], startOptions: { readonly reconnectTimeout?: Duration.DurationInput } = {}) =>
      Effect.gen(function* () {
        yield* ready(startOptions.reconnectTimeout)
        yield* Effect.acquireRelease(channels.take(1), () => channels.release(1))
        const proc = yield* Command.start(Command.make("ssh", ...args, remoteCommand(script, scriptArgs))).pipe(
          Effect.provideService(CommandExecutor.CommandExecutor, executor),
          Effect.mapError((error) => unreachable(error.message))
        )
        const stderr = yield* proc.stderr.pipe(
          Stream.decodeText(),
          Stream.runFold("", (all, text) => (all + text).slice(-4096)),
          Effect.orElseSucceed(() => ""),
          Effect.forkScoped
        )
        return {
          stdin: proc.stdin,
          stdout: Stream.mapError(proc.stdout, (error) => unreachable(error.message)),
          exit: Effect.zipWith(exitCodeOf(proc), Fiber.join(stderr), (exitCode, text) => ({ exitCode: exitCode ?? 255, stderr: text }))
        } satisfies RemoteProcess
      })

    yield* Scope.addFinalizer(scope, removeStaleSocket)
    return { host, controlPath, clientArgs: args, state, ready, run, start } satisfies SshConnection
  })
