/**
 * Real pi agents for figures 4 and 5: a scripted model server, the run's
 * layer with the real pi launcher in tmux, and a "bare" pi started on the
 * same kind of tmux machine with the same flags but a signal-only extension.
 */
import * as Ramure from "ramure/Ramure"
import * as PiAgents from "@ramure/pi/PiAgents"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import type { Machine } from "@ramure/core/Machine"
import { Deferred, Effect, FiberId, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { now } from "./Figure.js"

export const model = `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`

/** Why real-pi figures cannot run here, if they cannot. */
export const unavailable = (): string | undefined => {
  if (PiAgents.piCli() === undefined) return "pi is not installed"
  if (PiAgents.extensionPath() === undefined) return "the ramure pi extension is not installed"
  const tmux = process.env.PATH?.split(":").some((dir) => fs.existsSync(path.join(dir, "tmux")))
  return tmux ? undefined : "tmux is not installed"
}

/** A run of real pi agents in tmux talking to a scripted model (no turns: agents idle). */
export const piRun = (home: string, options: Ramure.LayerOptions = {}) =>
  Layer.unwrapScoped(
    Effect.map(ScriptedModel.make({ fallback: () => [] }), (server) =>
      Ramure.layer({
        ...options,
        provider: "tmux",
        home,
        program: "bench-pi",
        model,
        modelsJson: (agentId) => ScriptedModel.piModelsJson(server.baseUrl(agentId))
      }))
  )

const signalExtension = path.join(path.dirname(fileURLToPath(import.meta.url)), "piSignal.ts")

/** A Unix socket that records when each bare pi reports `session_start` (by its `BENCH_ID`). */
export const signalServer = (socketPath: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly started: (id: string) => Effect.Effect<number> }>((resume) => {
      const waiting = new Map<string, Deferred.Deferred<number>>()
      const slot = (id: string) => {
        let deferred = waiting.get(id)
        if (deferred === undefined) waiting.set(id, (deferred = Deferred.unsafeMake<number>(FiberId.none)))
        return deferred
      }
      const server = net.createServer((socket) => {
        let text = ""
        socket.on("data", (chunk) => {
          const at = now()
          text += chunk.toString()
          if (text.includes("\n")) Deferred.unsafeDone(slot(text.trim()), Effect.succeed(at))
        })
        socket.on("error", () => {})
      })
      server.listen(socketPath, () => resume(Effect.succeed({ server, started: (id) => Deferred.await(slot(id)) })))
    }),
    ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

/**
 * Start a bare pi on `machine` the way `PiAgents` starts one (same flags,
 * environment and agent directory layout) but with the signal extension
 * instead of ramure's. Closing the scope stops it (the machine's spawn).
 */
export const spawnBarePi = (
  machine: Machine,
  options: { readonly id: string; readonly agentDir: string; readonly baseUrl: string; readonly signal: string }
) =>
  Effect.gen(function* () {
    fs.mkdirSync(options.agentDir, { recursive: true, mode: 0o700 })
    fs.writeFileSync(path.join(options.agentDir, "models.json"), JSON.stringify(ScriptedModel.piModelsJson(options.baseUrl), null, 2), { mode: 0o600 })
    const slash = model.indexOf("/")
    fs.writeFileSync(
      path.join(options.agentDir, "settings.json"),
      JSON.stringify({ defaultProvider: model.slice(0, slash), defaultModel: model.slice(slash + 1), steeringMode: "all", followUpMode: "all" }, null, 2),
      { mode: 0o600 }
    )
    return yield* machine.spawn({
      name: `bench-bare-${options.id}`,
      command: process.execPath,
      args: [
        PiAgents.piCli()!,
        "--no-extensions",
        "-e",
        signalExtension,
        "--no-skills",
        "--no-prompt-templates",
        "--no-context-files",
        // As ramure's pis keep theirs (for a resumed run).
        "--session-dir",
        PiAgents.sessionDirectory(options.agentDir),
        "--model",
        model
      ],
      env: {
        PI_OFFLINE: "1",
        PI_SKIP_VERSION_CHECK: "1",
        PI_TELEMETRY: "0",
        PI_CODING_AGENT_DIR: options.agentDir,
        BENCH_SIGNAL: options.signal,
        BENCH_ID: options.id
      },
      keepStdinOpen: false
    })
  })

let ticksPerSecond: number | undefined

/**
 * The CPU time (user + system) process `pid` has used so far, in ms, from
 * `/proc` (Linux; `undefined` elsewhere or once it is gone). Unlike wall time
 * it hardly depends on what else the machine runs.
 */
export const cpuMs = (pid: number | undefined): number | undefined => {
  if (pid === undefined) return undefined
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
  } catch {
    return undefined
  }
}
