/**
 * Figure 4 — real agent start: `Agent.make` with the real pi launcher in tmux
 * (`Ramure.layer`, scripted model) until the ramure extension has connected
 * and synced, plus adding a tool; against a bare pi started on the same tmux
 * machine provider with the same flags and environment, whose only extension
 * reports `session_start`. Samples alternate.
 */
import * as Agent from "@ramure/core/Agent"
import { MachineProvider } from "@ramure/core/Machine"
import * as Process from "@ramure/core/Process"
import { RunLog } from "@ramure/core/RunLog"
import { defaultMaxStartingAgents } from "@ramure/core/RunLimits"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Effect } from "effect"
import * as path from "node:path"
import { interleaved, now, type FigureResult, type Size } from "./lib/Figure.js"
import { addEcho, tempDirectory } from "./lib/harness.js"
import { cpuMs, piRun, signalServer, spawnBarePi, unavailable } from "./lib/pi.js"

const title = "Real agent start (pi in tmux)"

export const agentStart = (size: Size) =>
  Effect.gen(function* () {
    const missing = unavailable()
    if (missing !== undefined) return { id: 4, title, method: "", metrics: [], skipped: missing } satisfies FigureResult
    // Pairs differ by a few percent: enough of them for a median that the machine's noise does not decide.
    const rounds = size === "full" ? 9 : 1
    const home = yield* tempDirectory("pi-start")
    const signals = yield* signalServer(path.join(home, "signal.sock"))
    const bareModel = yield* ScriptedModel.make({ fallback: () => [] })
    const bareMs: Array<number> = []
    const ramureMs: Array<number> = []
    const connectMs: Array<number> = []
    /** pi's CPU time until session_start (bare) or until connected (ramure), per sample. */
    const bareCpu: Array<number> = []
    const ramureCpu: Array<number> = []

    const main = Process.make("bench", () =>
      Effect.gen(function* () {
        const provider = yield* MachineProvider
        let i = 0
        for (const step of interleaved(rounds, ["bare", "ramure"] as const)) {
          const id = `${step}${++i}`
          if (step === "bare") {
            yield* Effect.scoped(
              Effect.gen(function* () {
                const started = now()
                const machine = yield* provider.make({ name: id })
                const pi = yield* spawnBarePi(machine, {
                  id,
                  agentDir: path.join(home, "bare-pi", id),
                  baseUrl: bareModel.baseUrl(id),
                  signal: path.join(home, "signal.sock")
                })
                bareMs.push((yield* signals.started(id).pipe(Effect.timeout("60 seconds"))) - started)
                const cpu = cpuMs(pi.pid)
                if (cpu !== undefined) bareCpu.push(cpu)
              })
            )
          } else {
            // A child process per sample: its end releases the agent (pi stopped, tmux session killed).
            yield* Process.make("sample", () =>
              Effect.gen(function* () {
                const started = now()
                const agent = yield* Agent.make(id)
                connectMs.push(now() - started)
                const created = (yield* (yield* RunLog).history({ agent: id })).find((entry) => entry.event._tag === "AgentCreated")
                const cpu = cpuMs(created?.event._tag === "AgentCreated" ? created.event.pid : undefined)
                if (cpu !== undefined) ramureCpu.push(cpu)
                yield* addEcho(agent)
                ramureMs.push(now() - started)
              }))()
          }
        }
      }))
    yield* main().pipe(Effect.provide(piRun(home)))

    // Many agents at once: when is the first one ready, and the last? The default start concurrency
    // against the former fixed default of 16, one after the other.
    const burst = size === "full" ? 20 : 2
    const burstOf = (maxStartingAgents: number | undefined, label: string) =>
      Effect.gen(function* () {
        const ms: Array<number> = []
        const run = Process.make("burst", () =>
          Effect.gen(function* () {
            const started = now()
            yield* Effect.forEach(
              Array.from({ length: burst }, (_, i) => `burst${i}`),
              (id) => Effect.tap(Agent.make(id), () => Effect.sync(() => ms.push(now() - started))),
              { concurrency: "unbounded", discard: true }
            )
          }))
        yield* run().pipe(
          Effect.provide(piRun(path.join(home, label), maxStartingAgents === undefined ? {} : { maxStartingAgents }))
        )
        return ms.sort((a, b) => a - b)
      })
    const bursts = [
      { label: `default maxStartingAgents = ${defaultMaxStartingAgents()}`, ms: yield* burstOf(undefined, "burst-default") },
      { label: "maxStartingAgents = 16", ms: yield* burstOf(16, "burst-16") }
    ]

    const ratios = ramureMs.map((ms, i) => ms / bareMs[i]!)
    const cpuRatios = ramureCpu.length === bareCpu.length ? ramureCpu.map((ms, i) => ms / bareCpu[i]!) : []
    const result: FigureResult = {
      id: 4,
      title,
      method:
        `${rounds} interleaved pairs. ramure: \`Agent.make\` (real pi launcher, \`Ramure.layer\` with tmux, scripted model) ` +
        `until the extension has connected and synced, then \`agent.on\` (tool added and sent); bare: a machine from the same ` +
        `tmux provider, the same pi flags and environment, \`-e\` a signal-only extension, until its \`session_start\` ` +
        `reaches a Unix socket. Both from before the machine is made. Ratio per pair. CPU: the pi process's user + ` +
        `system time (\`/proc\`, clock ticks) when the signal arrived, or when \`Agent.make\` returned — less at the mercy ` +
        `of the machine's other work than wall time.`,
      metrics: [
        { name: "bare pi to session_start", unit: "ms", samples: bareMs, digits: 0 },
        { name: "ramure Agent.make until connected", unit: "ms", samples: connectMs, digits: 0 },
        { name: "ramure Agent.make + tool added", unit: "ms", samples: ramureMs, digits: 0 },
        { name: "ramure / bare", unit: "×", samples: ratios, target: { op: "<=", value: 1.03 }, digits: 2 },
        ...(cpuRatios.length === 0 ? [] : [
          { name: "bare pi: CPU until session_start", unit: "ms", samples: bareCpu, digits: 0 },
          { name: "ramure pi: CPU until connected", unit: "ms", samples: ramureCpu, digits: 0 },
          { name: "ramure / bare (CPU)", unit: "×", samples: cpuRatios, digits: 2 }
        ]),
        ...bursts.flatMap(({ label, ms }) => [
          { name: `${burst} agents at once (${label}): first connected`, unit: "ms", samples: ms.slice(0, 1), digits: 0 },
          { name: `${burst} agents at once (${label}): last connected`, unit: "ms", samples: ms.slice(-1), digits: 0 }
        ])
      ],
      counts: { agents: rounds * 2 + burst * 2 },
      notes: [
        "What ramure adds to pi's start is loading its extension and one connection. pi loads the built single file " +
          "(`packages/pi-extension/dist/ramure-pi-extension.cjs`) with Node's own loader — pi's jiti loader transforms only " +
          "TypeScript and ES modules —, and the file compiles the bundled extension (350 KB: `effect`'s runtime and `ws`; " +
          "the agent's side of the protocol decodes without Schema) from a V8 code cache kept in `RAMURE_HOME/cache`, " +
          "written by the first pi that loads it: 15–30 ms here. The TypeScript source took 0.4–1.2 s: jiti compiled it, " +
          "and evaluated a second copy of pi for the built-in tools a pooled pi re-creates (those now come from pi's own " +
          "module, imported only when a pooled pi becomes an agent).",
        "The extension connects at `session_start` and its `Hello` rides in the WebSocket's upgrade request: the run knows " +
          "the agent as soon as that request arrives, as the bare pi's signal arrives after its `connect`. On a loaded " +
          "machine every hand-over between processes waits for a core, so the wall-time ratio swings with the load; the " +
          "CPU rows measure what each pi spent, which the load hardly changes."
      ]
    }
    return result
  }).pipe(Effect.scoped)
