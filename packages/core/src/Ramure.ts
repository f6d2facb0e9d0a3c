/**
 * One layer that wires a run: `program.pipe(Effect.provide(Ramure.layer()),
 * NodeRuntime.runMain)`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import type { AgentLauncher } from "./AgentLauncher.js"
import * as IsolatedMachineProvider from "./IsolatedMachineProvider.js"
import * as JsonlLogSink from "./JsonlLogSink.js"
import * as LocalMachineProvider from "./LocalMachineProvider.js"
import type { LogSink } from "./LogSink.js"
import type { MachineProvider } from "./Machine.js"
import type * as PiAgents from "./PiAgents.js"
import * as RemotePiAgents from "./RemotePiAgents.js"
import * as RunInfo from "./RunInfo.js"
import * as Runtime from "./Runtime.js"
import * as ScriptedAgents from "./ScriptedAgents.js"
import * as SshMachineProvider from "./SshMachineProvider.js"
import * as TmuxMachineProvider from "./TmuxMachineProvider.js"

export interface LayerOptions extends Runtime.RuntimeOptions {
  /** `RAMURE_HOME` (default: the environment variable, else `~/.ramure`). */
  readonly home?: string
  /** Name shown by `ramure ls` (default: the script's file name). */
  readonly program?: string
}

export type Services =
  | Runtime.Runtime
  | RunInfo.RunInfo
  | LogSink
  | MachineProvider
  | AgentLauncher
  | NodeContext.NodeContext

/**
 * Wire a run from its parts: how agents are started (`launcher`) and where
 * machines come from (`machines`, default local).
 */
export const make = (
  options: LayerOptions & {
    readonly launcher: Layer.Layer<
      AgentLauncher,
      never,
      RunInfo.RunInfo | NodeContext.NodeContext | Runtime.Runtime | MachineProvider
    >
    /** Built after the run's `Runtime` (an ssh provider forwards its port), released before it. */
    readonly machines?: Layer.Layer<MachineProvider, never, Runtime.Runtime | RunInfo.RunInfo | NodeContext.NodeContext>
    readonly logs?: Layer.Layer<LogSink, never, RunInfo.RunInfo>
  }
): Layer.Layer<Services, Runtime.RuntimeError> => {
  const base = Layer.merge(
    RunInfo.layer({
      ...(options.home === undefined ? {} : { home: options.home }),
      ...(options.program === undefined ? {} : { program: options.program })
    }),
    NodeContext.layer
  )
  const logs = options.logs ?? JsonlLogSink.layer
  const runtime = Runtime.layer(options).pipe(Layer.provideMerge(logs))
  // Worktree and sandboxed machines are made on top of whichever provider the run uses.
  const machines = IsolatedMachineProvider.layer.pipe(Layer.provide(options.machines ?? LocalMachineProvider.layer))
  const services = machines.pipe(Layer.provideMerge(runtime))
  // The launcher needs the run (a warm pool serves its pis' connections) and is released before it.
  return options.launcher.pipe(Layer.provideMerge(services), Layer.provideMerge(base))
}

/** A run whose agents play scripts (see `ScriptedAgents`) on local machines. */
export const layerScripted = (scripts: ScriptedAgents.Scripts, options: LayerOptions = {}) =>
  make({ ...options, launcher: ScriptedAgents.layer(scripts) })

/**
 * A run of real pi agents: in tmux sessions (`tmux -L ramure attach -t …`)
 * when tmux is installed, else as headless local processes. `provider` (or
 * the environment variable `RAMURE_PROVIDER`, `tmux` or `local`) forces one.
 * With `ssh`, agents run on those hosts instead (see `SshMachineProvider`).
 */
export const layer = (
  options: LayerOptions & PiAgents.Options & {
    readonly provider?: "tmux" | "local"
    readonly ssh?: SshMachineProvider.Options
  } = {}
): Layer.Layer<Services, Runtime.RuntimeError> => {
  const provider = options.provider ?? process.env.RAMURE_PROVIDER
  const machines = options.ssh !== undefined
    ? SshMachineProvider.layer(options.ssh)
    : provider === "local"
    ? LocalMachineProvider.layer
    : provider === "tmux"
    ? TmuxMachineProvider.layer()
    : Layer.unwrapEffect(
      Effect.map(TmuxMachineProvider.available, (tmux) => (tmux ? TmuxMachineProvider.layer() : LocalMachineProvider.layer))
    )
  return make({ ...options, launcher: RemotePiAgents.layer(options), machines })
}
