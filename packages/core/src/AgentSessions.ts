/**
 * The run's agents, by id: each one's session (what it was told, its tools,
 * its connection) and its route `/agents/<id>`, opened by its own secret.
 */
import { Context, Effect, Layer, Option, type Scope, type Tracer } from "effect"
import * as AgentSession from "./internal/agentSession.js"
import * as Replays from "./internal/replays.js"
import { Budgets, type Options as BudgetOptions } from "./Budget.js"
import * as Protocol from "@ramure/protocol/Protocol"
import { Journal, type AgentJournal } from "./Journal.js"
import { RunLog } from "./RunLog.js"
import { makeSecret, RunRoutes } from "./RunRoutes.js"

export interface Options {
  /** Largest frame an agent accepts (default 16 MiB): a larger tool result or message is refused. */
  readonly maxMessageBytes?: number
}

export class AgentSessions extends Context.Tag("@ramure/core/AgentSessions")<
  AgentSessions,
  {
    /**
     * A session for a new agent named `name`: its id is unique in the run and
     * never reused; it is served until the scope closes. With `resume`, the
     * session of an agent a resumed run takes over: its id and its place in
     * its replication log are the journal's.
     */
    readonly create: (
      name: string,
      process: string,
      options?: {
        readonly resume?: AgentJournal | undefined
        readonly parentSpan?: Option.Option<Tracer.AnySpan>
        /** The agent's own budget (those of its process and above apply anyway). */
        readonly budget?: BudgetOptions | undefined
      }
    ) => Effect.Effect<AgentSession.AgentSession, never, Scope.Scope>
    readonly lookup: (id: string) => Effect.Effect<Option.Option<AgentSession.AgentSession>>
    /** Ids of the live agents. */
    readonly ids: Effect.Effect<ReadonlyArray<string>>
  }
>() {}

/**
 * An agent id for `name`: letters, digits, `_`, `.` and `-`, starting with a
 * letter or digit, at most 48 characters — a safe file name, tmux session name
 * and URL segment. Names such as `..`, `_runtime` or `a/b` map to `agent`,
 * `runtime`, `a-b`.
 */
export const idFor = (name: string): string =>
  name.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 48).replace(/[^A-Za-z0-9]+$/, "") || "agent"

export const layer = (options: Options = {}): Layer.Layer<AgentSessions, never, RunLog | RunRoutes | Journal | Budgets> =>
  Layer.scoped(
    AgentSessions,
    Effect.gen(function* () {
      const runLog = yield* RunLog
      const routes = yield* RunRoutes
      const budgets = yield* Budgets
      const sessions = new Map<string, AgentSession.AgentSession>()
      // A resumed run gives no new agent an id its journal has.
      const journal = yield* Journal
      const used = new Set<string>(journal.agentIds)
      // Answered calls of the agents a resumed run takes over are replayed, in order, across agents.
      const replays = Replays.make(journal.answered)
      yield* Effect.forkScoped(replays.run(journal.caughtUp))
      const maxMessageBytes = options.maxMessageBytes ?? 16 * 1024 * 1024

      const reserve = (name: string) =>
        Effect.sync(() => {
          const base = idFor(name)
          let id = base
          for (let i = 2; used.has(id); i++) id = `${base}-${i}`
          used.add(id)
          return id
        })

      return {
        create: (name, process, createOptions = {}) =>
          Effect.gen(function* () {
            const resume = createOptions.resume
            const id = resume === undefined ? yield* reserve(name) : resume.id
            if (sessions.has(id)) return yield* Effect.dieMessage(`agent ${id} is taken over twice`)
            const session = yield* AgentSession.make({
              id,
              name,
              process,
              secret: makeSecret(),
              runLog,
              maxMessageBytes,
              parentSpan: createOptions.parentSpan,
              resume,
              replays,
              budget: yield* budgets.agent({ id, process, budget: createOptions.budget })
            })
            yield* Effect.acquireRelease(
              Effect.sync(() => void sessions.set(id, session)),
              () => Effect.sync(() => void sessions.delete(id))
            )
            yield* routes.register(Protocol.agentPath(id), { secret: session.secret, serve: session.serve })
            return session
          }),
        lookup: (id) => Effect.sync(() => Option.fromNullable(sessions.get(id))),
        ids: Effect.sync(() => [...sessions.keys()])
      }
    })
  )
