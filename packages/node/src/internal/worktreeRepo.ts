/**
 * The git side of worktree machines.
 *
 * An agent's worktree is a checkout in its machine's directory, backed by a
 * private repository (`<dir>/.git`) that borrows the user's objects read-only
 * (git alternates) and has refs, index, stash and configuration of its own:
 * nothing the agent does with git reaches the user's repository. Its branch
 * is created in the user's repository at `base` and receives the agent's
 * work when the agent is released ({@link save}).
 *
 * Everything here that reads the agent's repository treats it as hostile: its
 * refs are read as files and its objects through alternates, but git never
 * runs with its configuration (which could name programs to run).
 *
 * @internal
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Effect } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import * as Git from "./git.js"

/** A repository, resolved from any directory in it. */
export interface Repository {
  /** Its top-level directory (its git directory when bare). */
  readonly root: string
  /** Its (common) git directory. */
  readonly gitDir: string
  readonly bare: boolean
  readonly objectFormat: string
}

/** Where a worktree's pieces are. */
export interface Layout {
  readonly repository: Repository
  /** The worktree: the machine's working directory. */
  readonly path: string
  readonly branch: string
  /** The commit the branch started at. */
  readonly base: string
  /** Author and committer of ramure's commits for this worktree (and of the agent's own). */
  readonly identity: Identity
}

export interface Identity {
  readonly name: string
  readonly email: string
}

export const identityEnv = (identity: Identity): Record<string, string> => ({
  GIT_AUTHOR_NAME: identity.name,
  GIT_AUTHOR_EMAIL: identity.email,
  GIT_COMMITTER_NAME: identity.name,
  GIT_COMMITTER_EMAIL: identity.email
})

export const branchRef = (branch: string): string => `refs/heads/${branch}`

/** Resolve the repository containing `dir`; `undefined` (with git's reason) when there is none. */
export const resolve = (dir: string): Effect.Effect<Repository | string, Git.GitFailed, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const absolute = path.resolve(dir)
    if (!nodeFs.existsSync(absolute)) return "no such directory"
    if (!nodeFs.statSync(absolute).isDirectory()) return "not a directory"
    const probe = yield* Git.run(
      ["rev-parse", "--path-format=absolute", "--git-common-dir", "--is-bare-repository", "--show-object-format"],
      { cwd: absolute }
    )
    if (probe.exitCode !== 0) return probe.stderr.trim().replace(/^fatal: /, "")
    const [gitDir, bare, objectFormat] = probe.stdout.trim().split("\n")
    const isBare = bare === "true"
    const top = isBare ? undefined : yield* Git.run(["rev-parse", "--show-toplevel"], { cwd: absolute })
    const root = isBare
      ? gitDir!
      : top !== undefined && top.exitCode === 0
      ? top.stdout.trim()
      : path.dirname(gitDir!) // inside the .git directory of a checkout
    return { root: nodeFs.realpathSync(root), gitDir: nodeFs.realpathSync(gitDir!), bare: isBare, objectFormat: objectFormat ?? "sha1" }
  })

/** The object directories git reads for `gitDir` (its own, then its alternates, transitively). */
export const objectDirectories = (gitDir: string): Array<string> => {
  const seen: Array<string> = []
  const visit = (objects: string) => {
    let real: string
    try {
      real = nodeFs.realpathSync(objects)
    } catch {
      return
    }
    if (seen.includes(real)) return
    seen.push(real)
    let alternates: string
    try {
      alternates = nodeFs.readFileSync(path.join(real, "info", "alternates"), "utf8")
    } catch {
      return
    }
    for (const line of alternates.split("\n").map((l) => l.trim())) {
      if (line.length === 0 || line.startsWith("#")) continue
      visit(path.resolve(real, line))
    }
  }
  visit(path.join(gitDir, "objects"))
  return seen
}

const isRealDirectory = (dir: string): boolean => {
  try {
    return nodeFs.lstatSync(dir).isDirectory()
  } catch {
    return false
  }
}

/** The agent repository's git directory, if it is still a real directory (not a symlink to anywhere). */
const agentGitDir = (worktree: string): string | undefined => {
  const dir = path.join(worktree, ".git")
  return isRealDirectory(worktree) && isRealDirectory(dir) ? dir : undefined
}

/** A file's text, never through a symlink (the agent could point one anywhere on this host). */
const readOwnFile = (file: string): string | undefined => {
  let fd: number | undefined
  try {
    fd = nodeFs.openSync(file, nodeFs.constants.O_RDONLY | nodeFs.constants.O_NOFOLLOW)
    return nodeFs.readFileSync(fd, "utf8")
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) nodeFs.closeSync(fd)
  }
}

/**
 * The agent's object directory, if git may read it from outside the
 * sandbox: no symlink anywhere in it, and its alternates still exactly the
 * user's objects (else it could make git here read other repositories of
 * this host). Otherwise the agent's commits are not read; its files still are.
 */
const agentObjects = (layout: Layout): string | undefined => {
  const gitDir = agentGitDir(layout.path)
  if (gitDir === undefined) return undefined
  const objects = path.join(gitDir, "objects")
  const clean = (dir: string): boolean => {
    let entries: Array<nodeFs.Dirent>
    try {
      entries = nodeFs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return false
    }
    return entries.every((entry) => !entry.isSymbolicLink() && (!entry.isDirectory() || clean(path.join(dir, entry.name))))
  }
  if (!isRealDirectory(objects) || !clean(objects)) return undefined
  const alternates = path.join(objects, "info", "alternates")
  const expected = `${path.join(layout.repository.gitDir, "objects")}\n`
  return !nodeFs.existsSync(alternates) || readOwnFile(alternates) === expected ? objects : undefined
}

/** The commits the agent's repository points at, read as files: HEAD first, then its local branches. */
export const agentTips = (worktree: string): { readonly head: string | undefined; readonly branches: Array<string> } => {
  const gitDir = agentGitDir(worktree)
  if (gitDir === undefined) return { head: undefined, branches: [] }
  const read = (file: string): string | undefined => readOwnFile(path.join(gitDir, file))?.trim()
  const refs = new Map<string, string>()
  for (const line of (read("packed-refs") ?? "").split("\n")) {
    const [id, name] = line.split(" ")
    if (id !== undefined && name !== undefined && Git.isObjectId(id)) refs.set(name, id)
  }
  const walk = (relative: string) => {
    if (!isRealDirectory(path.join(gitDir, relative))) return
    let entries: Array<nodeFs.Dirent>
    try {
      entries = nodeFs.readdirSync(path.join(gitDir, relative), { withFileTypes: true })
    } catch {
      return
    }
    for (const entry of entries) {
      const name = `${relative}/${entry.name}`
      if (entry.isDirectory()) walk(name)
      else if (entry.isFile()) {
        const id = read(name)
        if (id !== undefined && Git.isObjectId(id)) refs.set(name, id)
      }
    }
  }
  walk("refs/heads")
  const head = read("HEAD")
  const headId = head === undefined
    ? undefined
    : Git.isObjectId(head)
    ? head
    : head.startsWith("ref: ")
    ? refs.get(head.slice(5).trim())
    : undefined
  const branches = [...refs].filter(([name]) => name.startsWith("refs/heads/")).map(([, id]) => id)
  return { head: headId, branches }
}

/** Environment that lets the user's repository read the agent's objects (and, optionally, write new ones elsewhere). */
const objectsEnv = (layout: Layout, scratchObjects?: string): Record<string, string> => {
  const agent = agentObjects(layout)
  const alternates = [
    ...(scratchObjects === undefined ? [] : [path.join(layout.repository.gitDir, "objects")]),
    ...(agent === undefined ? [] : [agent])
  ]
  return {
    ...(alternates.length === 0 ? {} : { GIT_ALTERNATE_OBJECT_DIRECTORIES: alternates.join(":") }),
    ...(scratchObjects === undefined ? {} : { GIT_OBJECT_DIRECTORY: scratchObjects })
  }
}

/** git on the user's repository, reading the agent's objects too. */
const repoGit = (layout: Layout, env: Record<string, string> = {}) => {
  const args = (rest: ReadonlyArray<string>) => [`--git-dir=${layout.repository.gitDir}`, ...rest]
  const base = { ...objectsEnv(layout), ...env }
  const options = (extra: Git.GitOptions = {}) => ({ ...extra, env: { ...base, ...extra.env } })
  return {
    run: (rest: ReadonlyArray<string>, extra?: Git.GitOptions) => Git.run(args(rest), options(extra)),
    check: (rest: ReadonlyArray<string>, extra?: Git.GitOptions) => Git.check(args(rest), options(extra)),
    value: (rest: ReadonlyArray<string>, extra?: Git.GitOptions) => Git.value(args(rest), options(extra))
  }
}

/** A command on the user's repository that reads the agent's objects (and `scratchObjects`' new ones). */
export const repoCommand = (layout: Layout, args: ReadonlyArray<string>, scratchObjects?: string) =>
  Git.check([`--git-dir=${layout.repository.gitDir}`, ...args], { env: objectsEnv(layout, scratchObjects) })

/** The branch's commit in the user's repository, if the branch exists. */
export const branchTip = (repository: Repository, branch: string) =>
  Git.run([`--git-dir=${repository.gitDir}`, "rev-parse", "--verify", "--quiet", `${branchRef(branch)}^{commit}`]).pipe(
    Effect.map((result) => (result.exitCode === 0 ? result.stdout.trim() : undefined))
  )

/** The ids among `ids` that name commits readable here (the agent may have left anything in its refs). */
const commitsAmong = (layout: Layout, ids: ReadonlyArray<string>) =>
  ids.length === 0
    ? Effect.succeed([])
    : Effect.map(
      repoGit(layout).check(["cat-file", "--batch-check=%(objectname) %(objecttype)"], { input: ids.join("\n") + "\n" }),
      (out) => out.split("\n").filter((line) => line.endsWith(" commit")).map((line) => line.split(" ")[0]!)
    )

export interface Snapshot {
  /** The tree of the worktree's files as they are (its .gitignore honoured). */
  readonly tree: string
  /** The agent's HEAD commit, if its repository still has a readable one. */
  readonly head: string | undefined
  /** Its local branches' commits (readable ones). */
  readonly branches: ReadonlyArray<string>
  /** Files git could not read (they are left out). */
  readonly warnings: string
}

/**
 * Snapshot the worktree's files into a tree, with a private index (the
 * agent's index, however it was left, is not used). New objects go to the
 * user's repository, or to `scratchObjects` (a directory removed afterwards)
 * for a look that must leave nothing behind.
 */
export const snapshot = (layout: Layout, scratch: string, scratchObjects?: string) =>
  Effect.gen(function* () {
    const tips = agentTips(layout.path)
    const valid = yield* commitsAmong(layout, [...new Set([...(tips.head === undefined ? [] : [tips.head]), ...tips.branches])])
    const head = tips.head !== undefined && valid.includes(tips.head) ? tips.head : undefined
    const seed = head ?? (yield* branchTip(layout.repository, layout.branch)) ?? layout.base
    const index = path.join(scratch, "index")
    const git = repoGit(layout, { GIT_INDEX_FILE: index, ...(scratchObjects === undefined ? {} : objectsEnv(layout, scratchObjects)) })
    yield* git.check(["read-tree", seed])
    // A checkout replaced by a symlink is not followed: its files are not the agent's to give.
    const added = isRealDirectory(layout.path)
      ? yield* git.run(["--work-tree=.", "add", "--all", "--ignore-errors", "--", "."], { cwd: layout.path })
      : { exitCode: 1, stdout: "", stderr: `${layout.path} is no longer a directory: its files were not read` }
    const tree = yield* git.value(["write-tree"])
    return {
      tree,
      head,
      branches: valid.filter((id) => id !== head),
      warnings: added.exitCode === 0 ? "" : added.stderr.trim()
    } satisfies Snapshot
  })

export interface Saved {
  /** The branch's commit now. */
  readonly commit: string
  /** Whether ramure made a commit (the agent left uncommitted work, or history that had to be kept). */
  readonly committed: boolean
  readonly warnings: string
}

/**
 * Commit what the agent left — its commits and its uncommitted files — to
 * its branch in the user's repository. The new commit's tree is the
 * worktree's files; its parents are every line of history that would
 * otherwise be lost (the agent's HEAD, its other local branches, the branch's
 * current commit), reduced to those not already contained in another. The
 * branch only moves forward: an update is a compare-and-swap on its old value.
 */
export const save = (layout: Layout, scratch: string, reason: string): Effect.Effect<Saved, Git.GitFailed, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const git = repoGit(layout)
    const current = yield* branchTip(layout.repository, layout.branch)
    const snap = yield* snapshot(layout, scratch)
    const candidates = [...new Set([
      ...(snap.head === undefined ? [] : [snap.head]),
      ...snap.branches,
      current ?? layout.base
    ])]
    const independent = candidates.length === 1
      ? candidates
      : (yield* git.check(["merge-base", "--independent", ...candidates])).trim().split("\n")
    const parents = candidates.filter((id) => independent.includes(id))
    const treeOf = (id: string) => git.value(["rev-parse", `${id}^{tree}`])
    const unchanged = parents.length === 1 && (yield* treeOf(parents[0]!)) === snap.tree
    const commit = unchanged ? parents[0]! : yield* git.value(
      ["commit-tree", snap.tree, ...parents.flatMap((id) => ["-p", id]), "-F", "-"],
      { env: identityEnv(layout.identity), input: commitMessage(layout, reason, parents, snap.head) }
    )
    if (commit !== current) {
      const previous = current ?? layout.base
      // The agent's objects live in its repository, which is about to go: copy what the branch needs.
      yield* git.check(["pack-objects", "--revs", "--quiet", path.join(layout.repository.gitDir, "objects", "pack", "pack")], {
        input: `${commit}\n^${previous}\n`
      })
      yield* Git.check([`--git-dir=${layout.repository.gitDir}`, "rev-list", "--objects", "--quiet", commit, "--not", previous])
      yield* Git.check([
        `--git-dir=${layout.repository.gitDir}`,
        "update-ref",
        "-m",
        `ramure: ${reason}`,
        branchRef(layout.branch),
        commit,
        current ?? ""
      ])
    }
    return { commit, committed: !unchanged, warnings: snap.warnings }
  })

const commitMessage = (layout: Layout, reason: string, parents: ReadonlyArray<string>, head: string | undefined): string => {
  const lines = [`ramure: save the work left in ${path.basename(layout.path)}`, "", `Committed by ramure when ${reason}: the files of the worktree as the agent left them (its .gitignore honoured).`]
  if (head === undefined) lines.push("", "Its repository had no readable HEAD; the files are committed on top of the branch.")
  if (parents.length > 1) lines.push("", "Other parents keep history that no branch would otherwise hold:", ...parents.slice(1).map((id) => `  ${id}`))
  return lines.join("\n") + "\n"
}
