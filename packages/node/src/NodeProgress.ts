/**
 * A live progress line on stderr while a run works — agents starting, ready,
 * working, done; tool calls; tokens and cost so far; what happened last —
 * as build tools show, then one line that sums the run up. Only when stderr
 * is a terminal, and not when turned off (`progress: false`, or
 * `RAMURE_PROGRESS=0`). Built on the run's log: its entries say what
 * happened last, its status counts the rest.
 *
 * Whatever else the program writes to the terminal meanwhile is written
 * above the line: the line is erased first and drawn again after.
 */
import { Effect, Layer, Schedule } from "effect"
import type { LogEntry } from "@ramure/core/RunEvent"
import { RunLog } from "@ramure/core/RunLog"
import type { RunStatus } from "@ramure/core/RunStatus"

export interface Options {
  /** Show the progress line when stderr is a terminal (default true; `RAMURE_PROGRESS=0` turns it off too). */
  readonly progress?: boolean
}

/** Whether a run shows its progress line. */
export const enabled = (
  options: Options,
  env: NodeJS.ProcessEnv = process.env,
  isTTY: boolean = process.stderr.isTTY === true
): boolean => isTTY && options.progress !== false && !/^(0|false|off|no)$/i.test(env.RAMURE_PROGRESS?.trim() ?? "")

const spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

/** A name from the run (agent ids are safe already; tool names come from the agent) fit for the terminal. */
const safe = (name: string): string => name.replace(/[^A-Za-z0-9_.:/-]/g, "?").slice(0, 40)

/** `950`, `12.3k`, `4.5M`. */
export const count = (n: number): string =>
  n < 1000 ? String(n) : n < 1_000_000 ? `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k` : `${(n / 1_000_000).toFixed(1)}M`

/** `45s`, `3m05s`, `1h02m`. */
export const duration = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** What an entry says about an agent, in a few words (`undefined`: nothing worth showing). */
export const activity = (entry: LogEntry): string | undefined => {
  if (entry.agent === undefined) return undefined
  const agent = safe(entry.agent)
  const event = entry.event
  switch (event._tag) {
    case "AgentCreated":
      return `${agent} starting`
    case "AgentConnected":
      return event.first ? `${agent} ready` : `${agent} reconnected`
    case "WorkStarted":
      return `${agent} working`
    case "TurnStarted":
      return `${agent} asks the model`
    case "ToolCalled":
      return `${agent} → ${safe(event.tool)}`
    case "ToolExecutionStarted":
      return `${agent} runs ${safe(event.tool)}`
    case "MessageDelivered":
      return event.from === undefined ? `${agent} got a message` : `${agent} got a message from ${safe(event.from)}`
    case "WorkEnded":
      return `${agent} idle`
    case "BudgetExceeded":
      return `${agent} over its budget (${event.kind})`
    case "AgentCrashed":
      return `${agent} crashed`
    case "AgentStartFailed":
      return `${agent} failed to start`
    case "AgentReleased":
      return `${agent} done`
    default:
      return undefined
  }
}

const states = [["starting", "starting"], ["idle", "ready"], ["working", "working"], ["done", "done"], ["crashed", "crashed"]] as const

/** `3 agents: 1 starting · 2 working │ 4 tool calls │ 1.2k→300 tokens $0.0123` */
export const summary = (status: RunStatus): string => {
  const agents = status.agents
  const byState = states
    .map(([state, label]) => [agents.filter((agent) => agent.state === state).length, label] as const)
    .filter(([n]) => n > 0)
    .map(([n, label]) => `${n} ${label}`)
    .join(" · ")
  const { cost, inputTokens, outputTokens, piToolCalls, toolCalls } = status.totals
  const calls = toolCalls + piToolCalls
  return [
    `${agents.length} agent${agents.length === 1 ? "" : "s"}: ${byState}`,
    `${calls} tool call${calls === 1 ? "" : "s"}`,
    `${count(inputTokens)}→${count(outputTokens)} tokens $${cost.toFixed(4)}`
  ].join(" │ ")
}

/** The live line: spinner, summary, what happened last; cut to the terminal's width. */
export const line = (status: RunStatus, last: string | undefined, frame: number, columns: number): string => {
  const text = `${spinner[frame % spinner.length]} ${summary(status)}${last === undefined ? "" : ` │ ${last}`}`
  const width = Math.max(10, columns - 1)
  return text.length > width ? `${text.slice(0, width - 1)}…` : text
}

/** The line left when the run is over. */
export const finalLine = (status: RunStatus, elapsedMs: number): string =>
  `ramure: run ${status.outcome ?? "ended"} after ${duration(elapsedMs)} │ ${summary(status)}`

const ERASE = "\r\u001b[2K"

type Write = typeof process.stderr.write

/**
 * The line at the bottom of the terminal. Writes of the program to the same
 * terminal erase it first, and draw it again once they end a line.
 */
const makeTerminal = (stderr: NodeJS.WriteStream, stdout: NodeJS.WriteStream) => {
  const write: Write = stderr.write.bind(stderr) as Write
  const streams = stdout.isTTY ? [stderr, stdout] : [stderr]
  const originals = streams.map((stream) => [stream, stream.write] as const)
  let shown = ""
  let atLineStart = true
  for (const [stream, original] of originals) {
    stream.write = ((chunk: any, ...rest: Array<any>) => {
      if (shown !== "") write(ERASE)
      const result = (original as Write).call(stream, chunk, ...rest)
      const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : ""
      if (text.length > 0) atLineStart = text.endsWith("\n")
      if (shown !== "" && atLineStart) write(shown)
      return result
    }) as Write
  }
  return {
    // A terminal that does not say its width (0) gets the usual 80 columns, or `COLUMNS`.
    columns: () => stderr.columns || Number(process.env.COLUMNS) || 80,
    show: (text: string) => {
      if (text === shown || !atLineStart) return
      shown = text
      write(`${ERASE}${text}`)
    },
    /** Erase the line, leave `text` (a line of its own, unless empty) in its place, and give the streams back. */
    close: (text: string) => {
      for (const [stream, original] of originals) stream.write = original
      const erase = shown === "" ? "" : ERASE
      if (erase !== "" || text !== "") write(text === "" ? erase : `${erase}${text}\n`)
      shown = ""
    }
  }
}

/** Show the run's progress on stderr (when `enabled`), until the run ends. */
export const layer = (options: Options): Layer.Layer<never, never, RunLog> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      if (!enabled(options)) return
      const runLog = yield* RunLog
      const started = Date.now()
      const terminal = yield* Effect.acquireRelease(
        Effect.sync(() => makeTerminal(process.stderr, process.stdout)),
        (terminal) =>
          Effect.map(runLog.status, (status) =>
            // A run that made no agent leaves nothing.
            terminal.close(status.agents.length === 0 ? "" : finalLine(status, Date.now() - started)))
      )
      let last: string | undefined
      let ended = false
      let frame = 0
      const draw = Effect.map(runLog.status, (status) => {
        if (status.agents.length > 0) terminal.show(line(status, last, frame++, terminal.columns()))
      })
      // What happened last, from the log's written batches (not a Stream of every entry: that would cost a tool call more
      // than the call itself); redrawn on a beat (the spinner turns) until the run has ended.
      const follow = yield* runLog.follow((batch) =>
        Effect.sync(() => {
          for (const entry of batch) {
            last = activity(entry) ?? last
            if (entry.event._tag === "RunEnded") ended = true
          }
        }))
      yield* Effect.forkScoped(follow)
      yield* draw.pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: () => ended }),
        Effect.forkScoped
      )
    })
  )
