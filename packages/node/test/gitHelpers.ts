/** Real git repositories for tests, and everything about a checkout that ramure must never change. */
import { afterAll } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** Run git in `cwd`; its standard output. Throws (with git's message) on failure. */
export const git = (cwd: string, ...args: Array<string>): string =>
  execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

const made: Array<string> = []
// Each test file that makes repositories removes them when it is done.
afterAll(() => made.splice(0).forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))

/**
 * A fresh repository (branch `main`, identity "user") whose first commit
 * "init" holds `files`. Removed after the test file.
 */
export const makeRepo = (files: Record<string, string>): string => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-repo-"))
  made.push(root)
  const repo = path.join(root, "repo")
  fs.mkdirSync(repo)
  git(repo, "init", "--quiet", "--initial-branch=main")
  git(repo, "config", "user.name", "user")
  git(repo, "config", "user.email", "user@example.com")
  writeFiles(repo, files)
  git(repo, "add", "--all")
  git(repo, "commit", "--quiet", "-m", "init")
  return fs.realpathSync(repo)
}

export const writeFiles = (dir: string, files: Record<string, string>): void => {
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    fs.writeFileSync(path.join(dir, file), text)
  }
}

/**
 * What a user sees of a checkout: status (with untracked files), the index,
 * unstaged and staged changes, the stash, HEAD and its branch, the linked
 * worktrees, and the files of the working directory.
 */
export const checkoutState = (repo: string) => ({
  status: git(repo, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
  index: git(repo, "ls-files", "--stage"),
  unstaged: git(repo, "diff"),
  staged: git(repo, "diff", "--cached"),
  stash: git(repo, "stash", "list", "--format=%H %gs"),
  head: git(repo, "rev-parse", "HEAD"),
  branch: git(repo, "symbolic-ref", "--quiet", "HEAD"),
  worktrees: git(repo, "worktree", "list", "--porcelain"),
  files: Object.fromEntries(
    fs.readdirSync(repo, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile() && !path.join(entry.parentPath, entry.name).includes(`${path.sep}.git`))
      .map((entry) => {
        const file = path.join(entry.parentPath, entry.name)
        return [path.relative(repo, file), fs.readFileSync(file, "utf8")]
      })
  )
})
