/**
 * The dead-man switch, with real pi in tmux: a program whose agent is at work
 * is killed with SIGKILL. Its pi must send the model nothing more and exit
 * once its unreachable timeout has passed — unless a run comes back within
 * it (here a stand-in for a resumed run, on another port, with another
 * secret, found through the agent's address file): then the agent goes on
 * where it was and says how long it was paused.
 */
import * as Command from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Protocol from "@ramure/protocol/Protocol"
import * as RunAddress from "@ramure/protocol/RunAddress"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { currentSocket } from "@ramure/node/TmuxMachineProvider"
import { Effect, Queue, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { alive } from "../../core/test/helpers.js"
import { rawRuntime } from "../../core/test/rawRuntime.js"
import { eventually, tempHome } from "./helpers.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const fixture = path.join(here, "fixtures", "orphan-run.ts")

interface Orphan {
  readonly pid: number
  readonly session: string
  readonly executionId: string
  readonly addressFile: string
}

const tmux = (...args: Array<string>) =>
  Command.make("tmux", "-L", currentSocket(), ...args).pipe(Command.string, Effect.orElseSucceed(() => ""))

/** The agent's pane has ended (its program exited), or its session is gone. */
const paneEnded = (session: string) =>
  Effect.map(tmux("display-message", "-p", "-t", `=${session}:`, "#{pane_dead}"), (out) => out.trim() !== "0")

/**
 * Start the program with an agent whose model first runs `bash` (`command`),
 * kill the program with SIGKILL once that tool has started, and return the
 * orphaned agent. The program keeps its agents for a resume for as long as
 * they wait (`resumableFor`): the start-up cleanup of the other runs on this
 * machine leaves them alone meanwhile. Its tmux session is killed when the
 * scope closes.
 */
const orphanAgent = (server: ScriptedModel.ScriptedModelServer, timeoutMs: number) =>
  Effect.gen(function* () {
    const home = yield* tempHome
    const program = yield* Command.make(process.execPath, "--import", "tsx", fixture, home, server.baseUrl(), String(timeoutMs)).pipe(
      Command.workingDirectory(path.resolve(here, "../../..")),
      Command.start
    )
    const lines = yield* Queue.unbounded<Record<string, any>>()
    yield* program.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter((line) => line.startsWith("{")),
      Stream.runForEach((line) => Queue.offer(lines, JSON.parse(line))),
      Effect.forkScoped
    )
    const next = Queue.take(lines).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the program said nothing") }))
    const { agent } = (yield* next) as { agent: Orphan }
    yield* Effect.addFinalizer(() => tmux("kill-session", "-t", `=${agent.session}`))
    expect(yield* next).toEqual({ busy: "bash" })
    process.kill(program.pid, "SIGKILL")
    yield* program.exitCode.pipe(Effect.ignore)
    return agent
  })

/** A model that runs `bash` (it ends by creating `marker`), then, asked again, says it is done. */
const modelServer = (marker: string) =>
  ScriptedModel.make({
    scripts: {
      worker: [
        { toolCalls: [{ name: "bash", arguments: { command: `sleep 1; touch '${marker}'` } }] },
        { text: "done after the pause" }
      ]
    }
  })

describe("an agent whose run is unreachable (dead-man switch)", () => {
  it.live("after the program is killed (SIGKILL) its pi sends the model nothing more and exits once its timeout has passed", () =>
    Effect.gen(function* () {
      const marker = path.join(yield* tempHome, "bash-finished")
      const server = yield* modelServer(marker)
      const agent = yield* orphanAgent(server, 12_000)
      // Generous: the timeout, plus pi's own shutdown, on a loaded machine.
      yield* eventually(Effect.sync(() => alive(agent.pid)), (running) => !running, "90 seconds")
      // The tool in progress finished (after the kill), and its result never went to the model.
      expect(fs.existsSync(marker)).toBe(true)
      expect((yield* server.requests("worker")).length).toBe(1)
      // The pane's shell lingers a moment after pi (tmux keeps its last output), then ends too.
      yield* eventually(paneEnded(agent.session), (ended) => ended, "10 seconds")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), 150_000)

  it.live("a run that comes back within the timeout, at the address the agent's address file names, finds it where it was", () =>
    Effect.gen(function* () {
      const timeoutMs = 20_000
      const marker = path.join(yield* tempHome, "bash-finished")
      const server = yield* modelServer(marker)
      const agent = yield* orphanAgent(server, timeoutMs)
      const killedAt = Date.now()
      // The tool finished while the run was away; the model request after it waits.
      yield* eventually(Effect.sync(() => fs.existsSync(marker)), (done) => done, "60 seconds")
      expect((yield* server.requests("worker")).length).toBe(1)

      // A stand-in for the resumed run: another port, another secret.
      const resumed = yield* rawRuntime()
      yield* RunAddress.write(agent.addressFile, { url: resumed.url, token: "resumed-secret" })
      const peer = yield* Queue.take(resumed.connections).pipe(Effect.timeout("30 seconds"))
      expect(peer.token).toBe("resumed-secret")
      expect(peer.path).toBe(Protocol.agentPath("worker"))
      const hello = yield* peer.next
      expect(hello).toMatchObject({ _tag: "Hello", agentId: "worker" })
      peer.send({ _tag: "Synced", seq: (hello as typeof Protocol.Hello.Type).after })

      // It reports the pause, and the held request goes to the model.
      const paused = yield* Effect.gen(function* () {
        while (true) {
          const message = yield* peer.next
          if (message._tag === "Event" && message.event._tag === "AgentPaused") return message.event
        }
      }).pipe(Effect.timeout("30 seconds"))
      expect(paused).toMatchObject({ heldRequests: 1 })
      expect(paused.durationMs).toBeGreaterThan(0)
      yield* eventually(server.requests("worker"), (requests) => requests.length === 2, "30 seconds")
      expect(ScriptedModel.lastToolResults((yield* server.requests("worker"))[1]!)).toHaveLength(1)

      // Its timeout has passed since the kill: it is still there.
      yield* Effect.sleep(Math.max(0, killedAt + timeoutMs + 2_000 - Date.now()))
      expect(alive(agent.pid)).toBe(true)
      expect(yield* server.failures).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), 150_000)
})
