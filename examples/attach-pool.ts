/**
 * Attach endpoints: a worker pool runs as a child process and exposes
 * `run_task`; the parent attaches the pool's endpoints to a dispatcher agent
 * as tools (`pool_run_task`). The dispatcher hands out shell tasks; each runs
 * on a free worker agent of the pool.
 *
 *   npx tsx examples/attach-pool.ts
 */
import { Agent, Process, Ramure, ScriptedModel } from "ramure"
import { Console, Deferred, Effect, Queue, Schema } from "effect"
import * as support from "./support.js"

const pool = Process.make("pool", (size: number) =>
  Effect.gen(function* () {
    const workers = yield* Effect.all(
      Array.from({ length: size }, (_, i) => Agent.make(`worker-${i + 1}`, { systemPrompt: "You run shell tasks." })),
      { concurrency: "unbounded" }
    )
    const free = yield* Queue.unbounded<Agent.Agent>()
    yield* Queue.offerAll(free, workers)
    yield* Process.expose(
      "run_task",
      { description: "Run a shell task on a free worker and return its answer", parameters: Schema.Struct({ task: Schema.String }) },
      ({ task }) =>
        Effect.acquireUseRelease(Queue.take(free), (worker) =>
          Effect.gen(function* () {
            const answer = yield* Deferred.make<string>()
            yield* worker.on(
              "answer",
              { description: "Report the task's result", parameters: Schema.Struct({ text: Schema.String }) },
              ({ text }) => Deferred.succeed(answer, text)
            )
            yield* Process.emit("task", { worker: worker.id, task })
            yield* worker.send(`Task: ${task}\nRun it, then call answer with the result.`)
            return yield* Deferred.await(answer)
          }), (worker) => Queue.offer(free, worker))
    )
    return yield* Effect.never
  }))

const dispatch = Process.make(
  "dispatch",
  () =>
    Effect.gen(function* () {
      const dispatcher = yield* Agent.make("dispatcher", { systemPrompt: "You split work across a worker pool." })
      const workers = yield* Process.spawn(pool, 2)
      yield* workers.attach(dispatcher, { only: ["run_task"], prefix: "pool_" })
      yield* dispatcher.on(
        "finish",
        { description: "Report what the workers found", parameters: Schema.Struct({ summary: Schema.String }) },
        ({ summary }) => Process.done(summary)
      )
      yield* dispatcher.send(
        "Using pool_run_task, find out (1) the Node.js version (node --version) and (2) the kernel name (uname -s), then call finish."
      )
      return yield* Process.wait()
    }),
  { success: Schema.String, timeout: "5 minutes" }
)

const taskOf = (request: ScriptedModel.ChatRequest): string =>
  /Task: (.*)/.exec(ScriptedModel.lastUserText(request) ?? "")?.[1] ?? "true"
const firstResult = (request: ScriptedModel.ChatRequest): string =>
  ScriptedModel.lastToolResults(request)[0]?.content.trim() ?? ""

/** A scripted worker runs whatever task it is given, twice over. */
const worker: ScriptedModel.Script = [0, 1].flatMap(() => [
  support.call("bash", (request: ScriptedModel.ChatRequest) => ({ command: taskOf(request) })),
  support.call("answer", (request: ScriptedModel.ChatRequest) => ({ text: firstResult(request) })),
  support.say("Answered.")
])

const script: Record<string, ScriptedModel.Script> = {
  dispatcher: [
    support.call("pool_run_task", { task: "node --version" }),
    support.call("pool_run_task", { task: "uname -s" }),
    support.call("finish", (request: ScriptedModel.ChatRequest) => {
      const results = request.messages.filter((m) => m.role === "tool").map((m) => m.content.trim())
      return { summary: `node ${results[0]} on ${results[1]}` }
    }),
    support.say("Done.")
  ],
  "worker-1": worker,
  "worker-2": worker
}

dispatch().pipe(
  Effect.tap((summary) => Console.log(`\n${summary}`)),
  Effect.provide(support.layer(script, { program: "attach-pool" })),
  Ramure.runMain
)
