/**
 * A run on Node, wired from its parts: the run's services, its server on
 * 127.0.0.1, its log files, its registry entry and signal handling, machines
 * (local by default) and an agent launcher. `Ramure.layer` (package
 * `ramure`) is this with pi agents in tmux.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import type { AgentLauncher } from "@ramure/core/AgentLauncher"
import * as AgentSessions from "@ramure/core/AgentSessions"
import * as Budget from "@ramure/core/Budget"
import * as ChildProcesses from "@ramure/core/ChildProcesses"
import * as NodeRun from "./internal/runLifecycle.js"
import * as Server from "./NodeRunServer.js"
import * as Journal from "@ramure/core/Journal"
import * as IsolatedMachineProvider from "./IsolatedMachineProvider.js"
import * as JsonlLogSink from "./JsonlLogSink.js"
import * as LocalMachineProvider from "./LocalMachineProvider.js"
import * as StatusFile from "./StatusFile.js"
import * as NodeProgress from "./NodeProgress.js"
import * as NodeTracing from "./NodeTracing.js"
import type { LogSink } from "@ramure/core/LogSink"
import type { MachineProvider } from "@ramure/core/Machine"
import type { Run } from "@ramure/core/Run"
import * as RunControl from "@ramure/core/RunControl"
import * as RunInfo from "@ramure/core/RunInfo"
import * as RunLimits from "@ramure/core/RunLimits"
import * as RunLog from "@ramure/core/RunLog"
import * as RunRoutes from "@ramure/core/RunRoutes"
import * as TmuxMachineProvider from "./TmuxMachineProvider.js"

export { RunStartError } from "./internal/runLifecycle.js"

export interface LayerOptions extends NodeRun.Options, RunLimits.Options, Server.Options, NodeProgress.Options {
  /** `RAMURE_HOME` (default: the environment variable, else `~/.ramure`). */
  readonly home?: string
  /**
   * Resume the run with this execution id after its orchestrator died (default:
   * `RAMURE_RESUME`, which `ramure resume` sets): see the README's "Durable runs".
   */
  readonly resume?: string
  /** Name shown by `ramure ls` (default: the script's file name). */
  readonly program?: string
  /**
   * Where the run's traces go (OpenTelemetry): by default over OTLP when
   * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set, nowhere
   * otherwise; `false`: nowhere; `{ exporter }`: to that exporter.
   */
  readonly traces?: NodeTracing.Traces
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
  | Budget.Budgets
  | ChildProcesses.ChildProcesses
  | Journal.Journal
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
  // The tracer is set first, so that everything the run builds and runs is traced under the run's span.
  const base = NodeTracing.layer(options.traces).pipe(
    Layer.mapError((error) => new NodeRun.RunStartError({ message: error.message })),
    Layer.provideMerge(Layer.merge(
      RunInfo.layer({
        ...(options.home === undefined ? {} : { home: options.home }),
        ...(options.program === undefined ? {} : { program: options.program }),
        ...(options.resume === undefined ? {} : { resume: options.resume })
      }),
      NodeContext.layer
    ))
  )
  const run = NodeRun.layer(options).pipe(
    // Released after the run's end is logged: the progress line shows how it ended.
    Layer.provideMerge(NodeProgress.layer(options)),
    Layer.provideMerge(Server.layer(options)),
    Layer.provideMerge(AgentSessions.layer(options)),
    Layer.provideMerge(Budget.layer),
    Layer.provideMerge(Journal.layer),
    // STATUS.md lives beside the log files; it is written last, once the run has ended.
    Layer.provideMerge(options.logs === undefined ? StatusFile.layer() : Layer.empty),
    Layer.provideMerge(RunLog.layer),
    Layer.provideMerge(Layer.mergeAll(RunRoutes.layer, RunControl.layer, RunLimits.layer(options), ChildProcesses.layer)),
    Layer.provideMerge(options.logs ?? JsonlLogSink.layer)
  )
  // Worktree and sandboxed machines are made on top of whichever provider the run uses.
  const machines = IsolatedMachineProvider.layer.pipe(Layer.provide(options.machines ?? LocalMachineProvider.layer))
  const services = machines.pipe(Layer.provideMerge(run))
  // The launcher needs the run (a warm pool serves its pis' connections) and is released before it.
  return options.launcher.pipe(Layer.provideMerge(services), Layer.provideMerge(base))
}

/**
 * Machines for agents on this host: in tmux sessions (`tmux -L ramure attach
 * -t …`) when tmux is installed, else headless local processes. `provider` (or
 * `RAMURE_PROVIDER`, `tmux` or `local`) forces one.
 */
export const hostMachines = (provider: "tmux" | "local" | undefined = process.env.RAMURE_PROVIDER as "tmux" | "local" | undefined) =>
  provider === "local"
    ? LocalMachineProvider.layer
    : provider === "tmux"
    ? TmuxMachineProvider.layer()
    : Layer.unwrapEffect(
      Effect.map(TmuxMachineProvider.available, (tmux) => (tmux ? TmuxMachineProvider.layer() : LocalMachineProvider.layer))
    )
