/**
 * Figure 7 — CLI start-up: wall time of `ramure ls` (no live run) and
 * `ramure status` of a live run with 10 agents, against `node -e 0`, runs
 * interleaved.
 */
import { Effect } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { interleaved, now, type FigureResult, type Size } from "./lib/Figure.js"
import { forkChild, repoRoot } from "./lib/child.js"
import { tempDirectory } from "./lib/harness.js"

const title = "CLI start-up"
const cliDirectory = path.join(repoRoot, "packages", "cli")
const bin = path.join(cliDirectory, "bin", "ramure.js")
const bundle = path.join(cliDirectory, "dist", "ramure.js")

const newestSource = (directory: string): number =>
  fs.readdirSync(directory, { withFileTypes: true }).reduce((newest, entry) => {
    const file = path.join(directory, entry.name)
    return Math.max(newest, entry.isDirectory() ? newestSource(file) : fs.statSync(file).mtimeMs)
  }, 0)

/** Build the CLI bundle (`node packages/cli/build.mjs`) unless it is newer than its sources. */
const ensureBuilt = () => {
  const built = fs.existsSync(bundle) ? fs.statSync(bundle).mtimeMs : 0
  if (built < newestSource(path.join(cliDirectory, "src"))) {
    execFileSync(process.execPath, [path.join(cliDirectory, "build.mjs")], { cwd: cliDirectory, stdio: "ignore" })
  }
}

/** Wall time of one command, in ms; fails on a non-zero exit. */
const time = (args: ReadonlyArray<string>, home: string) => {
  const started = now()
  const result = spawnSync(process.execPath, args, { env: { ...process.env, RAMURE_HOME: home }, encoding: "utf8" })
  const ms = now() - started
  if (result.status !== 0) throw new Error(`node ${args.join(" ")} exited ${result.status}: ${result.stderr}`)
  return { ms, stdout: result.stdout }
}

export const cliStartup = (size: Size) =>
  Effect.gen(function* () {
    if (!fs.existsSync(path.join(cliDirectory, "src", "main.ts"))) {
      return { id: 7, title, method: "", metrics: [], skipped: "packages/cli is not there" } satisfies FigureResult
    }
    ensureBuilt()
    const rounds = size === "full" ? 10 : 1
    const agents = 10
    const emptyHome = yield* tempDirectory("cli-empty")
    const liveHome = yield* tempDirectory("cli-live")
    const child = yield* forkChild<{ readonly executionId: string }>("lib/liveRunChild.ts", [String(agents), liveHome])
    const { executionId } = yield* child.receive.pipe(Effect.timeout("120 seconds"))
    const id = executionId.slice(0, 8)

    // Sanity: the CLI sees the live run and its agents.
    const reported = JSON.parse(time([bin, "status", id, "--json"], liveHome).stdout) as { agents: ReadonlyArray<unknown>; live: boolean }
    if (!reported.live || reported.agents.length !== agents) {
      return yield* Effect.dieMessage(`ramure status saw ${reported.agents.length} agents (live: ${reported.live})`)
    }
    time([bin, "ls"], emptyHome)

    const samples = { node: [] as Array<number>, ls: [] as Array<number>, status: [] as Array<number> }
    for (const step of interleaved(rounds, ["node", "ls", "status"] as const)) {
      if (step === "node") samples.node.push(time(["-e", "0"], emptyHome).ms)
      else if (step === "ls") samples.ls.push(time([bin, "ls"], emptyHome).ms)
      else samples.status.push(time([bin, "status", id], liveHome).ms)
    }
    const result: FigureResult = {
      id: 7,
      title,
      method:
        `${rounds} interleaved rounds of \`node -e 0\`, \`ramure ls\` (empty RAMURE_HOME) and \`ramure status <id>\` of a live ` +
        `scripted run with ${agents} agents (in another process); \`node packages/cli/bin/ramure.js\` (esbuild bundle), wall time ` +
        `from spawn to exit.`,
      metrics: [
        { name: "node -e 0", unit: "ms", samples: samples.node, digits: 0 },
        { name: "ramure ls (no live run)", unit: "ms", samples: samples.ls, target: { op: "<=", value: 500 }, digits: 0 },
        { name: `ramure status (live run, ${agents} agents)`, unit: "ms", samples: samples.status, digits: 0 },
        { name: "ramure ls / node -e 0", unit: "×", samples: samples.ls.map((ms, i) => ms / samples.node[i]!), digits: 2 }
      ],
      counts: { agentsReported: reported.agents.length },
      notes: [
        "`ramure ls` does almost no work (reads one directory); its time over `node -e 0` is loading and initialising the " +
          "CLI bundle (~0.7 MB of minified JS: effect, @effect/cli, @effect/platform). On this loaded machine even `node -e 0` " +
          "takes the time shown in the first row."
      ]
    }
    return result
  }).pipe(Effect.scoped)
