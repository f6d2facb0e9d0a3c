/**
 * Machines that are working directories on this host; `spawn` starts a
 * headless child process in its own process group, marked with its owner
 * (`RAMURE_OWNER` in its environment) so that cleanup can tell whose it is.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import { Context, Deferred, Duration, Effect, Layer, Stream } from "effect"
import { exitCodeOf, killGroup, makeLocalBase, OutputTail, type LocalBase } from "./LocalMachine.js"
import type { Machine, MachineOptions, SpawnExit, SpawnSpec, Spawned } from "@ramure/core/Machine"
import { MachineProvider } from "@ramure/core/Machine"
import { RunInfo } from "@ramure/core/RunInfo"

const spawn = (base: LocalBase) =>
  Effect.fn("LocalMachine.spawn", { attributes: { machine: base.id } })(function* (spec: SpawnSpec) {
    const cwd = yield* base.spawnCwd(spec.cwd)
    const tail = new OutputTail()
    const exited = yield* Deferred.make<SpawnExit>()
    const proc = yield* Command.make(spec.command, ...spec.args).pipe(
      Command.workingDirectory(cwd),
      Command.env({ ...spec.env, ...base.ownerEnv }),
      // "pipe": an open pipe nobody writes to (node closes it when the child exits).
      Command.stdin(spec.keepStdinOpen ? "pipe" : Stream.empty),
      Command.start,
      Effect.mapError((error) => base.fail("spawn", `${spec.name}: ${error.message}`))
    )
    const drain = (source: string, stream: Stream.Stream<Uint8Array, unknown>) =>
      stream.pipe(
        Stream.decodeText(),
        Stream.runForEach((text) => Effect.sync(() => tail.push(source, text))),
        Effect.ignore,
        Effect.forkScoped
      )
    yield* drain("stdout", proc.stdout)
    yield* drain("stderr", proc.stderr)
    yield* exitCodeOf(proc).pipe(
      Effect.flatMap((exitCode) => Deferred.succeed(exited, { exitCode })),
      Effect.forkScoped
    )
    // Registered last, so it runs first when the scope closes: stop the whole group.
    yield* Effect.addFinalizer(() =>
      killGroup(proc.pid).pipe(
        Effect.zipRight(exitCodeOf(proc).pipe(Effect.interruptible, Effect.timeoutTo({
          duration: Duration.seconds(1),
          onSuccess: (exitCode) => ({ exitCode }),
          onTimeout: () => ({ exitCode: undefined })
        }))),
        Effect.flatMap((exit) => Deferred.succeed(exited, exit))
      )
    )
    return {
      name: spec.name,
      pid: proc.pid,
      session: undefined,
      exited: Deferred.await(exited),
      outputTail: Effect.sync(() => tail.render())
    } satisfies Spawned
  })

const make = Effect.fn("LocalMachineProvider.make")(function* (options: MachineOptions) {
  const base = yield* makeLocalBase("local", options)
  const executor = yield* CommandExecutor.CommandExecutor
  const spawnIn = spawn(base)
  return {
    id: base.id,
    kind: "local",
    cwd: base.cwd,
    exec: base.exec,
    readFile: base.readFile,
    writeFile: base.writeFile,
    openFile: base.openFile,
    writeFileFrom: base.writeFileFrom,
    spawn: (spec) => spawnIn(spec).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor)),
    describe: { id: base.id, kind: "local", cwd: base.cwd }
  } satisfies Machine
})

/** A `MachineProvider` of local machines (needs `NodeContext.layer` and a `RunInfo`). */
export const layer: Layer.Layer<
  MachineProvider,
  never,
  RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem
> = Layer.effect(
  MachineProvider,
  Effect.gen(function* () {
    // Only these services: the caller's Scope must stay the caller's.
    const context = Context.pick(RunInfo, CommandExecutor.CommandExecutor, FileSystem.FileSystem)(
      yield* Effect.context<RunInfo | CommandExecutor.CommandExecutor | FileSystem.FileSystem>()
    )
    return MachineProvider.of({ kind: "local", make: (options) => make(options).pipe(Effect.provide(context)) })
  })
)
