/**
 * One layer that wires a run of real pi agents, and the main that runs it:
 * `program.pipe(Effect.provide(Ramure.layer()), Ramure.runMain)`.
 */
import * as Main from "@ramure/node/Main"
import * as NodeRamure from "@ramure/node/NodeRamure"
import * as PiAgents from "@ramure/pi/PiAgents"
import * as RemotePiAgents from "@ramure/pi/RemotePiAgents"
import * as SshMachineProvider from "@ramure/ssh/SshMachineProvider"
import * as RamureTest from "@ramure/testing/RamureTest"
import type { Layer } from "effect"

export type { LayerOptions, Services } from "@ramure/node/NodeRamure"
export { RunStartError } from "@ramure/node/NodeRamure"

/** Wire a run from its parts: an agent launcher, machines (default local), logs (default JSONL files). */
export const make = NodeRamure.make

/**
 * Run a program as the process's main: a failure (`ProcessTimeout`, a stop by
 * `ramure stop`, …) is one line on stderr, a defect keeps its stack trace;
 * exit code 1, or 130 / 143 / 129 after SIGINT / SIGTERM / SIGHUP.
 */
export const runMain = Main.runMain

/** A run whose agents play scripts instead of pi (see `ScriptedAgents`). */
export const layerScripted = RamureTest.layerScripted

export interface Options extends NodeRamure.LayerOptions, PiAgents.Options {
  /** Where agents run on this host: `tmux` (default when installed) or `local` (headless); `RAMURE_PROVIDER` too. */
  readonly provider?: "tmux" | "local"
  /** Put agents on these hosts, reached with OpenSSH (see `SshMachineProvider`). */
  readonly ssh?: SshMachineProvider.Options
}

/**
 * A run of real pi agents: in tmux sessions when tmux is installed, else as
 * headless local processes; with `ssh`, on those hosts.
 */
export const layer = (options: Options = {}): Layer.Layer<NodeRamure.Services, NodeRamure.RunStartError> =>
  NodeRamure.make({
    ...options,
    // A killed run's agents wait for a resume as long as its pis do (their dead-man switch).
    resumableFor: options.resumableFor ?? options.unreachableTimeout ?? PiAgents.defaultUnreachableTimeout,
    launcher: RemotePiAgents.layer(options),
    machines: options.ssh !== undefined ? SshMachineProvider.layer(options.ssh) : NodeRamure.hostMachines(options.provider)
  })
