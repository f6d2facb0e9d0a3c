/**
 * How the examples choose their model: a real one when `RAMURE_MODEL` is set
 * (pi's own auth: ANTHROPIC_API_KEY, OPENAI_API_KEY, …), otherwise ramure's
 * scripted model server on 127.0.0.1 replaying `scripts` — so every example
 * runs offline, with real pi agents in tmux.
 */
import { Ramure, ScriptedModel } from "ramure"
import { Console, Effect, Layer } from "effect"

export const layer = (scripts: Record<string, ScriptedModel.Script>, options: Ramure.LayerOptions = {}) =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const model = process.env.RAMURE_MODEL
      if (model !== undefined && model.length > 0) {
        yield* Console.error(`ramure: using ${model}`)
        return Ramure.layer({ ...options, model })
      }
      const server = yield* ScriptedModel.make({ scripts })
      yield* Effect.addFinalizer(() =>
        Effect.flatMap(server.failures, (failures) =>
          failures.length === 0
            ? Effect.void
            : Effect.zipRight(
              Console.error(failures.map((f) => `scripted model: ${f.agent} turn ${f.turn + 1}: ${f.message}`).join("\n")),
              Effect.sync(() => (process.exitCode = 1))
            ))
      )
      yield* Console.error(
        "ramure: no RAMURE_MODEL set — the agents talk to ramure's scripted model " +
          `(${server.url}), which replays this example's script.\n` +
          "        Set RAMURE_MODEL=<provider>/<model> (e.g. anthropic/claude-sonnet-4-5 with ANTHROPIC_API_KEY) for a real model."
      )
      return Ramure.layer({
        ...options,
        model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
        modelsJson: (agentId) => ScriptedModel.piModelsJson(server.baseUrl(agentId))
      })
    })
  )

/** A tool call turn of the scripted model. */
export const call = (name: string, args: unknown): ScriptedModel.Turn => ({ toolCalls: [{ name, arguments: args }] })
/** A plain text turn (the agent's turn ends). */
export const say = (text: string): ScriptedModel.Turn => ({ text })
