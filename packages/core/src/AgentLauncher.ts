/**
 * Starts the program that embodies an agent — a real pi with the ramure
 * extension, or a scripted driver — and connects it back to the run.
 */
import { Context, type Effect, type Scope } from "effect"
import type { AgentStartError } from "./Errors.js"
import type { Machine } from "./Machine.js"

export interface LaunchSpec {
  readonly agentId: string
  readonly executionId: string
  /** The run's WebSocket server, `ws://127.0.0.1:<port>`. */
  readonly url: string
  readonly token: string
  readonly machine: Machine
  readonly systemPrompt: string | undefined
  readonly model: string | undefined
  /** tmux session name: `ramure-<execid8>-<agent>`. */
  readonly sessionName: string
}

export interface LaunchedAgent {
  readonly pid: number | undefined
  readonly session: string | undefined
  /** Completes when the agent's program exits. */
  readonly exited: Effect.Effect<{ readonly exitCode: number | undefined }>
  readonly outputTail: Effect.Effect<string>
}

export class AgentLauncher extends Context.Tag("ramure/AgentLauncher")<
  AgentLauncher,
  {
    /** Start the agent; closing the scope stops it. */
    readonly launch: (spec: LaunchSpec) => Effect.Effect<LaunchedAgent, AgentStartError, Scope.Scope>
  }
>() {}
