/**
 * Pruning finished runs (`ramure gc --older-than 7d`): a run keeps its log
 * directory (`<home>/logs/<id>`) and its agents' working directories
 * (`<home>/work/<id>`) after it ends; those of runs that ended long enough
 * ago are removed. A live run is never touched, whatever its age.
 */
import * as Registry from "@ramure/node/Registry"
import { RUNTIME_FILE } from "@ramure/core/LogSink"
import * as RunInfo from "@ramure/core/RunInfo"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { UsageError } from "./Errors.js"
import { readLogFile } from "./Runs.js"

const units: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000
}

/** `7d`, `12h`, `30m`, `2w`, `90s` (or `7 days`, `12 hours`, …) in milliseconds. */
export const parseAge = (text: string) => {
  const match = /^(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?|w|weeks?)$/.exec(text.trim())
  if (match === null) {
    return Effect.fail(new UsageError({ reason: `--older-than takes an age such as 7d, 12h, 30m or 2w, not "${text}"` }))
  }
  return Effect.succeed(Number(match[1]) * units[match[2]![0]!]!)
}

export interface Pruned {
  readonly id: string
  readonly program: string | undefined
  /** When it ended (its `RunEnded`), or when its files last changed (a run that never logged its end). */
  readonly endedAt: number
  readonly bytes: number
  /** What could not be removed, and why. */
  readonly failures: ReadonlyArray<string>
}

const directories = (parent: string): ReadonlyArray<string> => {
  try {
    return fs.readdirSync(parent, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name)
  } catch {
    return []
  }
}

/** Bytes under `target`, not following links. */
const sizeOf = (target: string): number => {
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(target)
  } catch {
    return 0
  }
  if (!stat.isDirectory()) return stat.size
  let names: Array<string> = []
  try {
    names = fs.readdirSync(target)
  } catch {
    return stat.size
  }
  return names.reduce((sum, name) => sum + sizeOf(path.join(target, name)), stat.size)
}

/** The latest time anything directly in `directory` (or the directory itself) changed. */
const lastChange = (directory: string): number => {
  let latest = 0
  try {
    latest = fs.statSync(directory).mtimeMs
    for (const name of fs.readdirSync(directory)) {
      latest = Math.max(latest, fs.lstatSync(path.join(directory, name)).mtimeMs)
    }
  } catch {
    // gone meanwhile, or unreadable: what was seen counts
  }
  return latest
}

/** Remove the logs and working directories of every run not live that ended more than `age` ms before `now`. */
export const prune = (home: string, age: number, now = Date.now()) =>
  Effect.gen(function* () {
    const { entries, unreadable } = yield* Registry.scan(home)
    // A run whose registry entry cannot be read may be live: it is kept too.
    const live = new Set([
      ...entries.filter((item) => item.alive).map((item) => item.entry.execution_id),
      ...unreadable.map((item) => path.basename(item.file, ".json"))
    ])
    const logs = RunInfo.logsDirectory(home)
    const work = path.join(home, "work")
    const ids = [...new Set([...directories(logs), ...directories(work)])].filter((id) => !live.has(id))
    const pruned: Array<Pruned> = []
    for (const id of ids) {
      const logDirectory = RunInfo.logsDirectory(home, id)
      const workDirectory = RunInfo.workDirectory(home, id)
      const runtime = readLogFile(path.join(logDirectory, RUNTIME_FILE))
      const ended = [...runtime].reverse().find((entry) => entry.event._tag === "RunEnded")
      const startedEvent = runtime.find((entry) => entry.event._tag === "RunStarted")?.event
      const endedAt = ended !== undefined ? Date.parse(ended.ts) : Math.max(lastChange(logDirectory), lastChange(workDirectory))
      if (now - endedAt <= age) continue
      const bytes = sizeOf(logDirectory) + sizeOf(workDirectory)
      const failures: Array<string> = []
      for (const directory of [workDirectory, logDirectory]) {
        try {
          fs.rmSync(directory, { recursive: true, force: true })
        } catch (error) {
          failures.push(`${directory}: ${error instanceof Error ? error.message : String(error)}`)
        }
      }
      pruned.push({
        id,
        program: startedEvent?._tag === "RunStarted" ? startedEvent.program : undefined,
        endedAt,
        bytes,
        failures
      })
    }
    return pruned
  })

/** `1.2 MB`, `340 kB`, `12 B`. */
export const size = (bytes: number): string =>
  bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : bytes >= 1e3 ? `${Math.round(bytes / 1e3)} kB` : `${bytes} B`
