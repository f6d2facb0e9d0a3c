/**
 * Benchmarks that need a fresh process (clean memory figures, agents in
 * another process) run a TypeScript entry with `node --import tsx` and talk to
 * it over the IPC channel.
 */
import { Effect, Queue, type Scope } from "effect"
import { fork, type ChildProcess } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root (the bench lives in `<root>/bench`). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

export interface Child<Out> {
  readonly process: ChildProcess
  readonly send: (message: unknown) => Effect.Effect<void>
  /** The next message from the child; fails if it exits first. */
  readonly receive: Effect.Effect<Out, Error>
  /** CPU time (user + system, µs) the child has used so far; the child must listen with `parentMessages`. */
  readonly cpu: Effect.Effect<number, Error>
  /** The child's memory after a full GC (it runs with `--expose-gc`); the child must listen with `parentMessages`. */
  readonly memory: Effect.Effect<Memory, Error>
}

export interface Memory {
  readonly rss: number
  readonly heapUsed: number
}

interface CpuProbe {
  readonly type: "cpu"
  readonly micros?: number
}
const isCpuProbe = (message: unknown): message is CpuProbe =>
  typeof message === "object" && message !== null && (message as { type?: unknown }).type === "cpu"

interface MemoryProbe {
  readonly type: "memory"
  readonly memory?: Memory
}
const isMemoryProbe = (message: unknown): message is MemoryProbe =>
  typeof message === "object" && message !== null && (message as { type?: unknown }).type === "memory"

/** Fork `entry` (relative to `bench/`) with the IPC channel; stopped when the scope closes if still running. */
export const forkChild = <Out>(entry: string, args: ReadonlyArray<string>, options: { readonly execArgv?: ReadonlyArray<string> } = {}) =>
  Effect.gen(function* () {
    const inbox = yield* Queue.unbounded<Out | Error>()
    const cpuReplies = yield* Queue.unbounded<number | Error>()
    const memoryReplies = yield* Queue.unbounded<Memory | Error>()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = fork(path.join(repoRoot, "bench", entry), [...args], {
          cwd: repoRoot,
          execArgv: [...(options.execArgv ?? []), "--import", "tsx"],
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
        child.on("message", (message) => {
          if (isCpuProbe(message)) Queue.unsafeOffer(cpuReplies, message.micros ?? 0)
          else if (isMemoryProbe(message)) Queue.unsafeOffer(memoryReplies, message.memory ?? { rss: 0, heapUsed: 0 })
          else Queue.unsafeOffer(inbox, message as Out)
        })
        child.on("exit", (code, signal) => {
          const exited = () => {
            const error = new Error(`${entry} exited (${signal ?? code})`)
            Queue.unsafeOffer(inbox, error)
            Queue.unsafeOffer(cpuReplies, error)
            Queue.unsafeOffer(memoryReplies, error)
          }
          // The exit may be seen before the child's last messages are read: they come before the channel closes.
          if (child.connected) child.once("disconnect", exited)
          else exited()
        })
        child.on("error", (error) => Queue.unsafeOffer(inbox, error))
        return child
      }),
      // Closing the channel asks the child to finish (it may still be removing a big RAMURE_HOME);
      // SIGKILL if it has not after 30 s.
      (child) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
          child.once("exit", () => {
            clearTimeout(timer)
            resume(Effect.void)
          })
          if (child.connected) child.disconnect()
          else child.kill("SIGKILL")
        })
    )
    const result: Child<Out> = {
      process: child,
      send: (message) => Effect.sync(() => void child.send(message as never)),
      receive: Effect.flatMap(Queue.take(inbox), (message) =>
        message instanceof Error ? Effect.fail(message) : Effect.succeed(message)),
      cpu: Effect.zipRight(
        Effect.sync(() => void child.send({ type: "cpu" } satisfies CpuProbe)),
        Effect.flatMap(Queue.take(cpuReplies), (reply) => (reply instanceof Error ? Effect.fail(reply) : Effect.succeed(reply)))
      ),
      memory: Effect.zipRight(
        Effect.sync(() => void child.send({ type: "memory" } satisfies MemoryProbe)),
        Effect.flatMap(Queue.take(memoryReplies), (reply) => (reply instanceof Error ? Effect.fail(reply) : Effect.succeed(reply)))
      )
    }
    return result
  })

/**
 * In a child: the parent's messages, in order (CPU and memory probes are
 * answered, not queued); `onDisconnect` is queued when the parent goes away.
 */
export const parentMessages = <In>(onDisconnect: In) =>
  Effect.gen(function* () {
    const inbox = yield* Queue.unbounded<In>()
    process.once("disconnect", () => Queue.unsafeOffer(inbox, onDisconnect))
    process.on("message", (message) => {
      if (isCpuProbe(message)) {
        const usage = process.cpuUsage()
        process.send!({ type: "cpu", micros: usage.user + usage.system } satisfies CpuProbe)
      } else if (isMemoryProbe(message)) {
        const gc = (globalThis as { gc?: () => void }).gc
        for (let i = 0; i < 3; i++) gc?.()
        const { heapUsed, rss } = process.memoryUsage()
        process.send!({ type: "memory", memory: { rss, heapUsed } } satisfies MemoryProbe)
      } else Queue.unsafeOffer(inbox, message as In)
    })
    return inbox
  })

/** In a child: send a message to the parent (nothing if it has gone away). */
export const toParent = (message: unknown) =>
  Effect.async<void>((resume) => {
    if (!process.connected) return resume(Effect.void)
    process.send!(message, undefined, undefined, () => resume(Effect.void))
  })

/** In a child: run `program`, then let the parent go (exit 1, with the error, if it failed). */
export const runChild = <A, E>(program: Effect.Effect<A, E, Scope.Scope>): void => {
  Effect.runPromise(Effect.scoped(program)).then(
    () => {
      if (process.connected) process.disconnect()
    },
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
