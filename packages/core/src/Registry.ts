/**
 * The live-run registry: `<home>/runtimes/<execution_id>.json` (mode 0600 in
 * a 0700 directory) tells the CLI how to reach a running run. It is written
 * when the root run starts and removed when it ends; entries whose process is
 * gone are stale and removed by the next run or the CLI.
 */
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { runtimesDirectory } from "./RunInfo.js"

export const RegistryEntry = Schema.Struct({
  execution_id: Schema.String,
  pid: Schema.Number,
  server_url: Schema.String,
  token: Schema.String,
  program: Schema.String,
  started_at: Schema.String
})
export type RegistryEntry = typeof RegistryEntry.Type

export class RegistryError extends Schema.TaggedError<RegistryError>()("RegistryError", {
  path: Schema.String,
  message: Schema.String
}) {}

export const entryPath = (home: string, executionId: string): string =>
  path.join(runtimesDirectory(home), `${executionId}.json`)

/** Whether a process with this pid exists (EPERM means it exists but is not ours). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

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
}

/** Every readable registry entry, with whether its process is still alive. */
export const list = (home: string): Effect.Effect<ReadonlyArray<ListedEntry>> =>
  Effect.sync(() => {
    const directory = runtimesDirectory(home)
    let names: Array<string>
    try {
      names = fs.readdirSync(directory).filter((name) => name.endsWith(".json"))
    } catch {
      return []
    }
    const listed: Array<ListedEntry> = []
    for (const name of names) {
      const file = path.join(directory, name)
      let text: string
      try {
        text = fs.readFileSync(file, "utf8")
      } catch {
        continue
      }
      const decoded = decodeEntry(text)
      if (Either.isLeft(decoded)) continue
      listed.push({ file, entry: decoded.right, alive: isAlive(decoded.right.pid) })
    }
    return listed
  })

/** Remove entries whose process is gone; returns what was removed. */
export const removeStale = (home: string): Effect.Effect<ReadonlyArray<RegistryEntry>> =>
  Effect.map(list(home), (listed) =>
    listed.flatMap(({ alive, entry, file }) => {
      if (alive) return []
      try {
        fs.rmSync(file, { force: true })
      } catch {
        return []
      }
      return [entry]
    })
  )

/** Write the entry for this run; the scope's end removes it. */
export const register = (home: string, entry: RegistryEntry) =>
  Effect.acquireRelease(
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
    }),
    (file) => Effect.sync(() => fs.rmSync(file, { force: true }))
  )
