/**
 * Worktree machines: an agent works in its own checkout of a git repository,
 * on its own branch; the user's checkout, index, stash and current branch are
 * never touched. This module is what a process sees of them (options, the
 * worktree of a machine, the errors); `@ramure/node`'s `GitWorktree` makes
 * them with git.
 */
import { Schema } from "effect"
import type { Effect } from "effect"
import { WorktreeInfo } from "./MachineInfo.js"

export interface WorktreeOptions {
  /** The repository (any directory in it). */
  readonly repo: string
  /** What the branch starts from: a commit, branch or tag (default `HEAD`). */
  readonly base?: string
  /** The branch to create (default `ramure/<run id8>/<machine>`); it must not exist. */
  readonly branch?: string
}

/** The path is not in a git repository (or does not exist). */
export class NotAGitRepository extends Schema.TaggedError<NotAGitRepository>()("NotAGitRepository", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.path} is not a git repository: ${this.reason}`
  }
}

/** The branch a worktree would create exists already. */
export class BranchExists extends Schema.TaggedError<BranchExists>()("BranchExists", {
  repo: Schema.String,
  branch: Schema.String
}) {
  override get message() {
    return `branch ${this.branch} already exists in ${this.repo}`
  }
}

/** A git operation on a worktree or its repository failed (git's own message). */
export class WorktreeError extends Schema.TaggedError<WorktreeError>()("WorktreeError", {
  repo: Schema.String,
  operation: Schema.String,
  message: Schema.String
}) {}

/** Merging `branch` into `into` conflicts in `files`; nothing was changed. */
export class MergeConflict extends Schema.TaggedError<MergeConflict>()("MergeConflict", {
  repo: Schema.String,
  into: Schema.String,
  branch: Schema.String,
  files: Schema.Array(Schema.String)
}) {
  override get message() {
    return `merging ${this.branch} into ${this.into} conflicts in ${this.files.join(", ")}; ${this.repo} is unchanged`
  }
}

export type MakeError = NotAGitRepository | BranchExists | WorktreeError

/** What a machine's description says of its worktree. */
export const Info = WorktreeInfo
export type Info = WorktreeInfo

export interface Commit {
  readonly id: string
  readonly author: string
  readonly email: string
  /** ISO 8601. */
  readonly date: string
  readonly subject: string
}

export interface ChangedFile {
  /** git's status letter: `A`dded, `M`odified, `D`eleted, `R`enamed, `T`ype changed. */
  readonly status: string
  readonly path: string
}

/** An agent's worktree, as the process sees it. */
export interface Worktree {
  /** The repository's top-level directory. */
  readonly repo: string
  readonly branch: string
  /** The commit the branch started from. */
  readonly base: string
  /** The checkout (the machine's working directory) while the machine lives. */
  readonly path: string
  /**
   * The agent's work against `base` as a unified diff: its files as they are
   * (uncommitted changes included) while it works, its branch once released.
   */
  readonly diff: Effect.Effect<string, WorktreeError>
  /** The files that differ from `base`, as `diff` sees them. */
  readonly changedFiles: Effect.Effect<ReadonlyArray<ChangedFile>, WorktreeError>
  /** The commits on top of `base`, newest first: the agent's while it works, its branch's once released. */
  readonly commits: Effect.Effect<ReadonlyArray<Commit>, WorktreeError>
}

