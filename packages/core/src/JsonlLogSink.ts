/**
 * The default `LogSink`: the log tree `<home>/logs/<execution_id>/`, one
 * `_runtime.jsonl` for the run and its processes and one `<agent>.jsonl` per
 * agent. Lines written during one turn of the event loop are appended
 * together right after it (`setImmediate`): one `write` per file per turn,
 * and no fiber wake-up per line. Closing the layer, or the process exiting,
 * writes every pending line, so nothing is lost on exit, failure or interrupt.
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { LogSink, fileOf, type LogEntry } from "./LogSink.js"
import { RunInfo, logsDirectory } from "./RunInfo.js"

/** One JSON line; data that cannot be serialized (cycles, BigInt) is replaced by a note, never dropped with the line. */
const serialize = (entry: LogEntry): string => {
  try {
    return JSON.stringify(entry)
  } catch (error) {
    return JSON.stringify({ ...entry, data: { unserializable: String(error) } })
  }
}

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

    /** Lines not written yet, by file, in order. */
    let pending = new Map<string, Array<string>>()
    let scheduled: NodeJS.Immediate | undefined
    let closed = false

    /** Append every pending line; a file that cannot be written keeps its lines for the next flush. */
    const flush = () => {
      scheduled = undefined
      const batch = pending
      pending = new Map()
      for (const [file, lines] of batch) {
        try {
          fs.writeSync(fdOf(file), lines.join("\n") + "\n")
        } catch {
          const later = pending.get(file)
          pending.set(file, later === undefined ? lines : [...lines, ...later])
        }
      }
    }

    // A process that exits without closing the layer (`process.exit` in a signal handler) still writes what is pending.
    const onExit = () => flush()
    process.on("exit", onExit)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        process.removeListener("exit", onExit)
        if (scheduled !== undefined) clearImmediate(scheduled)
        flush()
        for (const fd of files.values()) fs.closeSync(fd)
        files.clear()
      })
    )

    return {
      // Lines written after the layer closed are dropped, as before it closed nothing can write them.
      write: (entry) =>
        Effect.sync(() => {
          if (closed) return
          const file = fileOf(entry)
          const lines = pending.get(file)
          const line = serialize(entry)
          if (lines === undefined) pending.set(file, [line])
          else lines.push(line)
          if (scheduled === undefined) scheduled = setImmediate(flush)
        })
    }
  })
)
