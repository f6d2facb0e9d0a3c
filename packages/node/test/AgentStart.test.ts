/**
 * What a user learns when an agent's program does not start: real programs in
 * real tmux sessions (on a socket of this test's own) that never connect.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import { AgentLauncher } from "@ramure/core/AgentLauncher"
import { AgentStartError } from "@ramure/core/Errors"
import * as Process from "@ramure/core/Process"
import { Effect, Layer } from "effect"
import { spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as NodeRamure from "../src/NodeRamure.js"
import * as TmuxMachineProvider from "../src/TmuxMachineProvider.js"

const socket = `ramure-test-${process.pid}-${crypto.randomBytes(3).toString("hex")}`
const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-start-test-"))

afterAll(() => {
  spawnSync("tmux", ["-L", socket, "kill-server"])
  fs.rmSync(path.join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid?.()}`, socket), { force: true })
  fs.rmSync(home, { recursive: true, force: true })
})

/** Agents whose program is `sh -c script` in their tmux session: a program that never connects. */
const run = (script: string) =>
  NodeRamure.make({
    home,
    program: "start-test",
    register: false,
    handleSignals: false,
    machines: TmuxMachineProvider.layer({ socket }),
    launcher: Layer.succeed(AgentLauncher, {
      launch: (spec) =>
        Effect.map(
          Effect.orDie(spec.machine.spawn({ name: spec.sessionName, command: "sh", args: ["-c", script], env: {} })),
          (spawned) => ({ pid: spawned.pid, session: spawned.session, exited: spawned.exited, outputTail: spawned.outputTail })
        )
    })
  })

const start = Process.make("main", () =>
  Agent.make("worker", { startTimeout: "5 seconds" }).pipe(
    Effect.flip,
    Effect.filterOrDieMessage((error): error is AgentStartError => error instanceof AgentStartError, "not an AgentStartError")
  ))

describe("An agent that does not start", () => {
  it.live("one that does not connect in time: AgentStartError names its tmux session and says what the program printed", () =>
    start().pipe(
      Effect.map((error) => {
        expect(error).toBeInstanceOf(AgentStartError)
        expect(error.reason).toMatch(/^it did not connect within 5s \(tmux session ramure-[0-9a-f]{8}-worker\)$/)
        expect(error.output).toBe("starting up\nstill loading")
        expect(error.message).toContain("--- last output ---\nstarting up\nstill loading")
      }),
      Effect.provide(run("echo 'starting up'; echo 'still loading'; exec sleep 600"))
    ))

  it.live("one whose program exits: its output trimmed to what it said, without tmux's notice", () =>
    start().pipe(
      Effect.map((error) => {
        expect(error).toBeInstanceOf(AgentStartError)
        expect(error.reason).toMatch(/^its program exited with code 3 \(tmux session ramure-[0-9a-f]{8}-worker\)$/)
        expect(error.output).toBe("bad configuration\n\ngiving up")
      }),
      Effect.provide(run("echo 'bad configuration'; echo; echo; echo; echo 'giving up'; exit 3"))
    ))
})
