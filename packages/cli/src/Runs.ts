/**
 * Finding runs: live ones from the registry (stale and unreadable entries are
 * reported, and left for `ramure gc`), finished ones from their logs in `<home>/logs/<execution_id>/`;
 * resolving an id prefix; reading a run's log; its status; picking an agent.
 */
import { readDirectory, readFile } from "@ramure/node/JsonlLogSink"
import { RUNTIME_FILE } from "@ramure/core/LogSink"
import type { LogEntry } from "@ramure/core/RunEvent"
import * as Registry from "@ramure/node/Registry"
import * as RunInfo from "@ramure/core/RunInfo"
import * as RunStatus from "@ramure/core/RunStatus"
import { Console, Effect, Option, Schedule } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ControlClient from "./ControlClient.js"
import { AgentEnded, AgentNotFound, AmbiguousRun, NoLiveRun, RunNotLive, UnknownRun } from "./Errors.js"

/** A run the CLI knows of: live (with its registry entry) or finished. */
export interface Run {
  readonly id: string
  readonly live: Registry.RegistryEntry | undefined
}

/** `RAMURE_HOME`, or `~/.ramure`. */
export const home: Effect.Effect<string> = Effect.sync(() => RunInfo.homeDirectory())

/** Say on stderr which registry entries cannot be read (they are left alone). */
export const reportUnreadable = (unreadable: ReadonlyArray<Registry.UnreadableEntry>) =>
  Effect.forEach(unreadable, (entry) => Console.error(`ramure: cannot read registry entry ${entry.file}: ${entry.reason}`), {
    discard: true
  })

/**
 * Registry entries of live runs, oldest first. Nothing is removed here: stale
 * entries are `ramure gc`'s (and the next run's) to clean up.
 */
export const live = Effect.fn("Runs.live")(function* (home: string, options: { readonly reportStale?: boolean } = {}) {
  const { entries, unreadable } = yield* Registry.scan(home)
  yield* reportUnreadable(unreadable)
  // A gone run whose agents wait for a resume is not stale: `ramure ls` shows it as interrupted.
  const stale = entries.filter((item) => !item.alive && item.waitingUntil === undefined)
  for (const { entry } of options.reportStale === false ? [] : stale) {
    yield* Console.error(
      `ramure: run ${RunInfo.shortId(entry.execution_id)} (${entry.program}, pid ${entry.pid}) is gone but left its registry entry; ramure gc cleans up after it`
    )
  }
  return entries
    .filter((item) => item.alive)
    .map((item) => item.entry)
    .sort((a, b) => a.started_at.localeCompare(b.started_at))
})

/** Runs whose orchestrator is gone while their agents wait for `ramure resume`, oldest first. */
export const interrupted = Effect.fn("Runs.interrupted")(function* (home: string) {
  const { entries } = yield* Registry.scan(home)
  return entries
    .flatMap((item) => (item.waitingUntil === undefined ? [] : [{ entry: item.entry, until: item.waitingUntil }]))
    .sort((a, b) => a.entry.started_at.localeCompare(b.entry.started_at))
})

/** Execution ids that have a log directory. */
export const logged = (home: string): ReadonlyArray<string> => {
  try {
    return fs
      .readdirSync(RunInfo.logsDirectory(home), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
  } catch {
    return []
  }
}

/** Shortest prefixes (at least 8 characters) that tell these ids apart. */
export const distinctPrefixes = (ids: ReadonlyArray<string>): ReadonlyArray<string> => {
  let length = 8
  for (const a of ids) {
    for (const b of ids) {
      if (a === b) continue
      let common = 0
      while (common < a.length && a[common] === b[common]) common++
      length = Math.max(length, common + 1)
    }
  }
  return ids.map((id) => id.slice(0, length))
}

/**
 * The run `prefix` names (any unique prefix of its execution id), or the only
 * live run when there is no prefix.
 */
export const resolve = Effect.fn("Runs.resolve")(function* (
  home: string,
  prefix: Option.Option<string>,
  options: { readonly reportStale?: boolean } = {}
) {
  const entries = yield* live(home, options)
  const liveById = new Map(entries.map((entry) => [entry.execution_id, entry]))
  const describe = (ids: ReadonlyArray<string>) =>
    distinctPrefixes(ids).map((short, i) => `${short} (${liveById.has(ids[i]!) ? `live, ${liveById.get(ids[i]!)!.program}` : "finished"})`)
  if (Option.isNone(prefix)) {
    if (entries.length === 1) return { id: entries[0]!.execution_id, live: entries[0] } satisfies Run
    if (entries.length === 0) return yield* new NoLiveRun()
    return yield* new AmbiguousRun({ candidates: describe(entries.map((entry) => entry.execution_id)) })
  }
  const ids = [...new Set([...liveById.keys(), ...logged(home)])]
  const matches = ids.includes(prefix.value) ? [prefix.value] : ids.filter((id) => id.startsWith(prefix.value))
  if (matches.length === 0) return yield* new UnknownRun({ prefix: prefix.value })
  if (matches.length > 1) return yield* new AmbiguousRun({ prefix: prefix.value, candidates: describe(matches) })
  return { id: matches[0]!, live: liveById.get(matches[0]!) } satisfies Run
})

/** Entries of one log file (lines that are torn or not entries are skipped). */
export const readLogFile = readFile

/** Every entry of a run's log (all its files), in order (`n`). */
export const readLog = (home: string, id: string): Array<LogEntry> => readDirectory(RunInfo.logsDirectory(home, id))

/** The agents that have a log file in the run's log directory. */
export const agentCount = (home: string, id: string): number => {
  try {
    return fs.readdirSync(RunInfo.logsDirectory(home, id)).filter((name) => name.endsWith(".jsonl") && name !== RUNTIME_FILE)
      .length
  } catch {
    return 0
  }
}

/**
 * How a run that is not live ended, from its `RunEnded` entry; without one it
 * was interrupted (its orchestrator died): resumable when it recorded how it
 * started, "crashed?" otherwise.
 */
export const outcomeOf = (entries: ReadonlyArray<LogEntry>): string => {
  for (let i = entries.length - 1; i >= 0; i--) {
    const event = entries[i]!.event
    if (event._tag === "RunEnded") return event.error === undefined ? event.outcome : `${event.outcome}: ${event.error}`
  }
  const start = entries.find((entry) => entry.event._tag === "RunStarted")?.event
  return start?._tag === "RunStarted" && start.invocation !== undefined ? "interrupted (resumable)" : "crashed?"
}

/** The outcome of a run that is no longer live, from `_runtime.jsonl`. */
export const outcome = (home: string, id: string): string =>
  outcomeOf(readLogFile(path.join(RunInfo.logsDirectory(home, id), RUNTIME_FILE)))

/** A run as `ramure ls` (and the web view) lists it. */
export interface Row {
  readonly id: string
  readonly program: string
  readonly pid: number | undefined
  readonly startedAt: string | undefined
  readonly live: boolean
  readonly outcome: string | undefined
  readonly agents: number
  /** The run's one-line description, when its program gave one. */
  readonly summary: string | undefined
  /** What its agents' models cost, in dollars, as its log says so far. */
  readonly cost: number
}

/** What a run's agents' models cost so far, from its log files. */
export const costOf = (home: string, id: string): number =>
  readLog(home, id).reduce(
    (total, entry) => total + (entry.event._tag === "MessageEnded" ? entry.event.usage?.cost ?? 0 : 0),
    0
  )

/** What the run's own log says of its start. */
const started = (home: string, id: string) => {
  const entries = readLogFile(path.join(RunInfo.logsDirectory(home, id), RUNTIME_FILE))
  const entry = entries.find((e) => e.event._tag === "RunStarted")
  return { entries, entry, event: entry?.event._tag === "RunStarted" ? entry.event : undefined }
}

/**
 * Live runs and interrupted ones whose agents wait for `ramure resume`, and
 * with `all` finished ones (oldest first).
 */
export const list = Effect.fn("Runs.list")(function* (home: string, options: { readonly all: boolean }) {
  const rows: Array<Row> = (yield* live(home)).map((entry) => ({
    id: entry.execution_id,
    program: entry.program,
    pid: entry.pid,
    startedAt: entry.started_at,
    live: true,
    outcome: undefined,
    agents: agentCount(home, entry.execution_id),
    summary: started(home, entry.execution_id).event?.summary,
    cost: costOf(home, entry.execution_id)
  }))
  for (const { entry, until } of yield* interrupted(home)) {
    rows.push({
      id: entry.execution_id,
      program: entry.program,
      pid: entry.pid,
      startedAt: entry.started_at,
      live: false,
      outcome: `interrupted, resumable: its agents wait until ${new Date(until).toISOString()}`,
      agents: agentCount(home, entry.execution_id),
      summary: started(home, entry.execution_id).event?.summary,
      cost: costOf(home, entry.execution_id)
    })
  }
  if (options.all) {
    const listed = new Set(rows.map((row) => row.id))
    for (const id of logged(home)) {
      if (listed.has(id)) continue
      const { entries, entry, event } = started(home, id)
      rows.push({
        id,
        program: event?.program ?? "?",
        pid: event?.pid,
        startedAt: entry?.ts,
        live: false,
        outcome: outcomeOf(entries),
        agents: agentCount(home, id),
        summary: event?.summary,
        cost: costOf(home, id)
      })
    }
  }
  return rows.sort((a, b) => (a.startedAt ?? "").localeCompare(b.startedAt ?? ""))
})

/** Wait (up to `ms`) for a process to exit; whether it did. */
export const waitForExit = (pid: number, ms: number): Effect.Effect<boolean> =>
  Effect.sync(() => Registry.isAlive(pid)).pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis").pipe(Schedule.upTo(`${ms} millis`)), while: (alive) => alive }),
    Effect.zipRight(Effect.sync(() => !Registry.isAlive(pid)))
  )

/** The registry entry of a live run, or `RunNotLive`. */
export const requireLive = (home: string, run: Run) =>
  run.live !== undefined
    ? Effect.succeed(run.live)
    : Effect.fail(new RunNotLive({ run: RunInfo.shortId(run.id), outcome: outcome(home, run.id) }))

/** The status of a run: asked of the run when live, rebuilt from its log otherwise. */
export const status = Effect.fn("Runs.status")(function* (home: string, run: Run) {
  if (run.live === undefined) return RunStatus.fromEntries(readLog(home, run.id))
  const client = yield* ControlClient.connect(run.live)
  return yield* client.status
}, Effect.scoped)

/**
 * The agent `name` names, or the run's only (still active) agent when there is
 * no name; otherwise `AgentNotFound` listing the agents.
 */
export const pickAgent = (run: Run, status: RunStatus.RunStatus, name: Option.Option<string>) => {
  const all = status.agents
  const ids = all.map((agent) => agent.id)
  const fail = (agent?: string) =>
    Effect.fail(new AgentNotFound({ run: RunInfo.shortId(run.id), available: ids, ...(agent === undefined ? {} : { agent }) }))
  if (Option.isSome(name)) {
    const found = all.find((agent) => agent.id === name.value)
    return found === undefined ? fail(name.value) : Effect.succeed(found)
  }
  const active = all.filter((agent) => agent.state !== "done" && agent.state !== "crashed")
  if (active.length === 1) return Effect.succeed(active[0]!)
  if (all.length === 1) return Effect.succeed(all[0]!)
  return fail()
}

/** The agent, if it has not ended; otherwise `AgentEnded`, saying how it ended. */
export const requireActive = (run: Run, agent: RunStatus.AgentStatus) =>
  agent.state === "done" || agent.state === "crashed"
    ? Effect.fail(new AgentEnded({ run: RunInfo.shortId(run.id), agent: agent.id, how: agent.ended ?? agent.state }))
    : Effect.succeed(agent)
