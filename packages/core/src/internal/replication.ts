/**
 * An agent's replication log: what it has been told, numbered by `seq` (1, 2,
 * 3, …), each entry also an entry of the run's log. Every entry is on disk
 * before it is sent (`RunLog.durable`), so memory only keeps what a
 * reconnecting agent is likely to ask for again: the entries it has not
 * acknowledged (its `Hello { after }`), and of those at most the newest
 * `maxEntries` and `maxBytes`. Older entries are read back from the run's log
 * when an agent asks for them — the agent's k-th replicated entry in the log
 * is its entry `seq` k.
 *
 * @internal
 */
import { Effect } from "effect"
import type * as Protocol from "@ramure/protocol/Protocol"
import { toEntryBody } from "../RunEvent.js"
import type { RunLogService } from "../RunLog.js"

export interface Replicated {
  readonly seq: number
  /** Its number in the run's log. */
  readonly n: number
  readonly body: Protocol.EntryBody
}

export interface Limits {
  /** Unacknowledged entries kept in memory, at most (default 256). */
  readonly maxEntries?: number
  /** Bytes of unacknowledged entries' text kept in memory, at most (default 256 KiB). */
  readonly maxBytes?: number
}

export interface ReplicationLog {
  /** Append the entry for the run's log entry `n`, in the same synchronous step as logging it; its `seq`. */
  readonly unsafeAppend: (n: number, body: Protocol.EntryBody) => number
  /** Entries appended so far (the last `seq`). */
  readonly size: Effect.Effect<number>
  /** The oldest `seq` still in memory (`size + 1` when none is). */
  readonly firstInMemory: () => number
  /** The agent has applied every entry up to `seq`: memory need not keep them. */
  readonly acknowledge: (seq: number) => void
  /**
   * Run `f` on every entry after `after`, in order — those memory no longer
   * holds read back from the run's log — then on every entry appended later,
   * until `end`.
   */
  readonly forEach: <E, R>(after: number, f: (entry: Replicated) => Effect.Effect<void, E, R>) => Effect.Effect<void, E, R>
  /** Every entry so far, from the run's log. */
  readonly all: Effect.Effect<ReadonlyArray<Protocol.EntryBody>>
  /** No more entries: `forEach` returns after the last one. Idempotent. */
  readonly end: Effect.Effect<void>
}

const weight = (body: Protocol.EntryBody): number => {
  switch (body._tag) {
    case "ToolResult":
    case "UserMessage":
      return body.text.length + 64
    default:
      return 256
  }
}

export const make = (
  agent: string,
  runLog: RunLogService,
  limits: Limits = {},
  /** Entries the agent's log already has in the run's log (a taken-over agent of a resumed run). */
  start = 0
): Effect.Effect<ReplicationLog> =>
  Effect.gen(function* () {
    const maxEntries = Math.max(1, limits.maxEntries ?? 256)
    const maxBytes = limits.maxBytes ?? 256 * 1024
    /** Entries `first`, `first + 1`, … in memory. */
    const memory: Array<Replicated> = []
    let bytes = 0
    let size = start
    let acknowledged = 0
    let closed = false
    /**
     * Readers waiting for an entry after the last one they saw, resumed on the
     * next append and at the end. (Not a Deferred per append: on Node 20 a
     * Deferred costs more to make than the rest of an append.)
     */
    const waiting = new Set<() => void>()
    const wake = () => {
      if (waiting.size === 0) return
      const readers = [...waiting]
      waiting.clear()
      for (const resume of readers) resume()
    }
    /** Wait until there is an entry after `seen`, or the end; checked and registered in one step. */
    const appendedAfter = (seen: number) =>
      Effect.async<void>((resume) => {
        if (size > seen || closed) return resume(Effect.void)
        const waiter = () => resume(Effect.void)
        waiting.add(waiter)
        return Effect.sync(() => waiting.delete(waiter))
      })

    const trim = () => {
      while (memory.length > 0 && (memory[0]!.seq <= acknowledged || memory.length > maxEntries || bytes > maxBytes)) {
        bytes -= weight(memory.shift()!.body)
      }
    }

    const unsafeAppend = (n: number, body: Protocol.EntryBody): number => {
      if (closed) return size
      const entry: Replicated = { seq: ++size, n, body }
      memory.push(entry)
      bytes += weight(body)
      trim()
      wake()
      return entry.seq
    }

    const firstInMemory = () => memory[0]?.seq ?? size + 1

    /** Entries `from` … `to` (seqs) as the run's log has them. */
    const fromLog = (from: number, to: number) =>
      Effect.map(runLog.history({ agent }), (entries) => {
        const found: Array<Replicated> = []
        let seq = 0
        for (const entry of entries) {
          const body = toEntryBody(entry.event)
          if (body === undefined) continue
          seq++
          if (seq > to) break
          if (seq >= from) found.push({ seq, n: entry.n, body })
        }
        return found
      })

    /** Entries `from` … `to`: from memory, and what it no longer holds from the run's log. */
    const between = (from: number, to: number): Effect.Effect<ReadonlyArray<Replicated>> =>
      Effect.suspend(() => {
        // Taken now: memory may lose entries while the log is read.
        const first = firstInMemory()
        // Memory holds the seqs `first` … `size`, in order.
        const recent = memory.slice(Math.max(from, first) - first, Math.max(0, to - first + 1))
        if (from >= first || from > to) return Effect.succeed(recent)
        return Effect.map(fromLog(from, Math.min(to, first - 1)), (older) => [...older, ...recent])
      })

    // A reader keeps only its place: however far behind it falls, it holds no entries.
    const forEach = <E, R>(after: number, f: (entry: Replicated) => Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
      Effect.gen(function* () {
        let next = after + 1
        while (true) {
          if (next <= size) {
            for (const entry of yield* between(next, size)) {
              if (entry.seq < next) continue
              next = entry.seq + 1
              yield* f(entry)
            }
          } else if (closed) {
            return
          } else {
            yield* appendedAfter(next - 1)
          }
        }
      })

    return {
      unsafeAppend,
      size: Effect.sync(() => size),
      firstInMemory,
      acknowledge: (seq) => {
        if (seq <= acknowledged) return
        acknowledged = Math.min(seq, size)
        trim()
      },
      forEach,
      all: Effect.map(Effect.suspend(() => fromLog(1, size)), (entries) => entries.map((entry) => entry.body)),
      end: Effect.sync(() => {
        if (closed) return
        closed = true
        wake()
      })
    }
  })
