import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import * as Agent from "../src/Agent.js"
import * as Process from "../src/Process.js"
import { sessionOf } from "../src/internal/agent.js"
import * as Ramure from "ramure/Ramure"
import { currentSocket } from "@ramure/node/TmuxMachineProvider"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"

/** A fresh, private RAMURE_HOME. */
export const tempHome = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-test-"))

/** A scripted run in a fresh home. */
export const scripted = (scripts: ScriptedAgents.Scripts, options: Ramure.LayerOptions = {}) =>
  Ramure.layerScripted(scripts, { home: tempHome(), program: "test", ...options })

export const readJsonl = (file: string): Array<any> =>
  fs.readFileSync(file, "utf8").split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line))

/** The ramure tmux sessions of a run (`ramure-<id8>-…`), read with tmux itself (on `RAMURE_TMUX_SOCKET`, else `ramure`). */
export const tmuxSessionsOf = (executionId: string): Array<string> => {
  try {
    return execFileSync("tmux", ["-L", currentSocket(), "list-sessions", "-F", "#{session_name}"], { encoding: "utf8" })
      .split("\n")
      .filter((name) => name.startsWith(`ramure-${executionId.slice(0, 8)}-`))
  } catch {
    return []
  }
}

/** Alive and not a zombie (zombies wait for a slow init to reap them). */
export const alive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}

/** Close an agent's connection from the run's side (the agent reconnects); false if it was not connected. */
export const dropFromServer = (agent: Agent.Agent, reason = "dropped by the test") =>
  Effect.flatMap(sessionOf(agent).lifecycle, (state) =>
    state._tag === "Connected" && state.connection.isOpen()
      ? Effect.as(state.connection.close(4002, reason), true)
      : Effect.succeed(false))

/** A process with one agent `worker` and a `finish` tool that completes it with its `result`; `setup` adds the rest. */
export const withWorker = <R>(setup: (agent: Agent.Agent) => Effect.Effect<unknown, unknown, R>) =>
  Process.make("main", () =>
    Effect.gen(function* () {
      const worker = yield* Agent.make("worker")
      yield* worker.on("finish", { description: "Finish", parameters: Schema.Struct({ result: Schema.String }) }, ({ result }) =>
        Process.done(result))
      yield* setup(worker)
      return yield* Process.wait()
    }))
