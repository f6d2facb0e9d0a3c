/**
 * Sandboxed machines: a machine of this host whose programs and commands run
 * inside a sandbox that shows them their working directory and what they
 * need, and hides the rest of the host. These are the options a process
 * gives; `@ramure/node`'s `BubblewrapSandbox` makes them with bubblewrap.
 */
import { SandboxInfo } from "./MachineInfo.js"

export interface SandboxOptions {
  /** `"host"` (default): the host's network; `"none"`: only the run's port and `forwardPorts`, on the sandbox's 127.0.0.1. */
  readonly network?: "host" | "none"
  /** With `network: "none"`: ports of this host's 127.0.0.1 the sandbox reaches on its own 127.0.0.1 (a model server). */
  readonly forwardPorts?: ReadonlyArray<number>
  /** More host paths the sandbox sees, read-only (at the same path). */
  readonly readOnly?: ReadonlyArray<string>
  /** More host paths the sandbox sees and may change. */
  readonly readWrite?: ReadonlyArray<string>
}

/** What a machine's description says of its sandbox. */
export const Info = SandboxInfo
export type Info = SandboxInfo
