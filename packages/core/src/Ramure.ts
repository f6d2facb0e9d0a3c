/**
 * One layer that wires a run: `program.pipe(Effect.provide(Ramure.layer()),
 * NodeRuntime.runMain)`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import type { AgentLauncher } from "./AgentLauncher.js"
import * as AgentSessions from "./AgentSessions.js"
import * as ChildProcesses from "./ChildProcesses.js"
import * as NodeRun from "./internal/nodeRun.js"
import * as Server from "./internal/server.js"
import * as JsonlLogSink from "./JsonlLogSink.js"
import * as LocalMachineProvider from "./LocalMachineProvider.js"
import type { LogSink } from "./LogSink.js"
import type { MachineProvider } from "./Machine.js"
import type * as PiAgents from "./PiAgents.js"
import * as RemotePiAgents from "./RemotePiAgents.js"
import type { Run } from "./Run.js"
import * as RunControl from "./RunControl.js"
import * as RunInfo from "./RunInfo.js"
import * as RunLimits from "./RunLimits.js"
import * as RunLog from "./RunLog.js"
import * as RunRoutes from "./RunRoutes.js"
import * as ScriptedAgents from "./ScriptedAgents.js"
import * as SshMachineProvider from "./SshMachineProvider.js"
import * as TmuxMachineProvider from "./TmuxMachineProvider.js"

export { RunStartError } from "./internal/nodeRun.js"

export interface LayerOptions extends NodeRun.Options, RunLimits.Options, Server.Options {
  /** `RAMURE_HOME` (default: the environment variable, else `~/.ramure`). */
  readonly home?: string
  /** Name shown by `ramure ls` (default: the script's file name). */
  readonly program?: string
}

/** What a run provides to the processes it runs. */
export type Services =
  | RunInfo.RunInfo
  | RunLog.RunLog
  | LogSink
  | RunRoutes.RunRoutes
  | RunControl.RunControl
  | RunLimits.RunLimits
  | AgentSessions.AgentSessions
  | ChildProcesses.ChildProcesses
  | Run
  | MachineProvider
  | AgentLauncher
  | NodeContext.NodeContext

/** The services a launcher or machine provider may use. */
export type RunServices = Exclude<Services, MachineProvider | AgentLauncher>

/**
 * Wire a run from its parts: how agents are started (`launcher`) and where
 * machines come from (`machines`, default local).
 */
export const make = (
  options: LayerOptions & {
    readonly launcher: Layer.Layer<AgentLauncher, never, RunServices | MachineProvider>
    /** Built after the run's server (an ssh provider forwards its port), released before it. */
    readonly machines?: Layer.Layer<MachineProvider, never, RunServices>
    readonly logs?: Layer.Layer<LogSink, never, RunInfo.RunInfo>
  }
): Layer.Layer<Services, NodeRun.RunStartError> => {
  const base = Layer.merge(
    RunInfo.layer({
      ...(options.home === undefined ? {} : { home: options.home }),
      ...(options.program === undefined ? {} : { program: options.program })
    }),
    NodeContext.layer
  )
  const run = NodeRun.layer(options).pipe(
    Layer.provideMerge(Server.layer(options)),
    Layer.provideMerge(AgentSessions.layer(options)),
    Layer.provideMerge(RunLog.layer),
    Layer.provideMerge(Layer.mergeAll(RunRoutes.layer, RunControl.layer, RunLimits.layer(options), ChildProcesses.layer)),
    Layer.provideMerge(options.logs ?? JsonlLogSink.layer)
  )
  const services = (options.machines ?? LocalMachineProvider.layer).pipe(Layer.provideMerge(run))
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
): Layer.Layer<Services, NodeRun.RunStartError> => {
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
