/**
 * Figure 6 — log throughput: log entries per second the JSONL LogSink writes
 * while 10 scripted agents call tools back to back (the load of figure 2),
 * and a check that nothing is lost: after the run, every entry number 1…n is
 * on disk exactly once.
 */
import * as JsonlLogSink from "@ramure/node/JsonlLogSink"
import { logsDirectory, RunInfo } from "@ramure/core/RunInfo"
import * as RunLog from "@ramure/core/RunLog"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { now, type FigureResult, type Size } from "./lib/Figure.js"
import { scriptedRun, tempDirectory } from "./lib/harness.js"
import { closedLoop, echoScripts, startEchoAgents, TEXT } from "./lib/load.js"

/** The log files of a run's directory (its `.jsonl` files; not STATUS.md). */
const logFiles = (directory: string): Array<string> => fs.readdirSync(directory).filter((name) => name.endsWith(".jsonl"))

/** Newlines in every log file of the run's log directory (read synchronously: a consistent snapshot). */
const linesOnDisk = (directory: string): number => {
  let lines = 0
  for (const name of logFiles(directory)) {
    const data = fs.readFileSync(path.join(directory, name))
    for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) lines++
  }
  return lines
}

/** Entry numbers found on disk: total lines, highest `n`, how many of 1…n are missing or doubled. */
const audit = (directory: string) => {
  const seen = new Map<number, number>()
  let lines = 0
  for (const name of logFiles(directory)) {
    for (const line of fs.readFileSync(path.join(directory, name), "utf8").split("\n")) {
      if (line.length === 0) continue
      lines++
      const n = (JSON.parse(line) as { n: number }).n
      seen.set(n, (seen.get(n) ?? 0) + 1)
    }
  }
  let highest = 0
  for (const n of seen.keys()) highest = Math.max(highest, n)
  let missing = 0
  let doubled = 0
  for (let n = 1; n <= highest; n++) {
    const count = seen.get(n) ?? 0
    if (count === 0) missing++
    if (count > 1) doubled += count - 1
  }
  return { lines, highest, missing, doubled }
}

/**
 * The log alone: `count` entries logged back to back (yielding every 1,000 so
 * the writer runs), over 10 agent files and the run's file.
 */
const sinkAlone = (count: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const home = yield* tempDirectory("sink")
      const info = RunInfo.of({ executionId: "sink-bench", home, program: "bench", resumed: false })
      let started = 0
      yield* Effect.scoped(
        Effect.gen(function* () {
          const runLog = yield* RunLog.RunLog
          started = now()
          for (let n = 1; n <= count; n++) {
            yield* runLog.log(
              { process: "bench", ...(n % 11 === 0 ? {} : { agent: `w${n % 11}` }) },
              { _tag: "ToolReturned", callId: `w-${n}`, tool: "echo", isError: false, text: TEXT, durationMs: 0 }
            )
            if (n % 1_000 === 0) yield* Effect.sleep(0)
          }
        }).pipe(
          Effect.provide(RunLog.layer.pipe(Layer.provide(JsonlLogSink.layer), Layer.provide(Layer.succeed(RunInfo, info))))
        )
      )
      // Timed until the layer has closed, so every line is on disk.
      const seconds = (now() - started) / 1000
      return { rate: count / seconds, audit: audit(logsDirectory(home, info.executionId)) }
    })
  )

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
          const info = yield* RunInfo
          const runLog = yield* RunLog.RunLog
          /** The number of the latest entry (the mark itself is one). */
          const latest = Effect.map(runLog.log({ process: "bench" }, { _tag: "ProcessEmitted", type: "mark" }), (entry) => entry.n)
          directory = logsDirectory(info.home, info.executionId)
          const all = yield* startEchoAgents(agents, drivers)
          yield* closedLoop(all, 200)
          const entriesBefore = yield* latest
          const linesBefore = linesOnDisk(directory)
          const started = now()
          yield* closedLoop(all, durationMs)
          const entriesAfter = yield* latest
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
    const alone: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      const { audit: found, rate } = yield* sinkAlone(size === "full" ? 200_000 : 5_000)
      alone.push(rate)
      counts.entriesLogged += found.highest
      counts.linesOnDisk += found.lines
      counts.missing += found.missing
      counts.doubled += found.doubled
    }
    const result: FigureResult = {
      id: 6,
      title: "Log throughput",
      method:
        `${agents} scripted agents call \`echo\` back to back for ${durationMs / 1000} s (figure 2's load) in a fresh run, ` +
        `${rounds} runs; lines appended to the JSONL files during the window (files read at its start and end) ` +
        `vs log entries the runtime produced; after each run, every entry number 1…n must be on disk exactly once. ` +
        `"The log alone": ${size === "full" ? "200,000" : "5,000"} tool-result entries logged straight into a \`RunLog\` over a ` +
        `\`JsonlLogSink\` (10 agent files and the run's), until the layer has closed; audited the same way.`,
      metrics: [
        { name: "entries logged by the runtime", unit: "entries/s", samples: produced },
        { name: "lines written by the JSONL sink", unit: "lines/s", samples: written },
        { name: "backlog at the end of the window", unit: "entries", samples: backlog, digits: 0 },
        { name: "the log alone: entries logged back to back", unit: "lines/s", samples: alone, digits: 0 },
        {
          name: "entries lost (missing + doubled)",
          unit: "entries",
          samples: [counts.missing + counts.doubled],
          target: { op: "<=", value: 0 },
          digits: 0
        }
      ],
      counts,
      notes: [
        "The log keeps up with everything the run logs (no backlog at the end of the window): a writer fiber takes every " +
          "pending entry at once and appends them with one `write` per file; what an agent is told waits for its entry to be " +
          "written. The rate is set by the tool-call rate (two entries per call, `ToolCalled` and `ToolReturned`), not by the log."
      ]
    }
    return result
  })
