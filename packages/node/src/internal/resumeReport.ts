/**
 * What a resumed run says on stderr as it takes its run back: each agent taken
 * over (its pi had kept running) or started again (its pi was gone), and,
 * once the program has caught up with its journal and has every agent of it
 * back, what was replayed rather than done again.
 *
 * @internal
 */
import { Journal } from "@ramure/core/Journal"
import { RunInfo, shortId } from "@ramure/core/RunInfo"
import { RunLog } from "@ramure/core/RunLog"
import { Console, Deferred, Effect, Option, Stream } from "effect"

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

export const report = Effect.gen(function* () {
  const info = yield* RunInfo
  if (!info.resumed) return
  const runLog = yield* RunLog
  const journal = yield* Journal
  let adopted = 0
  let restarted = 0
  // The agents the journal has that had not ended: each is taken over or started again.
  const waiting = journal.agentIds.filter((id) => Option.exists(journal.agent(id), (agent) => !agent.ended)).length
  const allBack = yield* Deferred.make<void>()
  const back = () => (adopted + restarted >= waiting ? Deferred.succeed(allBack, undefined) : Effect.void)
  yield* back()
  yield* runLog.entries({ after: journal.last }).pipe(
    Stream.runForEach((entry) => {
      const { event } = entry
      if (event._tag === "AgentAdopted") {
        adopted++
        return Effect.zipRight(
          Console.error(`ramure: took over agent ${entry.agent} (its pi${event.pid === undefined ? "" : ` ${event.pid}`} had kept running)`),
          back()
        )
      }
      if (event._tag === "AgentRestarted") {
        restarted++
        return Effect.zipRight(
          Console.error(`ramure: started agent ${entry.agent} again (its pi was gone): it continues its conversation`),
          back()
        )
      }
      return Effect.void
    }),
    Effect.forkScoped
  )
  yield* journal.caughtUp.pipe(
    Effect.zipRight(Deferred.await(allBack)),
    Effect.zipRight(journal.replayed),
    Effect.flatMap((replayed) =>
      Console.error(
        `ramure: run ${shortId(info.executionId)} has caught up with its journal: replayed ${plural(replayed.processes, "process", "processes")} ` +
          `that had ended, ${plural(replayed.steps, "step")} and ${plural(replayed.messages, "message")} already sent; ` +
          `took over ${plural(adopted, "agent")}, started ${restarted} again`
      )
    ),
    Effect.forkScoped
  )
})
