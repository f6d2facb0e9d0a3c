/**
 * Merging agents' branches without a working tree: each merge is computed
 * with `git merge-tree --write-tree` (git ≥ 2.38) and committed with
 * `commit-tree`; the target branch moves once, at the end, and only if every
 * merge succeeded. A target checked out in a worktree of the repository moves
 * with `git merge --ff-only` there, which refuses to overwrite local changes.
 *
 * @internal
 */
import { Effect } from "effect"
import * as Git from "./git.js"
import { branchRef, branchTip, identityEnv, type Repository } from "./worktreeRepo.js"

export interface Merged {
  readonly branch: string
  readonly commit: string
  /** `fast-forward`: the target had nothing the branch lacked; `merge`: a merge commit; `up-to-date`: nothing to merge. */
  readonly how: "fast-forward" | "merge" | "up-to-date"
}

export type Outcome =
  | { readonly _tag: "Done"; readonly into: string; readonly commit: string; readonly merged: ReadonlyArray<Merged> }
  | { readonly _tag: "Conflict"; readonly into: string; readonly branch: string; readonly files: ReadonlyArray<string> }
  | { readonly _tag: "Refused"; readonly message: string }

/** ramure's identity for merge commits when the user's git has none configured. */
const fallbackIdentity = { name: "ramure", email: "ramure@localhost" }

export const merge = (repository: Repository, branches: ReadonlyArray<string>, into: string | undefined) =>
  Effect.gen(function* () {
    const git = (args: ReadonlyArray<string>, options: Git.GitOptions = {}) =>
      Git.run([`--git-dir=${repository.gitDir}`, ...args], options)
    const value = (args: ReadonlyArray<string>, options: Git.GitOptions = {}) =>
      Git.value([`--git-dir=${repository.gitDir}`, ...args], options)
    const refused = (message: string): Outcome => ({ _tag: "Refused", message })

    // The current branch of the checkout given (a linked worktree has its own).
    const target = into ?? (yield* Git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], { cwd: repository.root })).stdout.trim()
    if (target.length === 0) return refused("the repository's HEAD is detached: say which branch to merge into")
    const start = yield* branchTip(repository, target)
    if (start === undefined) return refused(`there is no branch ${target}`)
    const hasIdentity = (yield* git(["var", "GIT_COMMITTER_IDENT"])).exitCode === 0
    const identity = hasIdentity ? {} : identityEnv(fallbackIdentity)
    const isAncestor = (a: string, b: string) => Effect.map(git(["merge-base", "--is-ancestor", a, b]), (r) => r.exitCode === 0)

    let current = start
    const merged: Array<Merged> = []
    for (const branch of branches) {
      const tip = yield* branchTip(repository, branch)
      if (tip === undefined) return refused(`there is no branch ${branch}`)
      if (yield* isAncestor(tip, current)) {
        merged.push({ branch, commit: current, how: "up-to-date" })
      } else if (yield* isAncestor(current, tip)) {
        current = tip
        merged.push({ branch, commit: current, how: "fast-forward" })
      } else {
        const result = yield* git(["merge-tree", "--write-tree", "--name-only", "--no-messages", current, tip])
        const [tree, ...files] = result.stdout.split("\n").filter((line) => line.length > 0)
        if (result.exitCode === 1) return { _tag: "Conflict", into: target, branch, files } satisfies Outcome
        if (result.exitCode !== 0 || tree === undefined) {
          return yield* new Git.GitFailed({ args: ["merge-tree"], exitCode: result.exitCode, message: result.stderr.trim() })
        }
        current = yield* value(["commit-tree", tree, "-p", current, "-p", tip, "-m", `Merge branch '${branch}' into ${target}`], {
          env: identity
        })
        merged.push({ branch, commit: current, how: "merge" })
      }
    }
    if (current === start) return { _tag: "Done", into: target, commit: current, merged } satisfies Outcome

    const checkedOut = yield* checkedOutAt(repository, target)
    if (checkedOut !== undefined) {
      // git refuses (and changes nothing) if a local change would be overwritten or the branch moved meanwhile.
      const moved = yield* Git.run(["merge", "--ff-only", "--no-stat", "--quiet", current], { cwd: checkedOut, env: identity })
      if (moved.exitCode !== 0) return refused(`${target} is checked out at ${checkedOut}: ${moved.stderr.trim().replace(/^(fatal|error): /gm, "")}`)
    } else {
      const moved = yield* git(["update-ref", "-m", `ramure: merge ${branches.join(", ")}`, branchRef(target), current, start], { env: identity })
      if (moved.exitCode !== 0) return refused(`${target} moved while merging: ${moved.stderr.trim()}`)
    }
    return { _tag: "Done", into: target, commit: current, merged } satisfies Outcome
  })

/** The worktree (of any kind: the main checkout or a linked one) that has `branch` checked out, if any. */
const checkedOutAt = (repository: Repository, branch: string) =>
  Effect.map(Git.check(["worktree", "list", "--porcelain"], { cwd: repository.root }), (out) => {
    for (const block of out.split("\n\n")) {
      const lines = block.split("\n")
      const worktree = lines.find((line) => line.startsWith("worktree "))?.slice("worktree ".length)
      if (lines.includes("bare")) continue
      if (worktree !== undefined && lines.includes(`branch ${branchRef(branch)}`)) return worktree
    }
    return undefined
  })
