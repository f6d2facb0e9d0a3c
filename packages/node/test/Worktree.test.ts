/**
 * Worktree machines with real git: each on its own branch of one
 * repository, the user's checkout never touched, the work committed to the
 * branch however the machine is released (or, after a SIGKILL, by the next
 * run), and the process reading and merging the work.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Exit, Fiber, Scope, Stream } from "effect"
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as NodeContext from "@effect/platform-node/NodeContext"
import type { ProcessCancelled, ProcessFailed, ProcessTimeout } from "@ramure/core/Errors"
import * as Machine from "@ramure/core/Machine"
import * as Process from "@ramure/core/Process"
import * as RunInfo from "@ramure/core/RunInfo"
import { RunLog } from "@ramure/core/RunLog"
import * as Worktree from "ramure/Worktree"
import * as GitWorktree from "../src/GitWorktree.js"
import { checkoutState, git, makeRepo, writeFiles } from "./gitHelpers.js"
import { scripted, tempHome } from "../../core/test/helpers.js"

const root = path.resolve(__dirname, "../../..")

/** Run `body` as the root process of a scripted run in `home`. */
const inRun = <A, E>(body: () => Effect.Effect<A, E, any>, home = tempHome(), options: { readonly timeout?: Duration.DurationInput } = {}) =>
  Process.make("main", body, options)().pipe(Effect.provide(scripted({}, { home, register: false }))) as Effect.Effect<
    A,
    E | ProcessFailed | ProcessTimeout | ProcessCancelled
  >

const merge = (repo: string, options: Worktree.MergeOptions) => Worktree.merge(repo, options).pipe(Effect.provide(NodeContext.layer))

const sh = (machine: Machine.Machine, command: string) =>
  Effect.flatMap(machine.exec(command), (result) =>
    result.exitCode === 0 ? Effect.succeed(result.stdout) : Effect.dieMessage(`${command}: ${result.stderr}`))

const log = (repo: string, ...args: Array<string>) => git(repo, "log", "--format=%an|%s", ...args).trim().split("\n")
const files = (repo: string, ref: string) => git(repo, "ls-tree", "-r", "--name-only", ref).trim().split("\n")
const show = (repo: string, ref: string, file: string) => git(repo, "show", `${ref}:${file}`)

/** A repository whose user is in the middle of something: a change, a staged file, an untracked file, a stash. */
const busyRepo = () => {
  const repo = makeRepo({ "app.js": "console.log('v1')\n", "lib/util.js": "exports.x = 1\n", ".gitignore": "build/\n" })
  writeFiles(repo, { "stashed.txt": "stashed\n" })
  git(repo, "stash", "push", "--include-untracked", "--quiet")
  writeFiles(repo, { "app.js": "console.log('v1') // wip\n", "staged.txt": "staged\n", "notes.txt": "untracked\n" })
  git(repo, "add", "staged.txt")
  return repo
}

describe("Worktree machines", () => {
  it.live("a worktree machine works on its own branch; the user's checkout, index, stash and HEAD never change", () =>
    Effect.gen(function* () {
      const repo = busyRepo()
      const before = checkoutState(repo)
      const home = tempHome()
      const { branch, cwd, executionId } = yield* inRun(() =>
        Effect.gen(function* () {
          const machine = yield* Machine.make({ name: "agent", worktree: { repo } })
          const { executionId } = yield* RunInfo.RunInfo
          expect(machine.worktree!.branch).toBe(`ramure/${executionId.slice(0, 8)}/agent`)
          expect(machine.worktree!.base).toBe(git(repo, "rev-parse", "HEAD").trim())
          expect(machine.describe.worktree).toEqual({ repo, branch: machine.worktree!.branch, base: machine.worktree!.base })
          // A clean checkout of base, on its branch, whatever the user's checkout holds.
          expect(yield* sh(machine, "git status --porcelain=v1 --branch")).toBe(`## ${machine.worktree!.branch}\n`)
          expect(yield* sh(machine, "cat app.js")).toBe("console.log('v1')\n")
          // Everything an agent does with git stays in its worktree.
          yield* sh(machine, [
            "echo v2 > app.js",
            "git commit -qam 'Agent change'",
            "echo side > side.txt && git stash push -q --include-untracked",
            "git checkout -qb experiment && git checkout -q -",
            "git tag agent-tag",
            "git config user.name changed",
            "echo more >> app.js && git add app.js"
          ].join(" && "))
          expect(checkoutState(repo)).toEqual(before)
          // Recorded for a collector, privately.
          const records = path.join(home, "worktrees")
          expect(fs.statSync(records).mode & 0o777).toBe(0o700)
          const [record] = fs.readdirSync(records)
          expect(fs.statSync(path.join(records, record!)).mode & 0o777).toBe(0o600)
          return { branch: machine.worktree!.branch, cwd: machine.cwd, executionId }
        }), home)
      expect(checkoutState(repo)).toEqual(before)
      expect(git(repo, "tag", "--list")).toBe("")
      expect(git(repo, "branch", "--list", "experiment")).toBe("")
      expect(log(repo, branch)).toEqual(["agent (ramure)|ramure: save the work left in agent", "agent (ramure)|Agent change", "user|init"])
      expect(show(repo, branch, "app.js")).toBe("v2\nmore\n")
      expect(fs.existsSync(cwd)).toBe(false)
      expect(fs.readdirSync(path.join(home, "worktrees"))).toEqual([])
      expect(executionId).toBeTypeOf("string")
    }))

  it.live("what a worktree machine leaves is committed to its branch: changes and new files, not ignored ones", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n", "gone.txt": "bye\n", ".gitignore": "build/\n*.log\n" })
      const branch = yield* inRun(() =>
        Effect.gen(function* () {
          const machine = yield* Machine.make({ name: "agent", worktree: { repo } })
          yield* sh(machine, "echo changed > a.txt && rm gone.txt && mkdir -p src build && echo new > src/new.txt && echo out > build/out.js && echo log > debug.log")
          return machine.worktree!.branch
        }))
      expect(log(repo, branch)).toEqual(["agent (ramure)|ramure: save the work left in agent", "user|init"])
      expect(files(repo, branch)).toEqual([".gitignore", "a.txt", "src/new.txt"])
      expect(show(repo, branch, "a.txt")).toBe("changed\n")
      // Nothing left: no commit is made.
      const untouched = yield* inRun(() => Effect.map(Machine.make({ name: "idle", worktree: { repo } }), (m) => m.worktree!))
      expect(git(repo, "rev-parse", untouched.branch).trim()).toBe(untouched.base)
    }))

  it.live("several worktree machines of one repository work at once, each on its own branch", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "shared.txt": "base\n" })
      const before = checkoutState(repo)
      const branches = yield* inRun(() =>
        Effect.forEach(["a", "b", "c"], (name) =>
          Effect.gen(function* () {
            const machine = yield* Machine.make({ name, worktree: { repo } })
            yield* sh(machine, `echo ${name} > shared.txt && echo ${name} > ${name}.txt && git commit -qam 'Work of ${name}' && git add . && git commit -qm 'Add ${name}.txt'`)
            return machine.worktree!.branch
          }), { concurrency: "unbounded" }))
      for (const [i, name] of ["a", "b", "c"].entries()) {
        expect(show(repo, branches[i]!, "shared.txt")).toBe(`${name}\n`)
        expect(files(repo, branches[i]!)).toEqual([`${name}.txt`, "shared.txt"])
        expect(log(repo, branches[i]!)).toEqual([`${name} (ramure)|Add ${name}.txt`, `${name} (ramure)|Work of ${name}`, "user|init"])
      }
      expect(checkoutState(repo)).toEqual(before)
    }))

  it.live("bad input is a typed error: not a repository, a missing path, a taken branch, an unknown base, no commits, a bad branch name", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      git(repo, "branch", "taken")
      const plain = fs.mkdtempSync(path.join(path.dirname(repo), "plain-"))
      const empty = path.join(path.dirname(repo), "empty")
      git(path.dirname(repo), "init", "--quiet", empty)
      const errors = yield* inRun(() =>
        Effect.all([
          Machine.make({ name: "a", worktree: { repo: plain } }),
          Machine.make({ name: "b", worktree: { repo: path.join(plain, "missing") } }),
          Machine.make({ name: "c", worktree: { repo, branch: "taken" } }),
          Machine.make({ name: "d", worktree: { repo, base: "no-such-ref" } }),
          Machine.make({ name: "e", worktree: { repo: empty } }),
          Machine.make({ name: "f", worktree: { repo, branch: "bad..name" } }),
          Machine.make({ name: "g", worktree: { repo }, cwd: repo })
        ].map(Effect.flip)))
      expect(errors[0]).toMatchObject({ _tag: "NotAGitRepository", path: plain, reason: expect.stringContaining("not a git repository") })
      expect(errors[1]).toMatchObject({ _tag: "NotAGitRepository", reason: "no such directory" })
      expect(errors[2]).toMatchObject({ _tag: "BranchExists", repo, branch: "taken" })
      expect(errors[2]!.message).toBe(`branch taken already exists in ${repo}`)
      expect(errors[3]).toMatchObject({ _tag: "WorktreeError", message: "no-such-ref is not a commit of the repository" })
      expect(errors[4]).toMatchObject({ _tag: "WorktreeError", message: "the repository has no commits yet" })
      expect(errors[5]).toMatchObject({ _tag: "WorktreeError", message: 'invalid branch name: "bad..name"' })
      expect(errors[6]).toMatchObject({ _tag: "MachineError", message: expect.stringContaining("give cwd or worktree, not both") })
      // Nothing was created for them.
      expect(git(repo, "branch", "--list").trim().split("\n").map((b) => b.trim())).toEqual(["* main", "taken"])
    }))

  it.live("the work is saved however the agent left its repository: mid-merge with conflicts, a detached HEAD, a stale lock, another branch, no .git, git pointed at other files", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const decoy = fs.mkdtempSync(path.join(path.dirname(repo), "decoy-"))
      writeFiles(decoy, { "precious.txt": "keep me\n" })
      const branches = yield* inRun(() =>
        Effect.gen(function* () {
          const make = (name: string) => Machine.make({ name, worktree: { repo } })
          const conflicted = yield* make("conflicted")
          yield* sh(conflicted, [
            "git checkout -qb other && echo other > a.txt && git commit -qam other && git checkout -q -",
            "echo mine > a.txt && git commit -qam mine",
            "(git merge -q other || true)",
            "echo new > new.txt"
          ].join(" && "))
          expect(yield* sh(conflicted, "git status --porcelain")).toContain("UU a.txt")
          const detached = yield* make("detached")
          yield* sh(detached, "git checkout -q --detach && echo d > d.txt && git add d.txt && git commit -qm 'On a detached HEAD' && echo wip > wip.txt")
          const locked = yield* make("locked")
          yield* sh(locked, "echo l > a.txt && touch .git/index.lock")
          const elsewhere = yield* make("elsewhere")
          yield* sh(elsewhere, "git checkout -qb side && echo s > s.txt && git add s.txt && git commit -qm 'On side' && git checkout -q - && echo back > back.txt")
          const gitless = yield* make("gitless")
          yield* sh(gitless, "rm -rf .git && echo g > a.txt && echo kept > kept.txt")
          // Pointing git at other files of this host: nothing of them is read, the files are still saved.
          const tampered = yield* make("tampered")
          yield* sh(tampered, [
            "echo t > t.txt && git add t.txt && git commit -qm 'Before tampering'",
            "echo /etc > .git/objects/info/alternates",
            "ln -s /etc/hostname .git/refs/heads/stolen && ln -sf /etc/passwd .git/HEAD"
          ].join(" && "))
          // A checkout replaced by a symlink (here to a decoy directory) is not followed: neither read nor removed.
          const replaced = yield* make("replaced")
          yield* sh(replaced, `cd .. && rm -rf replaced && ln -s ${decoy} replaced`)
          return {
            tampered: tampered.worktree!.branch,
            replaced: { branch: replaced.worktree!.branch, base: replaced.worktree!.base, path: replaced.cwd },
            conflicted: conflicted.worktree!.branch,
            detached: detached.worktree!.branch,
            locked: locked.worktree!.branch,
            elsewhere: elsewhere.worktree!.branch,
            gitless: gitless.worktree!.branch
          }
        }))
      // Mid-merge: the files as they were, conflict markers included; both lines of history kept.
      expect(show(repo, branches.conflicted, "a.txt")).toMatch(/<<<<<<< HEAD\nmine\n=======\nother\n>>>>>>> other\n/)
      expect(show(repo, branches.conflicted, "new.txt")).toBe("new\n")
      expect(log(repo, "--first-parent", branches.conflicted)).toEqual([
        "conflicted (ramure)|ramure: save the work left in conflicted",
        "conflicted (ramure)|mine",
        "user|init"
      ])
      expect(log(repo, branches.conflicted)).toContain("conflicted (ramure)|other")
      // Detached: its commit is on the branch.
      expect(log(repo, branches.detached)).toContain("detached (ramure)|On a detached HEAD")
      expect(files(repo, branches.detached)).toEqual(["a.txt", "d.txt", "wip.txt"])
      expect(show(repo, branches.locked, "a.txt")).toBe("l\n")
      // Another local branch: its commits are kept too.
      expect(log(repo, branches.elsewhere)).toContain("elsewhere (ramure)|On side")
      expect(show(repo, branches.elsewhere, "back.txt")).toBe("back\n")
      // No repository left: the files, on top of the branch.
      expect(show(repo, branches.gitless, "a.txt")).toBe("g\n")
      expect(show(repo, branches.gitless, "kept.txt")).toBe("kept\n")
      expect(git(repo, "show", "--format=%B", "--no-patch", branches.gitless)).toContain("had no readable HEAD")
      expect(log(repo, branches.tampered)).toEqual(["tampered (ramure)|ramure: save the work left in tampered", "user|init"])
      expect(files(repo, branches.tampered)).toEqual(["a.txt", "t.txt"])
      expect(git(repo, "rev-parse", branches.replaced.branch).trim()).toBe(branches.replaced.base)
      expect(fs.existsSync(branches.replaced.path)).toBe(false)
      expect(fs.readFileSync(path.join(decoy, "precious.txt"), "utf8")).toBe("keep me\n")
      expect(files(repo, branches.replaced.branch)).toEqual(["a.txt"])
      expect(git(repo, "fsck", "--no-progress", "--connectivity-only")).toBe("")
    }))

  it.live("the work is saved when its process fails, times out or is interrupted", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const branches: Array<string> = []
      const leaveWork = (name: string) =>
        Effect.gen(function* () {
          const machine = yield* Machine.make({ name, worktree: { repo } })
          yield* sh(machine, `echo ${name} > ${name}.txt`)
          branches.push(machine.worktree!.branch)
        })
      const failed = yield* Effect.flip(inRun(() => Effect.zipRight(leaveWork("failing"), Process.fail("gave up"))))
      expect(failed._tag).toBe("ProcessFailed")
      const timedOut = yield* Effect.flip(inRun(() => Effect.zipRight(leaveWork("slow"), Effect.never), tempHome(), { timeout: "1 second" }))
      expect(timedOut._tag).toBe("ProcessTimeout")
      const workLeft = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(inRun(() =>
        Effect.gen(function* () {
          yield* leaveWork("interrupted")
          yield* Deferred.succeed(workLeft, undefined)
          return yield* Effect.never
        })))
      yield* Deferred.await(workLeft)
      const interrupted = yield* Fiber.interrupt(fiber)
      expect(interrupted._tag).toBe("Failure")
      expect(branches).toHaveLength(3)
      for (const [i, name] of ["failing", "slow", "interrupted"].entries()) {
        expect(show(repo, branches[i]!, `${name}.txt`)).toBe(`${name}\n`)
      }
    }))

  it.live("diff, changedFiles and commits show the work against base while the agent works and after release", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n", "b.txt": "b\n" })
      const objectsBefore = git(repo, "count-objects")
      const { live, worktree } = yield* inRun(() =>
        Effect.gen(function* () {
          const machine = yield* Machine.make({ name: "agent", worktree: { repo } })
          yield* sh(machine, "echo A > a.txt && git commit -qam 'Change a' && rm b.txt && echo c > c.txt")
          const worktree = machine.worktree!
          const live = { diff: yield* worktree.diff, files: yield* worktree.changedFiles, commits: yield* worktree.commits }
          // Looking while it works leaves nothing in the user's repository.
          expect(git(repo, "count-objects")).toBe(objectsBefore)
          return { worktree, live }
        }))
      expect(live.files).toEqual([{ status: "M", path: "a.txt" }, { status: "D", path: "b.txt" }, { status: "A", path: "c.txt" }])
      expect(live.diff).toContain("-a\n+A\n")
      expect(live.diff).toContain("+++ b/c.txt")
      expect(live.commits.map((c) => [c.author, c.subject])).toEqual([["agent (ramure)", "Change a"]])
      // Released: the same work, read from its branch (with ramure's commit of what was uncommitted).
      expect(yield* worktree.changedFiles).toEqual(live.files)
      expect(yield* worktree.diff).toBe(live.diff)
      expect((yield* worktree.commits).map((c) => c.subject)).toEqual(["ramure: save the work left in agent", "Change a"])
    }))

  it.live("given one of the user's own linked worktrees, the branch starts from its HEAD and merges go into its branch", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const linked = path.join(path.dirname(repo), "linked")
      git(repo, "worktree", "add", "--quiet", "-b", "feature", linked)
      writeFiles(linked, { "feature.txt": "feature\n" })
      git(linked, "add", "feature.txt")
      git(linked, "commit", "--quiet", "-m", "Feature")
      const worktree = yield* inRun(() =>
        Effect.gen(function* () {
          const machine = yield* Machine.make({ name: "agent", worktree: { repo: linked } })
          expect(machine.worktree!.base).toBe(git(linked, "rev-parse", "HEAD").trim())
          yield* sh(machine, "cat feature.txt && echo agent > agent.txt")
          return machine.worktree!
        }))
      const merged = yield* merge(linked, { branches: [worktree] })
      expect(merged.into).toBe("feature")
      expect(fs.readFileSync(path.join(linked, "agent.txt"), "utf8")).toBe("agent\n")
      expect(git(repo, "rev-parse", "main").trim()).not.toBe(merged.commit)
      expect(fs.existsSync(path.join(repo, "agent.txt"))).toBe(false)
    }))

  it.live("merge fast-forwards, then merges, into the checked-out branch, updating the user's files", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n", "b.txt": "b\n" })
      const worktrees = yield* inRun(() =>
        Effect.forEach(["a", "b"], (name) =>
          Effect.gen(function* () {
            const machine = yield* Machine.make({ name: `fix-${name}`, worktree: { repo } })
            yield* sh(machine, `echo ${name.toUpperCase()} > ${name}.txt && git commit -qam 'Fix ${name}'`)
            return machine.worktree!
          }), { concurrency: "unbounded" }))
      writeFiles(repo, { "untracked.txt": "mine\n" })
      const result = yield* merge(repo, { branches: worktrees })
      expect(result.into).toBe("main")
      expect(result.merged.map((m) => m.how)).toEqual(["fast-forward", "merge"])
      expect(git(repo, "rev-parse", "HEAD").trim()).toBe(result.commit)
      expect(log(repo, "--first-parent", "main")).toEqual(["user|Merge branch 'ramure/" + worktrees[1]!.branch.split("/")[1] + "/fix-b' into main", "fix-a (ramure)|Fix a", "user|init"])
      expect(fs.readFileSync(path.join(repo, "a.txt"), "utf8")).toBe("A\n")
      expect(fs.readFileSync(path.join(repo, "b.txt"), "utf8")).toBe("B\n")
      expect(git(repo, "status", "--porcelain")).toBe("?? untracked.txt\n")
      // Merging again changes nothing.
      const again = yield* merge(repo, { branches: worktrees })
      expect(again.merged.map((m) => m.how)).toEqual(["up-to-date", "up-to-date"])
      expect(again.commit).toBe(result.commit)
    }))

  it.live("a merge conflict is a MergeConflict naming the branch and files, and leaves the repository as it was", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n", "b.txt": "b\n" })
      const worktrees = yield* inRun(() =>
        Effect.forEach(["one", "two"], (name) =>
          Effect.gen(function* () {
            const machine = yield* Machine.make({ name, worktree: { repo } })
            yield* sh(machine, `echo ${name} > a.txt && echo ${name} > b.txt`)
            return machine.worktree!
          })))
      writeFiles(repo, { "wip.txt": "user's work\n" })
      const before = checkoutState(repo)
      const refs = git(repo, "for-each-ref")
      const conflict = yield* Effect.flip(merge(repo, { branches: worktrees }))
      expect(conflict).toMatchObject({ _tag: "MergeConflict", repo, into: "main", branch: worktrees[1]!.branch, files: ["a.txt", "b.txt"] })
      expect(conflict.message).toBe(`merging ${worktrees[1]!.branch} into main conflicts in a.txt, b.txt; ${repo} is unchanged`)
      expect(checkoutState(repo)).toEqual(before)
      expect(git(repo, "for-each-ref")).toBe(refs)
    }))

  it.live("merge refuses to overwrite the user's local changes, and changes nothing", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const worktree = yield* inRun(() =>
        Effect.gen(function* () {
          const machine = yield* Machine.make({ name: "agent", worktree: { repo } })
          yield* sh(machine, "echo agent > a.txt")
          return machine.worktree!
        }))
      writeFiles(repo, { "a.txt": "user's edit\n" })
      const before = checkoutState(repo)
      const refused = yield* Effect.flip(merge(repo, { branches: [worktree] }))
      expect(refused).toMatchObject({ _tag: "WorktreeError", operation: "merge", message: expect.stringContaining("a.txt") })
      expect(checkoutState(repo)).toEqual(before)
      // Into a branch that is not checked out, the same merge just moves the branch.
      git(repo, "branch", "integration")
      const merged = yield* merge(repo, { branches: [worktree], into: "integration" })
      expect(git(repo, "rev-parse", "integration").trim()).toBe(merged.commit)
      expect(checkoutState(repo)).toEqual(before)
    }))
})

describe("Worktree machines of a run that is stopped", () => {
  /** Start the fixture on `repo`; its execution id and checkout once its worktree holds work. */
  const startRun = (repo: string, home: string) =>
    Effect.async<{ child: ReturnType<typeof spawn>; executionId: string; checkout: string; exited: Promise<unknown> }, Error>((resume) => {
      const child = spawn(process.execPath, ["--import", "tsx", path.join(__dirname, "fixtures/worktree-run.ts"), repo, home], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const exited = new Promise((done) => child.on("exit", done))
      let output = ""
      child.stderr!.on("data", (data) => (output += data))
      child.stdout!.on("data", (data) => {
        output += data
        const line = output.split("\n").find((l) => l.startsWith("{"))
        if (line !== undefined) {
          const { path: checkout, ready } = JSON.parse(line)
          resume(Effect.succeed({ child, executionId: ready, checkout, exited }))
        }
      })
      child.on("exit", () => resume(Effect.fail(new Error(`the run exited early:\n${output}`))))
    })

  const expectSaved = (repo: string, executionId: string, checkout: string) => {
    const branch = `ramure/${executionId.slice(0, 8)}/keeper`
    expect(log(repo, branch)).toEqual(["keeper (ramure)|ramure: save the work left in keeper", "keeper (ramure)|Keep this", "user|init"])
    expect(files(repo, branch)).toEqual(["a.txt", "committed.txt", "uncommitted.txt"])
    expect(fs.existsSync(checkout)).toBe(false)
  }

  it.live("SIGTERM: the work is committed to the branch and the checkout removed", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const before = checkoutState(repo)
      const run = yield* startRun(repo, tempHome())
      run.child.kill("SIGTERM")
      yield* Effect.promise(() => run.exited)
      expectSaved(repo, run.executionId, run.checkout)
      expect(checkoutState(repo)).toEqual(before)
    }), { timeout: 90_000 })

  it.live("after a SIGKILL, the next run commits the work to the branch and removes the checkout", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const home = tempHome()
      const run = yield* startRun(repo, home)
      run.child.kill("SIGKILL")
      yield* Effect.promise(() => run.exited)
      expect(fs.existsSync(run.checkout)).toBe(true)
      const collected = yield* Effect.gen(function* () {
        const runLog = yield* RunLog
        return yield* runLog.entries().pipe(
          Stream.filter((entry) => entry.event._tag === "WorktreeCollected"),
          Stream.take(1),
          Stream.runCollect
        )
      }).pipe(Effect.provide(scripted({}, { home, register: false })))
      expect([...collected][0]!.event).toMatchObject({
        executionId: run.executionId,
        machine: "keeper",
        repo,
        released: { _tag: "Saved", branch: `ramure/${run.executionId.slice(0, 8)}/keeper`, committed: true }
      })
      expectSaved(repo, run.executionId, run.checkout)
      expect(fs.readdirSync(path.join(home, "worktrees"))).toEqual([])
    }), { timeout: 90_000 })

  it.live("a resumed run takes over the worktree its dead orchestrator made: the same checkout, branch and work", () =>
    Effect.gen(function* () {
      const repo = makeRepo({ "a.txt": "a\n" })
      const home = tempHome()
      const executionId = crypto.randomUUID()
      const context = { machine: "keeper", executionId, home, path: path.join(home, "work", executionId, "keeper") }
      // The first orchestrator makes it and dies: its scope is never closed.
      const first = yield* GitWorktree.make({ repo }, context).pipe(Scope.extend(yield* Scope.make()))
      writeFiles(first.path, { "b.txt": "work before the crash\n" })

      const scope = yield* Scope.make()
      const again = yield* GitWorktree.make({ repo }, { ...context, adopt: true }).pipe(Scope.extend(scope))
      expect({ path: again.path, branch: again.branch, base: again.base }).toEqual({ path: first.path, branch: first.branch, base: first.base })
      expect(fs.readFileSync(path.join(again.path, "b.txt"), "utf8")).toBe("work before the crash\n")
      expect((yield* again.changedFiles).map((file) => file.path)).toEqual(["b.txt"])
      yield* Scope.close(scope, Exit.void)
      expect(fs.existsSync(again.path)).toBe(false)
      expect(show(repo, again.branch, "b.txt")).toBe("work before the crash\n")

      // Without `adopt`, the same machine is refused: its branch exists.
      const refused = yield* Effect.flip(Effect.scoped(GitWorktree.make({ repo }, context)))
      expect(refused._tag).toBe("BranchExists")
    }).pipe(Effect.provide(NodeContext.layer)))
})
