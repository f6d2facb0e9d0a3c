/**
 * The default `LogSink`: the log tree `<home>/logs/<execution_id>/`, one
 * `_runtime.jsonl` for the run and its processes and one `<agent>.jsonl` per
 * agent (agent ids are safe file names).
 *
 * A batch is appended to each file with one `write`; a write that fails part
 * way is cut back to the file's previous end, so a line is never torn. The
 * directory keeps a small reserve file: when the disk fills up, the reserve is
 * given back so that the run can still record why it failed. Secrets are
 * redacted from every line (`RunRoutes.redactSecrets`).
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { LogWriteFailed } from "@ramure/core/Errors"
import { fileOf, LogSink, RUNTIME_FILE } from "@ramure/core/LogSink"
import { decodeLine, encodeLine, type LogEntry } from "@ramure/core/RunEvent"
import { logsDirectory, RunInfo } from "@ramure/core/RunInfo"
import { redactSecrets } from "@ramure/core/RunRoutes"

/** Bytes kept free for the record of a failure (see the module's comment). */
const reserveBytes = 64 * 1024
const RESERVE_FILE = ".reserve"

interface OpenFile {
  readonly fd: number
  /** Where the next line goes: the file's size as this sink wrote it. */
  size: number
}

/** Every entry of a log file (lines that do not decode — torn or foreign — are skipped). */
export const readFile = (file: string): Array<LogEntry> => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    return []
  }
  const entries: Array<LogEntry> = []
  for (const line of text.split("\n")) {
    if (line.length === 0) continue
    const entry = decodeLine(line)
    if (entry !== undefined) entries.push(entry)
  }
  return entries
}

/** Every entry of a run's log directory, in order. */
export const readDirectory = (directory: string): Array<LogEntry> => {
  let names: Array<string>
  try {
    names = fs.readdirSync(directory).filter((name) => name.endsWith(".jsonl"))
  } catch {
    return []
  }
  return names.flatMap((name) => readFile(path.join(directory, name))).sort((a, b) => a.n - b.n)
}

export const layer: Layer.Layer<LogSink, never, RunInfo> = Layer.scoped(
  LogSink,
  Effect.gen(function* () {
    const info = yield* RunInfo
    const directory = logsDirectory(info.home, info.executionId)
    fs.mkdirSync(path.dirname(directory), { recursive: true, mode: 0o700 })
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 })
    const reserve = path.join(directory, RESERVE_FILE)
    try {
      fs.writeFileSync(reserve, Buffer.alloc(reserveBytes), { mode: 0o600 })
    } catch {
      // No room even for the reserve: the first write will say so.
    }

    const files = new Map<string, OpenFile>()
    const open = (name: string): OpenFile => {
      let file = files.get(name)
      if (file === undefined) {
        const fd = fs.openSync(path.join(directory, name), "a", 0o600)
        file = { fd, size: fs.fstatSync(fd).size }
        files.set(name, file)
      }
      return file
    }

    /** Append `text` whole, or leave the file as it was and throw. */
    const append = (file: OpenFile, text: string) => {
      const bytes = Buffer.from(text)
      let done = 0
      try {
        while (done < bytes.length) done += fs.writeSync(file.fd, bytes, done, bytes.length - done, file.size + done)
        file.size += bytes.length
      } catch (error) {
        try {
          fs.ftruncateSync(file.fd, file.size)
        } catch {
          // The file keeps a partial last line, which readers skip.
        }
        throw error
      }
    }

    const writeBatch = (batch: ReadonlyArray<LogEntry>): LogWriteFailed | undefined => {
      const byFile = new Map<string, Array<string>>()
      for (const entry of batch) {
        const name = fileOf(entry)
        // Agents can read the log files: a secret one of them printed must not reach the others.
        const line = redactSecrets(encodeLine(entry))
        const lines = byFile.get(name)
        if (lines === undefined) byFile.set(name, [line])
        else lines.push(line)
      }
      let failure: LogWriteFailed | undefined
      for (const [name, lines] of byFile) {
        try {
          append(open(name), lines.join("\n") + "\n")
        } catch (error) {
          failure ??= new LogWriteFailed({ file: path.join(directory, name), reason: error instanceof Error ? error.message : String(error) })
        }
      }
      return failure
    }

    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const file of files.values()) fs.closeSync(file.fd)
        files.clear()
        fs.rmSync(reserve, { force: true })
      })
    )

    return {
      write: (batch) =>
        Effect.suspend(() => {
          if (closed || batch.length === 0) return Effect.void
          const failure = writeBatch(batch)
          if (failure === undefined) return Effect.void
          // Give the reserve back, so that what follows (the reason the run fails) can be written.
          fs.rmSync(reserve, { force: true })
          return Effect.fail(failure)
        }),
      read: ({ agent }) =>
        Effect.sync(() =>
          agent === undefined ? readDirectory(directory) : readFile(path.join(directory, fileOf({ agent })))
        )
    }
  })
)

export { RUNTIME_FILE }
