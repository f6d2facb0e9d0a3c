/**
 * ramure: structured concurrency for coding agents, on Effect.
 */
export * as Agent from "./Agent.js"
export * as AgentClient from "./AgentClient.js"
export * as AgentLauncher from "./AgentLauncher.js"
export * as AgentSessions from "./AgentSessions.js"
export * as ChildProcesses from "./ChildProcesses.js"
export * as Errors from "./Errors.js"
export * as JsonlLogSink from "./JsonlLogSink.js"
export * as LocalMachineProvider from "./LocalMachineProvider.js"
export * as LogSink from "./LogSink.js"
export * as Machine from "./Machine.js"
export * as MachineInfo from "./MachineInfo.js"
export * as PiAgents from "./PiAgents.js"
export * as Process from "./Process.js"
export * as Protocol from "./Protocol.js"
export * as Ramure from "./Ramure.js"
export * as Registry from "./Registry.js"
export * as RemotePiAgents from "./RemotePiAgents.js"
export * as Run from "./Run.js"
export * as RunControl from "./RunControl.js"
export * as RunEvent from "./RunEvent.js"
export * as RunInfo from "./RunInfo.js"
export * as RunLimits from "./RunLimits.js"
export * as RunLog from "./RunLog.js"
export * as RunRoutes from "./RunRoutes.js"
export * as RunStatus from "./RunStatus.js"
export * as ScriptedAgents from "./ScriptedAgents.js"
export * as ScriptedModel from "./ScriptedModel.js"
export * as SshMachineProvider from "./SshMachineProvider.js"
export * as TmuxMachineProvider from "./TmuxMachineProvider.js"
export {
  AgentCrashed,
  AgentNotLive,
  AgentStartError,
  LogWriteFailed,
  ProcessCancelled,
  ProcessFailed,
  ProcessTimeout,
  ToolError
} from "./Errors.js"
