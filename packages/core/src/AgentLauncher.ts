/**
 * Starts the program that embodies an agent — a real pi with the ramure
 * extension, or a scripted driver — and connects it back to the run.
 */
import { Context, type Effect, type Option, type Scope } from "effect"
import type { AgentStartError } from "./Errors.js"
import type { Machine } from "./Machine.js"

export interface LaunchSpec {
  readonly agentId: string
  readonly executionId: string
  /** The run's WebSocket server, `ws://127.0.0.1:<port>`. */
  readonly url: string
  /** The agent's own credential: it opens `/agents/<agentId>` and nothing else. */
  readonly secret: string
  readonly machine: Machine
  readonly systemPrompt: string | undefined
  readonly model: string | undefined
  /** tmux session name: `ramure-<execid8>-<agent>`. */
  readonly sessionName: string
  /**
   * A resumed run starts the agent's program again (it had died): it
   * continues the conversation it had, from its saved session.
   */
  readonly resume?: boolean
}

export interface PoolQuery {
  readonly model: string | undefined
  /** The machine the agent was given, if any (else it gets a fresh one). */
  readonly machine: Machine | undefined
  /** Whether the agent's fresh machine is sandboxed (a program started outside cannot move into it). */
  readonly sandboxed?: boolean
}

export interface LaunchedAgent {
  readonly pid: number | undefined
  readonly session: string | undefined
  /** The model (`provider/model`) the agent was started with, when the launcher chose it. */
  readonly model?: string | undefined
  /** Completes when the agent's program exits. */
  readonly exited: Effect.Effect<{ readonly exitCode: number | undefined }>
  readonly outputTail: Effect.Effect<string>
}

export class AgentLauncher extends Context.Tag("@ramure/core/AgentLauncher")<
  AgentLauncher,
  {
    /** Start the agent; closing the scope stops it. */
    readonly launch: (spec: LaunchSpec) => Effect.Effect<LaunchedAgent, AgentStartError, Scope.Scope>
    /**
     * Take over the agent's program that a previous orchestrator of the run
     * started, if it still runs: point it at this run (`spec.url`,
     * `spec.secret`) and watch it as if `launch` had started it; closing the
     * scope stops it. None when it is gone (then the agent is launched again,
     * with `resume`).
     */
    readonly adopt?: (spec: LaunchSpec) => Effect.Effect<Option.Option<LaunchedAgent>, AgentStartError, Scope.Scope>
    /**
     * Whether `launch` would hand out an already-started program (a warm
     * pool) for an agent with these options. Such a program holds its own
     * place under the run's limits on live and starting agents.
     */
    readonly pooled?: (options: PoolQuery) => boolean
    /** Stop one idle pre-started program to make room under the run's limit on live agents; false if there is none. */
    readonly evictIdle?: Effect.Effect<boolean>
    /**
     * Starting an agent is light work here (an in-process driver, a client
     * already running elsewhere): agents start without waiting for a place
     * under the run's limit on starting agents, which is for programs whose
     * start takes a core (pi).
     */
    readonly lightStart?: boolean
  }
>() {}
