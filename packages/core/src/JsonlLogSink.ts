/**
 * The default `LogSink`: the log tree `<home>/logs/<execution_id>/`, one
 * `_runtime.jsonl` for the run and its processes and one `<agent>.jsonl` per
 * agent. Lines are batched by a writer fiber; closing the layer writes every
 * pending line before it returns, so nothing is lost on exit, failure or
 * interrupt.
 */
import { Effect, Fiber, Layer, Queue } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { LogSink, fileOf, type LogEntry } from "./LogSink.js"
import { RunInfo, logsDirectory } from "./RunInfo.js"

export const layer: Layer.Layer<LogSink, never, RunInfo> = Layer.scoped(
  LogSink,
  Effect.gen(function* () {
    const info = yield* RunInfo
    const directory = logsDirectory(info.home, info.executionId)
    fs.mkdirSync(path.dirname(directory), { recursive: true, mode: 0o700 })
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 })

    const files = new Map<string, number>()
    const fdOf = (file: string): number => {
      let fd = files.get(file)
      if (fd === undefined) {
        fd = fs.openSync(path.join(directory, file), "a", 0o600)
        files.set(file, fd)
      }
      return fd
    }
    const writeBatch = (entries: Iterable<LogEntry>) =>
      Effect.sync(() => {
        const chunks = new Map<string, Array<string>>()
        for (const entry of entries) {
          const file = fileOf(entry)
          let lines = chunks.get(file)
          if (lines === undefined) chunks.set(file, (lines = []))
          lines.push(JSON.stringify(entry))
        }
        for (const [file, lines] of chunks) fs.writeSync(fdOf(file), lines.join("\n") + "\n")
      })

    // `null` asks the writer to stop after everything queued before it.
    const queue = yield* Queue.unbounded<LogEntry | null>()
    const writeLoop: Effect.Effect<void> = Queue.takeBetween(queue, 1, Number.MAX_SAFE_INTEGER).pipe(
      Effect.flatMap((batch) => {
        const entries = [...batch]
        const stop = entries.includes(null)
        return Effect.zipRight(
          writeBatch(entries.filter((entry): entry is LogEntry => entry !== null)),
          stop ? Effect.void : writeLoop
        )
      })
    )
    const writer = yield* Effect.forkDaemon(writeLoop)
    yield* Effect.addFinalizer(() =>
      Queue.offer(queue, null).pipe(
        Effect.zipRight(Fiber.join(writer)),
        Effect.zipRight(
          Effect.sync(() => {
            for (const fd of files.values()) fs.closeSync(fd)
            files.clear()
          })
        )
      )
    )

    return {
      write: (entry) => Queue.offer(queue, entry)
    }
  })
)
