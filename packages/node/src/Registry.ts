/**
 * The live-run registry: `<home>/runtimes/<execution_id>.json` (mode 0600 in
 * a 0700 directory) tells the CLI how to reach a running run. It is written
 * when the root run starts and removed when it ends; entries whose process
 * (pid and start time) is gone are stale and removed by the next run or
 * `ramure gc`. An entry that cannot be read is reported, never dropped.
 *
 * A run that can be resumed (`ramure resume`) says how long its agents wait
 * for it when it is gone (`resumable_for_ms`), and its orchestrator touches
 * its entry every `heartbeat` while it lives: when it dies without ending,
 * its entry stays, and what it left — tmux sessions, worktrees — is its
 * agents' until that window has passed (`waitingUntil`), so no cleanup takes
 * what a resume would re-adopt.
 */
import { Duration, Effect, Either, ParseResult, Schedule, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { processAlive, startTimeOf } from "./Owner.js"
import { runtimesDirectory } from "@ramure/core/RunInfo"

export const RegistryEntry = Schema.Struct({
  execution_id: Schema.String,
  pid: Schema.Number,
  server_url: Schema.String,
  token: Schema.String,
  program: Schema.String,
  started_at: Schema.String,
  /** The process's start time (`/proc/<pid>/stat` field 22), so a recycled pid is not taken for the run. */
  pid_started: Schema.optional(Schema.String),
  /** How long the run's agents wait for it after its orchestrator's last heartbeat; absent when it cannot be resumed. */
  resumable_for_ms: Schema.optional(Schema.Number)
})
export type RegistryEntry = typeof RegistryEntry.Type

export class RegistryError extends Schema.TaggedError<RegistryError>()("RegistryError", {
  path: Schema.String,
  message: Schema.String
}) {}

export const entryPath = (home: string, executionId: string): string =>
  path.join(runtimesDirectory(home), `${executionId}.json`)

/** Whether a process with this pid exists (EPERM means it exists but is not ours). */
export const isAlive = (pid: number): boolean => processAlive(pid, undefined)

/** Whether the entry's run is still running: its pid, started when the entry says. */
export const entryAlive = (entry: RegistryEntry): boolean => processAlive(entry.pid, entry.pid_started)

/** The start time to record for this process. */
export const currentStart = (): string | undefined => startTimeOf(process.pid)

const ensureDirectory = (home: string) =>
  Effect.try({
    try: () => {
      fs.mkdirSync(home, { recursive: true, mode: 0o700 })
      const directory = runtimesDirectory(home)
      fs.mkdirSync(directory, { recursive: true, mode: 0o700 })
      fs.chmodSync(directory, 0o700)
      return directory
    },
    catch: (error) => new RegistryError({ path: runtimesDirectory(home), message: String(error) })
  })

const decodeEntry = Schema.decodeUnknownEither(Schema.parseJson(RegistryEntry))

export interface ListedEntry {
  readonly file: string
  readonly entry: RegistryEntry
  readonly alive: boolean
  /** Its run is gone, and its agents wait to be re-adopted until then (epoch ms). */
  readonly waitingUntil: number | undefined
}

/** How often a live run touches its entry. */
export const heartbeat = Duration.seconds(5)

/** Until when the agents of a gone run wait for it (its entry touched at `touchedMs`), if they do still. */
const windowOf = (entry: RegistryEntry, touchedMs: number, now = Date.now()): number | undefined => {
  if (entry.resumable_for_ms === undefined) return undefined
  const until = touchedMs + Duration.toMillis(heartbeat) + entry.resumable_for_ms
  return until > now ? until : undefined
}

/**
 * Until when the agents of the run `executionId` of `home` wait to be
 * re-adopted: its orchestrator is gone, its entry says it can be resumed,
 * and the window since its last heartbeat is open. Undefined otherwise (a
 * live run, a run that ended, one that cannot be resumed, or a window passed).
 */
export const waitingUntil = (home: string, executionId: string): number | undefined => {
  const file = entryPath(home, executionId)
  try {
    const decoded = decodeEntry(fs.readFileSync(file, "utf8"))
    if (Either.isLeft(decoded) || entryAlive(decoded.right)) return undefined
    return windowOf(decoded.right, fs.statSync(file).mtimeMs)
  } catch {
    return undefined
  }
}

/**
 * Whether the run `executionId` of `home` has a live orchestrator now: a run
 * resumed after its first orchestrator died owns what that one started (its
 * pis still carry the first one's marker).
 */
export const runAlive = (home: string, executionId: string): boolean => {
  try {
    const decoded = decodeEntry(fs.readFileSync(entryPath(home, executionId), "utf8"))
    return Either.isRight(decoded) && entryAlive(decoded.right)
  } catch {
    return false
  }
}

/**
 * Whether what the run `executionId` of `home` started must be left alone by
 * other runs' cleanup, though its owner marker names a gone orchestrator: the
 * run was resumed (`runAlive`), or its agents wait for a resume (`waitingUntil`).
 * The entry is read once.
 */
export const keeps = (home: string, executionId: string): boolean => {
  const file = entryPath(home, executionId)
  try {
    const decoded = decodeEntry(fs.readFileSync(file, "utf8"))
    if (Either.isLeft(decoded)) return false
    return entryAlive(decoded.right) || windowOf(decoded.right, fs.statSync(file).mtimeMs) !== undefined
  } catch {
    return false
  }
}

/** An entry that cannot be read or decoded: reported, and left where it is. */
export interface UnreadableEntry {
  readonly file: string
  readonly reason: string
}

export interface Scan {
  readonly entries: ReadonlyArray<ListedEntry>
  readonly unreadable: ReadonlyArray<UnreadableEntry>
}

/** Every entry, with whether its run is alive, and every entry that cannot be read (with why). */
export const scan = (home: string): Effect.Effect<Scan> =>
  Effect.sync(() => {
    const directory = runtimesDirectory(home)
    let names: Array<string>
    try {
      names = fs.readdirSync(directory).filter((name) => name.endsWith(".json"))
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      return { entries: [], unreadable: code === "ENOENT" ? [] : [{ file: directory, reason: String(error) }] }
    }
    const entries: Array<ListedEntry> = []
    const unreadable: Array<UnreadableEntry> = []
    for (const name of names) {
      const file = path.join(directory, name)
      let text: string
      try {
        text = fs.readFileSync(file, "utf8")
      } catch (error) {
        // Removed by its run meanwhile: nothing to report.
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") unreadable.push({ file, reason: (error as Error).message })
        continue
      }
      const decoded = decodeEntry(text)
      if (Either.isLeft(decoded)) {
        unreadable.push({ file, reason: ParseResult.TreeFormatter.formatErrorSync(decoded.left).split("\n").slice(0, 3).join(" ") })
        continue
      }
      const alive = entryAlive(decoded.right)
      let touched = 0
      try {
        touched = fs.statSync(file).mtimeMs
      } catch {
        // removed meanwhile: its window is closed
      }
      entries.push({ file, entry: decoded.right, alive, waitingUntil: alive ? undefined : windowOf(decoded.right, touched) })
    }
    return { entries, unreadable }
  })

/** Every readable registry entry, with whether its process is still alive. */
export const list = (home: string): Effect.Effect<ReadonlyArray<ListedEntry>> => Effect.map(scan(home), (found) => found.entries)

/**
 * Remove entries whose process is gone (unreadable ones stay, and so do those
 * of runs whose agents still wait to be re-adopted); returns what was removed.
 */
export const removeStale = (home: string, options: { readonly keep?: string } = {}): Effect.Effect<ReadonlyArray<RegistryEntry>> =>
  Effect.map(list(home), (listed) =>
    listed.flatMap(({ alive, entry, file, waitingUntil }) => {
      if (alive || waitingUntil !== undefined || entry.execution_id === options.keep) return []
      try {
        fs.rmSync(file, { force: true })
      } catch {
        return []
      }
      return [entry]
    })
  )

/**
 * Write the entry for this run and touch it every `heartbeat` (the window of
 * a run that can be resumed is counted from the last touch); the scope's end
 * removes it.
 */
export const register = (home: string, entry: RegistryEntry) =>
  Effect.gen(function* () {
    const file = yield* Effect.acquireRelease(write(home, entry), (file) => Effect.sync(() => fs.rmSync(file, { force: true })))
    yield* Effect.sync(() => {
      const now = new Date()
      fs.utimesSync(file, now, now)
    }).pipe(
      // A failed touch only shortens the window that a resume has.
      Effect.ignore,
      Effect.repeat(Schedule.spaced(heartbeat)),
      Effect.forkScoped
    )
    return file
  })

/** Write an entry atomically (0600); its path. */
const write = (home: string, entry: RegistryEntry) =>
  Effect.gen(function* () {
    yield* ensureDirectory(home)
    const file = entryPath(home, entry.execution_id)
    yield* Effect.try({
      try: () => {
        const temporary = `${file}.${process.pid}.tmp`
        fs.writeFileSync(temporary, JSON.stringify(entry, null, 2) + "\n", { mode: 0o600 })
        fs.chmodSync(temporary, 0o600)
        fs.renameSync(temporary, file)
      },
      catch: (error) => new RegistryError({ path: file, message: String(error) })
    })
    return file
  })
