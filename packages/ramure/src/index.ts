/**
 * ramure: structured concurrency for coding agents, on Effect. Everything a
 * program needs: processes and agents (`@ramure/core`), a run on Node
 * (`@ramure/node`), pi agents (`@ramure/pi`), machines on other hosts
 * (`@ramure/ssh`) and scripted agents for tests (`@ramure/testing`).
 */
export * from "@ramure/core"
export * as JsonlLogSink from "@ramure/node/JsonlLogSink"
export * as LocalMachineProvider from "@ramure/node/LocalMachineProvider"
export * as TmuxMachineProvider from "@ramure/node/TmuxMachineProvider"
export * as PiAgents from "@ramure/pi/PiAgents"
export * as Ramure from "./Ramure.js"
export * as RamureTest from "@ramure/testing/RamureTest"
export * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
export * as ScriptedModel from "@ramure/testing/ScriptedModel"
export * as SshMachineProvider from "@ramure/ssh/SshMachineProvider"
export * as Worktree from "./Worktree.js"
