/**
 * Figure 6 — log throughput: log entries per second the JSONL LogSink writes
 * while 10 scripted agents call tools back to back (the load of figure 2),
 * and a check that nothing is lost: after the run, every entry number 1…n is
 * on disk exactly once.
 */
import { Runtime } from "@ramure/core/Runtime"
import { logsDirectory } from "@ramure/core/RunInfo"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { now, type FigureResult, type Size } from "./lib/Figure.js"
import { scriptedRun, tempDirectory } from "./lib/harness.js"
import { closedLoop, echoScripts, startEchoAgents } from "./lib/load.js"

/** Newlines in every file of the run's log directory (read synchronously: a consistent snapshot). */
const linesOnDisk = (directory: string): number => {
  let lines = 0
  for (const name of fs.readdirSync(directory)) {
    const data = fs.readFileSync(path.join(directory, name))
    for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) lines++
  }
  return lines
}

/** Entry numbers found on disk: total lines, highest `n`, how many of 1…n are missing or doubled. */
const audit = (directory: string) => {
  const seen = new Map<number, number>()
  let lines = 0
  for (const name of fs.readdirSync(directory)) {
    for (const line of fs.readFileSync(path.join(directory, name), "utf8").split("\n")) {
      if (line.length === 0) continue
      lines++
      const n = (JSON.parse(line) as { n: number }).n
      seen.set(n, (seen.get(n) ?? 0) + 1)
    }
  }
  const highest = Math.max(0, ...seen.keys())
  let missing = 0
  let doubled = 0
  for (let n = 1; n <= highest; n++) {
    const count = seen.get(n) ?? 0
    if (count === 0) missing++
    if (count > 1) doubled += count - 1
  }
  return { lines, highest, missing, doubled }
}

export const logThroughput = (size: Size) =>
  Effect.gen(function* () {
    const rounds = size === "full" ? 5 : 2
    const durationMs = size === "full" ? 2_000 : 250
    const agents = 10
    const written: Array<number> = []
    const produced: Array<number> = []
    const backlog: Array<number> = []
    const counts = { entriesLogged: 0, linesOnDisk: 0, missing: 0, doubled: 0 }
    for (let round = 0; round < rounds; round++) yield* Effect.scoped(Effect.gen(function* () {
      const { drivers, scripts } = echoScripts()
      const home = yield* tempDirectory("home")
      let directory = ""
      yield* scriptedRun(scripts, () =>
        Effect.gen(function* () {
          const runtime = yield* Runtime
          directory = logsDirectory(runtime.info.home, runtime.executionId)
          const all = yield* startEchoAgents(agents, drivers)
          yield* closedLoop(all, 200)
          const entriesBefore = yield* runtime.entries.size
          const linesBefore = linesOnDisk(directory)
          const started = now()
          yield* closedLoop(all, durationMs)
          const entriesAfter = yield* runtime.entries.size
          const linesAfter = linesOnDisk(directory)
          const seconds = (now() - started) / 1000
          produced.push((entriesAfter - entriesBefore) / seconds)
          written.push((linesAfter - linesBefore) / seconds)
          backlog.push(entriesAfter - linesAfter)
        }),
        { home }
      )
      // The run is over and its log closed: every entry must be on disk.
      const found = audit(directory)
      counts.entriesLogged += found.highest
      counts.linesOnDisk += found.lines
      counts.missing += found.missing
      counts.doubled += found.doubled
    }))
    const result: FigureResult = {
      id: 6,
      title: "Log throughput",
      method:
        `${agents} scripted agents call \`echo\` back to back for ${durationMs / 1000} s (figure 2's load) in a fresh run, ` +
        `${rounds} runs; lines appended to the JSONL files during the window (files read at its start and end) ` +
        `vs log entries the runtime produced; after each run, every entry number 1…n must be on disk exactly once.`,
      metrics: [
        { name: "entries logged by the runtime", unit: "entries/s", samples: produced },
        { name: "lines written by the JSONL sink", unit: "lines/s", samples: written },
        { name: "backlog at the end of the window", unit: "entries", samples: backlog, digits: 0 },
        {
          name: "entries lost (missing + doubled)",
          unit: "entries",
          samples: [counts.missing + counts.doubled],
          target: { op: "<=", value: 0 },
          digits: 0
        }
      ],
      counts
    }
    return result
  })
