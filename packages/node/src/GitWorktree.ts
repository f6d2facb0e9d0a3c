/**
 * Worktree machines: an agent works in its own checkout of a git repository,
 * on its own branch, and the user's checkout, index, stash and current
 * branch are never touched.
 *
 * The checkout is the machine's working directory. Its `.git` is a private
 * repository that borrows the user's objects read-only (git alternates): the
 * agent's commits, branches, stash and configuration stay there. The branch
 * (`ramure/<run id8>/<machine>` by default) is created in the user's
 * repository at `base`; when the machine is released — success, failure,
 * interrupt, timeout, SIGTERM — what the agent left, committed or not, is
 * committed to that branch and the checkout is removed. After a SIGKILL, the
 * next run or `ramure gc` does the same (see {@link collectOrphans}).
 */

import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { shortId } from "@ramure/core/RunInfo"
import {
  BranchExists,
  type ChangedFile,
  type Commit,
  type MakeError,
  MergeConflict,
  NotAGitRepository,
  type Worktree,
  WorktreeError,
  type WorktreeOptions
} from "@ramure/core/Worktree"
import { Effect, Exit, Ref, type Scope } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import * as Git from "./internal/git.js"
import * as Merge from "./internal/worktreeMerge.js"
import * as Records from "./internal/worktreeRecords.js"
import * as Repo from "./internal/worktreeRepo.js"

/** What became of a worktree when it was released. */
export type Released =
  | { readonly _tag: "Saved"; readonly branch: string; readonly commit: string; readonly committed: boolean; readonly warnings: string }
  | { readonly _tag: "SaveFailed"; readonly branch: string; readonly path: string; readonly message: string }

export interface MakeContext {
  /** The machine's name (unique in the run). */
  readonly machine: string
  readonly executionId: string
  readonly home: string
  /** Where the checkout goes; must not exist (unless it is adopted). */
  readonly path: string
  /**
   * A resumed run: take over the worktree a previous orchestrator of the run
   * made for this machine (its checkout and branch as they are) when there
   * is one, instead of refusing the branch and path that exist.
   */
  readonly adopt?: boolean
  /** Told what became of the worktree when it is released. */
  readonly onRelease?: (released: Released) => Effect.Effect<void>
}

/** The default branch of a machine's worktree. */
export const defaultBranch = (executionId: string, machine: string): string => `ramure/${shortId(executionId)}/${machine}`

/** The identity of the agent's commits and of ramure's commits of its work. */
export const identityOf = (machine: string): Repo.Identity => ({ name: `${machine} (ramure)`, email: `${machine}@ramure.invalid` })

const describeRelease = (exit: Exit.Exit<unknown, unknown>): string =>
  Exit.isSuccess(exit) ? "its machine was released" : Exit.isInterrupted(exit) ? "its process was interrupted" : "its process failed"

const resolveRepository = (dir: string) =>
  Effect.flatMap(
    Repo.resolve(dir).pipe(Effect.mapError((error) => new WorktreeError({ repo: dir, operation: "open", message: error.message }))),
    (found) => (typeof found === "string" ? Effect.fail(new NotAGitRepository({ path: dir, reason: found })) : Effect.succeed(found))
  )

const layoutOf = (record: Records.WorktreeRecord): Repo.Layout => ({
  repository: { root: record.repo, gitDir: record.gitDir, bare: record.bare, objectFormat: record.objectFormat },
  path: record.path,
  branch: record.branch,
  base: record.base,
  identity: record.identity
})

/** Remove a checkout, even one whose agent made parts of it read-only. */
const removeTree = (dir: string): Effect.Effect<void> =>
  Effect.sync(() => {
    try {
      nodeFs.rmSync(dir, { recursive: true, force: true })
    } catch {
      const unlock = (entry: string) => {
        try {
          const stat = nodeFs.lstatSync(entry)
          if (!stat.isDirectory()) return
          nodeFs.chmodSync(entry, 0o700)
          for (const child of nodeFs.readdirSync(entry)) unlock(path.join(entry, child))
        } catch {
          // gone, or not ours: rmSync reports what is left
        }
      }
      unlock(dir)
      nodeFs.rmSync(dir, { recursive: true, force: true })
    }
  }).pipe(Effect.catchAllDefect(() => Effect.void))

/** Save what the agent left to its branch, then remove its checkout and its record (`recordFile`, when claimed under another name). */
const saveAndRemove = (home: string, record: Records.WorktreeRecord, reason: string, recordFile?: string) =>
  Effect.gen(function* () {
    const forget = Effect.zipRight(
      Records.remove(home, record),
      Effect.sync(() => recordFile !== undefined && nodeFs.rmSync(recordFile, { force: true }))
    )
    if (!nodeFs.existsSync(record.path)) {
      yield* forget
      return { _tag: "Saved", branch: record.branch, commit: record.base, committed: false, warnings: "its checkout was never created" } satisfies Released
    }
    const saved = yield* Effect.scoped(Effect.flatMap(Records.scratch(home), (scratch) => Repo.save(layoutOf(record), scratch, reason))).pipe(
      Effect.either
    )
    if (saved._tag === "Left") {
      return { _tag: "SaveFailed", branch: record.branch, path: record.path, message: saved.left.message } satisfies Released
    }
    yield* removeTree(record.path)
    yield* forget
    return { _tag: "Saved", branch: record.branch, ...saved.right } satisfies Released
  })

/**
 * Create a worktree of `options.repo` at `context.path`, on a new branch;
 * closing the scope saves the agent's work to the branch and removes the
 * checkout (see the module's description).
 */
export const make = (
  options: WorktreeOptions,
  context: MakeContext
): Effect.Effect<Worktree, MakeError, Scope.Scope | CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const repository = yield* resolveRepository(options.repo)
    const fail = (operation: string) => (error: { readonly message: string }) =>
      new WorktreeError({ repo: repository.root, operation, message: error.message })
    const git = (args: ReadonlyArray<string>, gitOptions?: Git.GitOptions) =>
      Git.value([`--git-dir=${repository.gitDir}`, ...args], gitOptions)

    const adopted = context.adopt === true ? yield* Records.read(context.home, context.executionId, context.machine) : undefined
    if (adopted !== undefined && adopted.repo === repository.root && nodeFs.existsSync(adopted.path)) {
      const record = { ...adopted, pid: process.pid }
      return yield* worktreeOf(record, context, Records.write(context.home, record))
    }

    const baseName = options.base ?? "HEAD"
    // In the checkout given (a linked worktree has a HEAD of its own).
    const base = yield* Git.value(["rev-parse", "--verify", "--quiet", "--end-of-options", `${baseName}^{commit}`], { cwd: repository.root }).pipe(
      Effect.mapError(() =>
        new WorktreeError({
          repo: repository.root,
          operation: "make",
          message: options.base === undefined ? "the repository has no commits yet" : `${baseName} is not a commit of the repository`
        })
      )
    )
    const branch = yield* Git.value(["check-ref-format", "--branch", options.branch ?? defaultBranch(context.executionId, context.machine)], {
      cwd: repository.root
    }).pipe(Effect.mapError(() =>
      new WorktreeError({ repo: repository.root, operation: "make", message: `invalid branch name: ${JSON.stringify(options.branch)}` })
    ))
    if (yield* Effect.map(Repo.branchTip(repository, branch), (tip) => tip !== undefined).pipe(Effect.mapError(fail("make")))) {
      return yield* new BranchExists({ repo: repository.root, branch })
    }
    if (nodeFs.existsSync(context.path)) {
      return yield* new WorktreeError({ repo: repository.root, operation: "make", message: `${context.path} exists already` })
    }

    const record: Records.WorktreeRecord = {
      executionId: context.executionId,
      pid: process.pid,
      machine: context.machine,
      repo: repository.root,
      gitDir: repository.gitDir,
      bare: repository.bare,
      objectFormat: repository.objectFormat,
      path: context.path,
      branch,
      base,
      identity: identityOf(context.machine)
    }
    const create = Effect.gen(function* () {
      // Recorded before anything exists, so that a run killed at any point leaves nothing unaccounted for.
      yield* Records.write(context.home, record)
      const created = yield* git(["update-ref", "-m", `ramure: branch of ${context.machine}`, Repo.branchRef(branch), base, ""]).pipe(
        Effect.either
      )
      if (created._tag === "Left") {
        yield* Records.remove(context.home, record)
        return yield* (yield* Effect.map(Repo.branchTip(repository, branch), (tip) => tip !== undefined).pipe(Effect.orElseSucceed(() => false)))
          ? Effect.fail(new BranchExists({ repo: repository.root, branch }))
          : Effect.fail(fail("make")(created.left))
      }
      yield* Effect.gen(function* () {
        yield* Git.check(["init", "--quiet", "--template=", `--object-format=${repository.objectFormat}`, `--initial-branch=${branch}`, context.path])
        yield* Effect.sync(() =>
          nodeFs.writeFileSync(path.join(context.path, ".git", "objects", "info", "alternates"), `${path.join(repository.gitDir, "objects")}\n`)
        )
        const inside = (args: ReadonlyArray<string>) => Git.check(args, { cwd: context.path })
        yield* inside(["config", "user.name", record.identity.name])
        yield* inside(["config", "user.email", record.identity.email])
        yield* inside(["update-ref", Repo.branchRef(branch), base])
        yield* inside(["reset", "--quiet", "--hard"])
      }).pipe(
        Effect.tapError(() =>
          Effect.gen(function* () {
            yield* removeTree(context.path)
            yield* git(["update-ref", "-d", Repo.branchRef(branch), base]).pipe(Effect.ignore)
            yield* Records.remove(context.home, record)
          })
        ),
        Effect.mapError(fail("make"))
      )
    })

    return yield* worktreeOf(record, context, create)
  }).pipe(Effect.withSpan("Worktree.make", { attributes: { machine: context.machine, repo: options.repo } }))

/** The worktree of `record`, made by `create` (or taken over as it is); closing the scope saves and removes it. */
const worktreeOf = <E>(
  record: Records.WorktreeRecord,
  context: MakeContext,
  create: Effect.Effect<void, E, CommandExecutor.CommandExecutor>
): Effect.Effect<Worktree, E, Scope.Scope | CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const repository = { root: record.repo, gitDir: record.gitDir, bare: record.bare, objectFormat: record.objectFormat }
    const { base, branch } = record
    const fail = (operation: string) => (error: { readonly message: string }) =>
      new WorktreeError({ repo: repository.root, operation, message: error.message })
    const git = (args: ReadonlyArray<string>, gitOptions?: Git.GitOptions) =>
      Git.value([`--git-dir=${repository.gitDir}`, ...args], gitOptions)
    const layout = layoutOf(record)
    const released = yield* Ref.make(false)

    yield* Effect.acquireRelease(create, (_, exit) =>
      Effect.gen(function* () {
        yield* Ref.set(released, true)
        const outcome = yield* saveAndRemove(context.home, record, describeRelease(exit))
        if (context.onRelease !== undefined) yield* context.onRelease(outcome)
      }).pipe(Effect.catchAllCause((cause) => Effect.logWarning(`ramure: releasing the worktree ${context.path}`, cause)))
    )

    const executor = yield* Effect.context<CommandExecutor.CommandExecutor>()
    const look = <A>(
      operation: string,
      live: (scratch: string) => Effect.Effect<A, Git.GitFailed, CommandExecutor.CommandExecutor>,
      after: Effect.Effect<A, Git.GitFailed, CommandExecutor.CommandExecutor>
    ): Effect.Effect<A, WorktreeError> =>
      Effect.flatMap(Ref.get(released), (done) =>
        done ? after : Effect.scoped(Effect.flatMap(Records.scratch(context.home), live))
      ).pipe(Effect.mapError(fail(operation)), Effect.provide(executor))

    /** The tree to compare with `base`: the files while live (in scratch objects), the branch once released. */
    const diffArgs = (extra: ReadonlyArray<string>, target: string) =>
      ["diff", "--no-ext-diff", "--no-textconv", "--no-color", ...extra, base, target]
    const liveDiff = (extra: ReadonlyArray<string>) => (scratch: string) =>
      Effect.gen(function* () {
        const objects = path.join(scratch, "objects")
        const snap = yield* Repo.snapshot(layout, scratch, objects)
        return yield* Repo.repoCommand(layout, diffArgs(extra, snap.tree), objects)
      })
    const releasedDiff = (extra: ReadonlyArray<string>) =>
      Git.check([`--git-dir=${repository.gitDir}`, ...diffArgs(extra, Repo.branchRef(branch))])
    const nameStatus = ["--name-status", "-z", "--no-renames"]
    const parseNameStatus = (out: string): Array<ChangedFile> => {
      const parts = out.split("\0").filter((part) => part.length > 0)
      const files: Array<ChangedFile> = []
      for (let i = 0; i + 1 < parts.length; i += 2) files.push({ status: parts[i]!, path: parts[i + 1]! })
      return files
    }
    const logArgs = (tip: string) => ["log", "--format=%H%x00%an%x00%ae%x00%aI%x00%s%x00", "-z", tip, "--not", base]
    const parseLog = (out: string): Array<Commit> => {
      const fields = out.split("\0").map((field) => field.replace(/^\n/, ""))
      const commits: Array<Commit> = []
      for (let i = 0; i + 4 < fields.length; i += 6) {
        if (!Git.isObjectId(fields[i]!)) break
        commits.push({ id: fields[i]!, author: fields[i + 1]!, email: fields[i + 2]!, date: fields[i + 3]!, subject: fields[i + 4]! })
      }
      return commits
    }

    return {
      repo: repository.root,
      branch,
      base,
      path: context.path,
      diff: look("diff", liveDiff([]), releasedDiff([])),
      changedFiles: look(
        "diff",
        (scratch) => Effect.map(liveDiff(nameStatus)(scratch), parseNameStatus),
        Effect.map(releasedDiff(nameStatus), parseNameStatus)
      ),
      commits: look(
        "log",
        () => {
          const head = Repo.agentTips(context.path).head
          return head === undefined ? Effect.succeed([]) : Effect.map(Repo.repoCommand(layout, logArgs(head)), parseLog)
        },
        Effect.map(git(logArgs(Repo.branchRef(branch))), parseLog)
      )
    } satisfies Worktree
  })

/** The object directories a sandboxed agent must read for its worktree's repository (the user's, read-only). */
export const objectDirectories = (worktree: Worktree): Effect.Effect<ReadonlyArray<string>, never, CommandExecutor.CommandExecutor> =>
  Effect.map(Repo.resolve(worktree.repo).pipe(Effect.orElseSucceed(() => "unreadable")), (repository) =>
    typeof repository === "string" ? [] : Repo.objectDirectories(repository.gitDir))

export interface MergeOptions {
  /** Branches (or worktrees) to merge, in order. */
  readonly branches: ReadonlyArray<string | { readonly branch: string }>
  /** The branch to merge into (default: the repository's current branch). */
  readonly into?: string
}

export interface MergeResult {
  readonly into: string
  /** The branch's commit after the merge. */
  readonly commit: string
  readonly merged: ReadonlyArray<Merge.Merged>
}

/**
 * Merge branches (agents' worktree branches, once released) into `into`,
 * without a working tree. The target moves once, only if every branch
 * merged: a conflict is a `MergeConflict` naming the branch and files, and
 * leaves the repository as it was. A target checked out in a worktree moves
 * there with `git merge --ff-only`, which refuses (a `WorktreeError`) rather
 * than overwrite local changes.
 */
export const merge = Effect.fn("Worktree.merge")(function* (repo: string, options: MergeOptions) {
  const repository = yield* resolveRepository(repo)
  const branches = options.branches.map((branch) => (typeof branch === "string" ? branch : branch.branch))
  const outcome = yield* Merge.merge(repository, branches, options.into).pipe(
    Effect.mapError((error) => new WorktreeError({ repo: repository.root, operation: "merge", message: error.message }))
  )
  switch (outcome._tag) {
    case "Conflict":
      return yield* new MergeConflict({ repo: repository.root, into: outcome.into, branch: outcome.branch, files: outcome.files })
    case "Refused":
      return yield* new WorktreeError({ repo: repository.root, operation: "merge", message: outcome.message })
    case "Done":
      return { into: outcome.into, commit: outcome.commit, merged: outcome.merged } satisfies MergeResult
  }
})

export interface Collected {
  readonly executionId: string
  readonly machine: string
  readonly repo: string
  readonly released: Released
}

/**
 * Save and remove the worktrees of runs that died (SIGKILL) before
 * releasing them. `ramure gc` and every run do it; a worktree whose save
 * fails keeps its checkout and record (the next collection tries again).
 */
export const collectOrphans = (home: string): Effect.Effect<ReadonlyArray<Collected>, never, CommandExecutor.CommandExecutor> =>
  Effect.withSpan(Effect.flatMap(Records.claimOrphans(home), (claimed) =>
    Effect.forEach(claimed, ({ file, record }) =>
      Effect.map(
        saveAndRemove(home, record, `run ${shortId(record.executionId)} died without releasing it`, file).pipe(
          Effect.tap((released) =>
            released._tag === "SaveFailed"
              ? Records.write(home, record).pipe(Effect.zipRight(Effect.sync(() => nodeFs.rmSync(file, { force: true }))))
              : Effect.void
          )
        ),
        (released): Collected => ({ executionId: record.executionId, machine: record.machine, repo: record.repo, released })
      ))), "Worktree.collectOrphans")
