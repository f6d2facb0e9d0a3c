/**
 * Synchronous cleanup: what is left of runs whose orchestrator died (at the
 * start of a run), and the forced exit on a second SIGINT. Synchronous because
 * it runs where no fiber can be waited for (a signal handler about to exit).
 * Only what is provably orphaned goes: a session or a process whose owner's
 * orchestrator (pid and start time) is no longer running, whatever its home.
 *
 * @internal
 */
import { Effect } from "effect"
import type { OrphansCollected } from "@ramure/core/RunEvent"
import * as Registry from "./Registry.js"
import * as Owner from "./Owner.js"
import * as Tmux from "./Tmux.js"

const signal = (pid: number, signal: NodeJS.Signals): boolean => {
  try {
    process.kill(pid, signal)
    return true
  } catch {
    return false
  }
}

/** SIGKILL a process group (or the lone process). */
export const killProcessSync = (pid: number): void => {
  if (!signal(-pid, "SIGKILL")) signal(pid, "SIGKILL")
}

/** Kill the tmux sessions this process started for the run `executionId`; their names. */
export const killRunSync = (executionId: string, socket = Tmux.currentSocket()): ReadonlyArray<string> =>
  Tmux.killSync(socket, Tmux.ownedByThisProcess(executionId)).killed.map((verdict) => verdict.session)

/** What a cleanup found of one dead run. */
export interface Orphan {
  readonly owner: Owner.Owner
  /** Its tmux sessions, killed. */
  readonly sessions: ReadonlyArray<string>
  /** Its processes outside tmux (local machines), killed. */
  readonly processes: ReadonlyArray<number>
}

/** A gone run whose agents wait for a resume: what it left is kept until `until` (epoch ms). */
export interface Waiting {
  readonly owner: Owner.Owner
  readonly sessions: ReadonlyArray<string>
  readonly until: number
}

export interface Collected {
  readonly orphans: ReadonlyArray<Orphan>
  /** Runs whose agents wait to be re-adopted: left alone. */
  readonly waiting: ReadonlyArray<Waiting>
  /** ramure sessions nobody can be shown to own, left alone. */
  readonly unattributed: ReadonlyArray<{ readonly session: string; readonly why: string }>
}

/**
 * Kill every provably orphaned tmux session on the socket and every process
 * (with its group, if it leads one) whose owner marker names a dead
 * orchestrator — but not what a gone run whose agents wait for a resume left.
 */
export const collectSync = (socket = Tmux.currentSocket(), keep?: string): Collected => {
  const { verdicts } = Tmux.killSync(socket, (verdict) => verdict._tag === "Orphaned" && verdict.owner.executionId !== keep)
  const byRun = new Map<string, { owner: Owner.Owner; sessions: Array<string>; processes: Array<number> }>()
  const entry = (owner: Owner.Owner) => {
    const key = Owner.encode(owner)
    let found = byRun.get(key)
    if (found === undefined) byRun.set(key, (found = { owner, sessions: [], processes: [] }))
    return found
  }
  const unattributed: Array<{ session: string; why: string }> = []
  const waiting = new Map<string, { owner: Owner.Owner; sessions: Array<string>; until: number }>()
  for (const verdict of verdicts) {
    if (verdict._tag === "Orphaned" && verdict.owner.executionId !== keep) entry(verdict.owner).sessions.push(verdict.session)
    else if (verdict._tag === "Unattributed") unattributed.push({ session: verdict.session, why: verdict.why })
    else if (verdict._tag === "Waiting" && verdict.owner.executionId !== keep) {
      const key = Owner.encode(verdict.owner)
      const found = waiting.get(key) ?? { owner: verdict.owner, sessions: [], until: verdict.until }
      found.sessions.push(verdict.session)
      waiting.set(key, found)
    }
  }
  for (const marked of Owner.markedProcesses()) {
    if (Owner.ownerAlive(marked.owner) || marked.owner.executionId === keep) continue
    // Waiting for a resume, or resumed by another orchestrator, which has taken its agents over.
    if (Registry.keeps(marked.owner.home, marked.owner.executionId)) continue
    if (marked.group === marked.pid) signal(-marked.pid, "SIGKILL")
    signal(marked.pid, "SIGKILL")
    entry(marked.owner).processes.push(marked.pid)
  }
  return { orphans: [...byRun.values()], waiting: [...waiting.values()], unattributed }
}

/**
 * At the start of a run: remove the registry entries of dead runs of `home`,
 * kill what provably orphaned runs (of any home) left on the socket and as
 * processes; log and warn about each run cleaned up, and about sessions left
 * alone because nobody can be shown to own them.
 */
export const collectAtStart = (
  home: string,
  log: (event: typeof OrphansCollected.Type) => Effect.Effect<void>,
  /** A run being resumed: what its dead orchestrator left is its to re-adopt. */
  keep?: string
) =>
  Effect.gen(function* () {
    const stale = yield* Registry.removeStale(home, keep === undefined ? {} : { keep })
    const { orphans, unattributed } = collectSync(Tmux.currentSocket(), keep)
    const runs = new Map<string, { pid: number; home: string; sessions: Array<string>; processes: Array<number>; entry: boolean }>()
    for (const entry of stale) {
      runs.set(entry.execution_id, { pid: entry.pid, home, sessions: [], processes: [], entry: true })
    }
    for (const orphan of orphans) {
      const run = runs.get(orphan.owner.executionId) ??
        { pid: orphan.owner.pid, home: orphan.owner.home, sessions: [], processes: [], entry: false }
      run.sessions.push(...orphan.sessions)
      run.processes.push(...orphan.processes)
      runs.set(orphan.owner.executionId, run)
    }
    for (const [executionId, run] of runs) {
      yield* log({ _tag: "OrphansCollected", executionId, ...run })
      const removed = [
        ...(run.entry ? ["its registry entry"] : []),
        ...(run.sessions.length > 0 ? [`tmux sessions ${run.sessions.join(", ")}`] : []),
        ...(run.processes.length > 0 ? [`processes ${run.processes.join(", ")}`] : [])
      ]
      yield* Effect.logWarning(
        `ramure: run ${executionId.slice(0, 8)} (pid ${run.pid}${run.home === home ? "" : `, home ${run.home}`}) died without cleaning up: ` +
          `removed ${removed.join(" and ")}`
      )
    }
    for (const { session, why } of unattributed) {
      yield* Effect.logWarning(`ramure: left tmux session ${session} alone: ${why}`)
    }
  })
