/**
 * `npm run bench`: run every figure, print a table, rewrite BENCHMARKS.md.
 *
 *   npm run bench                  full size, writes BENCHMARKS.md
 *   npm run bench -- --smoke       small sizes, prints only
 *   npm run bench -- --only 1,2    some figures, prints only (add --write to update theirs in BENCHMARKS.md)
 */
import { Cause, Effect, Exit } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { buildIfStale } from "../packages/pi/src/internal/piExtension.js"
import { figures } from "./figures.js"
import type { FigureResult, Size } from "./lib/Figure.js"
import { repoRoot } from "./lib/child.js"
import { environment, markdown, merge, table } from "./lib/report.js"

const args = process.argv.slice(2)
const size: Size = args.includes("--smoke") ? "smoke" : "full"
const onlyIndex = args.indexOf("--only")
const only = onlyIndex === -1 ? undefined : new Set(args[onlyIndex + 1]?.split(",").map(Number))
const write = args.includes("--write") || (size === "full" && only === undefined && !args.includes("--no-write"))

const commit = (): string | undefined => {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    return dirty.length > 0 ? `${head} + uncommitted changes` : head
  } catch {
    return undefined
  }
}

const main = async () => {
  // The figures with real pi measure the extension users get: built, from these sources.
  buildIfStale()
  const env = environment()
  const started = performance.now()
  const results: Array<FigureResult> = []
  let failed = false
  for (const figure of figures) {
    if (only !== undefined && !only.has(figure.id)) continue
    const figureStarted = performance.now()
    process.stderr.write(`figure ${figure.id} (${figure.name}, ${size}) … `)
    const exit = await Effect.runPromiseExit(figure.run(size))
    const seconds = ((performance.now() - figureStarted) / 1000).toFixed(1)
    if (Exit.isSuccess(exit)) {
      results.push(exit.value)
      process.stderr.write(`${exit.value.skipped === undefined ? "done" : `skipped (${exit.value.skipped})`} in ${seconds} s\n`)
    } else {
      failed = true
      const message = Cause.pretty(exit.cause)
      results.push({ id: figure.id, title: figure.name, method: "", metrics: [], skipped: `failed: ${message.split("\n")[0]}` })
      process.stderr.write(`FAILED in ${seconds} s\n${message}\n`)
    }
  }
  console.log(table(results))
  if (write) {
    const file = path.join(repoRoot, "BENCHMARKS.md")
    const measured = { ...env, commit: commit(), loadAfter: os.loadavg(), durationS: (performance.now() - started) / 1000, size }
    // Some figures only: they replace theirs in the existing file, the others stay.
    const existing = only !== undefined && fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined
    fs.writeFileSync(file, existing === undefined ? markdown(results, measured) : merge(existing, results, measured))
    console.log(`\nwrote ${path.relative(process.cwd(), file) || file}`)
  }
  process.exitCode = failed ? 1 : 0
}

main()
