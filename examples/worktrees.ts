/**
 * Three agents fix three bugs of one repository at once, each in its own
 * worktree on its own branch and in a sandbox (it sees its worktree, not
 * your home or your checkout); the process then reads their work and merges
 * their branches into the repository's current branch.
 *
 *   npx tsx examples/worktrees.ts [directory]
 *
 * The repository is a small demo project created in `directory` (default: a
 * fresh temporary directory, printed and kept for you to look at) with three
 * failing tests: `node test.js` runs them all, `node test.js <name>` one.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Agent, Machine, Process, ScriptedModel, Worktree } from "ramure"
import { Console, Effect, Schema } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as support from "./support.js"

/** The three bugs: each module, the line that is wrong, and the fix. */
const bugs = {
  slug: {
    source: "module.exports = (title) => title.trim().replace(/[^A-Za-z0-9]+/g, \"-\")\n",
    test: "assert.equal(slug(' Hello, World '), 'hello-world')",
    wrong: "title.trim()",
    right: "title.trim().toLowerCase()",
    message: "Lowercase slugs"
  },
  median: {
    source: "module.exports = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]\n",
    test: "assert.equal(median([4, 1, 3, 2]), 2.5)",
    wrong: "module.exports = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]",
    right:
      "module.exports = (xs) => {\n  const s = [...xs].sort((a, b) => a - b), m = Math.floor(s.length / 2)\n  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2\n}",
    message: "Average the middle pair of an even-length list"
  },
  clamp: {
    source: "module.exports = (x, lo, hi) => Math.min(lo, Math.max(hi, x))\n",
    test: "assert.equal(clamp(5, 0, 10), 5); assert.equal(clamp(-1, 0, 10), 0)",
    wrong: "Math.min(lo, Math.max(hi, x))",
    right: "Math.max(lo, Math.min(hi, x))",
    message: "Clamp between lo and hi"
  }
} as const
type Bug = keyof typeof bugs
const names = Object.keys(bugs) as Array<Bug>

const testScript = [
  "const assert = require('node:assert')",
  ...names.map((name) => `const ${name} = require('./src/${name}.js')`),
  "const tests = {",
  ...names.map((name) => `  ${name}: () => { ${bugs[name].test} },`),
  "}",
  "let failed = 0",
  "for (const [name, run] of Object.entries(tests)) {",
  "  if (process.argv[2] && process.argv[2] !== name) continue",
  "  try { run(); console.log(`ok ${name}`) } catch (error) { failed++; console.log(`FAIL ${name}: ${error.message.split('\\n')[0]}`) }",
  "}",
  "process.exit(failed ? 1 : 0)"
].join("\n") + "\n"

/** A git repository with the three bugs, committed on `main`. */
const demoRepository = (directory: string): string => {
  const repo = path.join(directory, "demo")
  fs.mkdirSync(path.join(repo, "src"), { recursive: true })
  for (const name of names) fs.writeFileSync(path.join(repo, "src", `${name}.js`), bugs[name].source)
  fs.writeFileSync(path.join(repo, "test.js"), testScript)
  const git = (...args: Array<string>) => execFileSync("git", args, { cwd: repo, stdio: "ignore" })
  git("init", "--quiet", "--initial-branch=main")
  git("add", ".")
  git("-c", "user.name=demo", "-c", "user.email=demo@example.com", "commit", "--quiet", "-m", "Demo project with three bugs")
  return repo
}

const Done = Schema.Struct({ summary: Schema.String.annotations({ description: "one line: what you changed" }) })

/** What one fix comes to. */
const Fixed = Schema.Struct({
  bug: Schema.Literal("slug", "median", "clamp"),
  summary: Schema.String,
  branch: Schema.String,
  commits: Schema.Array(Schema.String)
})

/** One agent fixes one bug in its own sandboxed worktree; its branch holds the fix once it is released. */
const fix = Process.make("fix", (repo: string, bug: Bug) =>
  Effect.gen(function* () {
    const agent = yield* Agent.make(`fix-${bug}`, {
      worktree: { repo },
      sandbox: true,
      systemPrompt: "You fix bugs in small JavaScript projects. Change only what the task asks for."
    })
    const worktree = agent.machine.worktree!
    yield* agent.on("done", { description: "Report that the fix is committed", parameters: Done }, ({ summary }) =>
      Effect.gen(function* () {
        const commits = yield* worktree.commits
        return yield* Process.done({ bug, summary, branch: worktree.branch, commits: commits.map((c) => c.subject) })
      }))
    yield* agent.send(
      `\`node test.js ${bug}\` fails. Fix src/${bug}.js (nothing else), check that the test passes, ` +
        "commit the fix with a one-line message, then call done."
    )
    return yield* Process.wait()
  }),
  { timeout: "10 minutes", success: Fixed }
)

const fixAll = Process.make("fix-all", (repo: string) =>
  Effect.gen(function* () {
    // Each child process releases its agent when it ends: the agent's branch then holds its work.
    const fixes = yield* Effect.all(names.map((bug) => fix(repo, bug)), { concurrency: "unbounded" })
    for (const { branch, bug, commits, summary } of fixes) {
      yield* Console.log(`${bug.padEnd(7)} ${branch}  ${commits.join("; ")}  (${summary})`)
    }
    const merged = yield* Worktree.merge(repo, { branches: fixes.map((f) => f.branch) })
    yield* Console.log(`merged ${merged.merged.length} branches into ${merged.into} (${merged.merged.map((m) => m.how).join(", ")})`)
    // A plain machine on the repository itself, to run the tests on the merged result.
    const checkout = yield* Machine.make({ name: "checkout", cwd: repo })
    const tests = yield* checkout.exec("node test.js")
    yield* Console.log(tests.stdout.trimEnd())
    return tests.exitCode === 0 ? "all tests pass" : yield* Process.fail("tests still fail after the merge")
  }))

/** What the scripted model does for each agent: run the test, edit, test and commit, report. */
const script = (bug: Bug): ScriptedModel.Script => [
  support.call("bash", { command: `node test.js ${bug}` }),
  support.call("edit", { path: `src/${bug}.js`, edits: [{ oldText: bugs[bug].wrong, newText: bugs[bug].right }] }),
  support.call("bash", { command: `node test.js ${bug} && git commit -qam '${bugs[bug].message}' && git log --oneline -1` }),
  support.call("done", { summary: `${bugs[bug].message.toLowerCase()} in src/${bug}.js` }),
  support.say("Fixed and committed.")
]

const directory = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), "ramure-worktrees-"))
const repo = demoRepository(directory)

Console.log(`repository: ${repo}`).pipe(
  Effect.zipRight(fixAll(repo)),
  Effect.tap((result) => Console.log(result)),
  Effect.provide(support.layer(Object.fromEntries(names.map((bug) => [`fix-${bug}`, script(bug)])), { program: "worktrees" })),
  NodeRuntime.runMain
)
