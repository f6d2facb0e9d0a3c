/**
 * One layer that wires a run: `program.pipe(Effect.provide(Ramure.layer()),
 * NodeRuntime.runMain)`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Layer } from "effect"
import type { AgentLauncher } from "./AgentLauncher.js"
import * as JsonlLogSink from "./JsonlLogSink.js"
import * as LocalMachineProvider from "./LocalMachineProvider.js"
import type { LogSink } from "./LogSink.js"
import type { MachineProvider } from "./Machine.js"
import * as RunInfo from "./RunInfo.js"
import * as Runtime from "./Runtime.js"
import * as ScriptedAgents from "./ScriptedAgents.js"

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
    readonly launcher: Layer.Layer<AgentLauncher, never, RunInfo.RunInfo | NodeContext.NodeContext>
    readonly machines?: Layer.Layer<MachineProvider, never, RunInfo.RunInfo | NodeContext.NodeContext>
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
  const services = Layer.mergeAll(
    options.launcher,
    options.machines ?? LocalMachineProvider.layer,
    Runtime.layer(options).pipe(Layer.provideMerge(logs))
  )
  return services.pipe(Layer.provideMerge(base))
}

/** A run whose agents play scripts (see `ScriptedAgents`) on local machines. */
export const layerScripted = (scripts: ScriptedAgents.Scripts, options: LayerOptions = {}) =>
  make({ ...options, launcher: ScriptedAgents.layer(scripts) })
