/**
 * @ramure/core: processes, agents and machines, and the services of a run.
 * Platform-free: a run on Node comes from `@ramure/node`.
 */
export * as Agent from "./Agent.js"
export * as AgentLauncher from "./AgentLauncher.js"
export * as AgentSessions from "./AgentSessions.js"
export * as Budget from "./Budget.js"
export * as ChildProcesses from "./ChildProcesses.js"
export * as Errors from "./Errors.js"
export * as LogSink from "./LogSink.js"
export * as LogThrottle from "./LogThrottle.js"
export * as Machine from "./Machine.js"
export * as MachineInfo from "./MachineInfo.js"
export * as Process from "./Process.js"
export * as Run from "./Run.js"
export * as RunControl from "./RunControl.js"
export * as RunEvent from "./RunEvent.js"
export * as RunInfo from "./RunInfo.js"
export * as RunLimits from "./RunLimits.js"
export * as RunLog from "./RunLog.js"
export * as RunRoutes from "./RunRoutes.js"
export * as RunStatus from "./RunStatus.js"
export * as Sandbox from "./Sandbox.js"
export * as Signature from "./Signature.js"
export * as WarmPool from "./WarmPool.js"
export {
  AgentCrashed,
  AgentNotLive,
  AgentStartError,
  BudgetExceeded,
  LogWriteFailed,
  ProcessCancelled,
  ProcessFailed,
  ProcessTimeout,
  ToolError
} from "./Errors.js"
