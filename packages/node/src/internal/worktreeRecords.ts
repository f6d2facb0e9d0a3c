/**
 * What a run killed with SIGKILL leaves of its worktrees: each worktree is
 * recorded in `<home>/worktrees/<execution id>-<machine>.json` (0600) from
 * before its branch exists until it is saved and removed, so that a later run
 * (or `ramure gc`) can save and remove the worktrees of a run that died.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { isAlive, keeps } from "../Registry.js"

export const WorktreeRecord = Schema.Struct({
  executionId: Schema.String,
  /** The run's process. */
  pid: Schema.Number,
  machine: Schema.String,
  /** The repository's top-level directory, and its git directory. */
  repo: Schema.String,
  gitDir: Schema.String,
  bare: Schema.Boolean,
  objectFormat: Schema.String,
  path: Schema.String,
  branch: Schema.String,
  base: Schema.String,
  identity: Schema.Struct({ name: Schema.String, email: Schema.String })
})
export type WorktreeRecord = typeof WorktreeRecord.Type

export const directory = (home: string): string => path.join(home, "worktrees")

const fileOf = (home: string, record: Pick<WorktreeRecord, "executionId" | "machine">): string =>
  path.join(directory(home), `${record.executionId}-${record.machine}.json`)

/** A private scratch directory (temporary index and objects), removed when the scope closes. */
export const scratch = (home: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      nodeFs.mkdirSync(directory(home), { recursive: true, mode: 0o700 })
      const dir = nodeFs.mkdtempSync(path.join(directory(home), "scratch-"))
      nodeFs.mkdirSync(path.join(dir, "objects"))
      return dir
    }),
    (dir) => Effect.sync(() => nodeFs.rmSync(dir, { recursive: true, force: true }))
  )

export const write = (home: string, record: WorktreeRecord): Effect.Effect<void> =>
  Effect.sync(() => {
    const file = fileOf(home, record)
    nodeFs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    nodeFs.writeFileSync(`${file}.tmp`, JSON.stringify(record), { mode: 0o600 })
    nodeFs.renameSync(`${file}.tmp`, file)
  })

/** The record of the machine `machine` of the run `executionId`, if there is one. */
export const read = (home: string, executionId: string, machine: string): Effect.Effect<WorktreeRecord | undefined> =>
  Effect.sync(() => {
    try {
      const decoded = Schema.decodeUnknownOption(Schema.parseJson(WorktreeRecord))(nodeFs.readFileSync(fileOf(home, { executionId, machine }), "utf8"))
      return decoded._tag === "Some" ? decoded.value : undefined
    } catch {
      return undefined
    }
  })

export const remove = (home: string, record: WorktreeRecord): Effect.Effect<void> =>
  Effect.sync(() => nodeFs.rmSync(fileOf(home, record), { force: true }))

const claimSuffix = ".claimed-"

/**
 * Take the records of runs whose process is gone (and records another
 * collector took but did not finish because it died too): each is renamed to
 * `…claimed-<this pid>`, so two collectors never handle the same worktree.
 */
export const claimOrphans = (home: string): Effect.Effect<ReadonlyArray<{ readonly file: string; readonly record: WorktreeRecord }>> =>
  Effect.sync(() => {
    const dir = directory(home)
    let names: Array<string>
    try {
      names = nodeFs.readdirSync(dir)
    } catch {
      return []
    }
    const decode = Schema.decodeUnknownOption(Schema.parseJson(WorktreeRecord))
    return names.flatMap((name) => {
      const claimedBy = name.includes(claimSuffix) ? Number(name.slice(name.lastIndexOf(claimSuffix) + claimSuffix.length)) : undefined
      if (!name.endsWith(".json") && claimedBy === undefined) return []
      if (claimedBy !== undefined && (claimedBy === process.pid || isAlive(claimedBy))) return []
      const file = path.join(dir, name)
      let record: WorktreeRecord
      try {
        const decoded = decode(nodeFs.readFileSync(file, "utf8"))
        if (decoded._tag === "None") return []
        record = decoded.value
      } catch {
        return []
      }
      if (record.pid === process.pid || isAlive(record.pid)) return []
      // A gone run whose agents still wait for a resume keeps its worktrees; so does a run resumed since.
      if (keeps(home, record.executionId)) return []
      const claimed = `${fileOf(home, record)}${claimSuffix}${process.pid}`
      try {
        nodeFs.renameSync(file, claimed)
      } catch {
        return [] // another collector was first
      }
      return [{ file: claimed, record }]
    })
  })
