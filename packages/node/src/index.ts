/**
 * @ramure/node: ramure on Node: a run's server, log files, machines on this host, signals and cleanup.
 */
export * as JsonlLogSink from "./JsonlLogSink.js"
export * as LocalMachine from "./LocalMachine.js"
export * as LocalMachineProvider from "./LocalMachineProvider.js"
export * as Main from "./Main.js"
export * as NodeProgress from "./NodeProgress.js"
export * as NodeRamure from "./NodeRamure.js"
export * as NodeRunServer from "./NodeRunServer.js"
export * as NodeTracing from "./NodeTracing.js"
export * as Orphans from "./Orphans.js"
export * as Owner from "./Owner.js"
export * as Registry from "./Registry.js"
export * as StatusFile from "./StatusFile.js"
export * as Tmux from "./Tmux.js"
export * as TmuxMachineProvider from "./TmuxMachineProvider.js"
