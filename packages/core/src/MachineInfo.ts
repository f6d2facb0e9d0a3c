/**
 * What a person (or the CLI) needs to find a machine: its kind, working
 * directory and, on another host, how to reach it.
 */
import { Schema } from "effect"

/** How to reach a machine's host with OpenSSH (through the run's master connection while it lives). */
export const SshAccess = Schema.Struct({
  /** Host name or `~/.ssh/config` alias. */
  destination: Schema.String,
  port: Schema.optional(Schema.Number),
  user: Schema.optional(Schema.String),
  identityFile: Schema.optional(Schema.String),
  configFile: Schema.optional(Schema.String),
  /** Extra `-o` options. */
  options: Schema.optional(Schema.Array(Schema.String)),
  /** The master connection's control socket (`ssh -S`). */
  controlPath: Schema.String,
  /** The tmux socket name on that host (`tmux -L`). */
  tmuxSocket: Schema.String
})
export type SshAccess = typeof SshAccess.Type

/** A machine whose programs run in a bubblewrap sandbox (see `Sandbox`). */
export const SandboxInfo = Schema.Struct({
  network: Schema.Literal("host", "none"),
  /** bwrap and its arguments, up to the program: append `--` and a command to run it in the machine's sandbox. */
  command: Schema.Array(Schema.String)
})
export type SandboxInfo = typeof SandboxInfo.Type

/** A machine whose working directory is a worktree of a repository (see `Worktree`). */
export const WorktreeInfo = Schema.Struct({ repo: Schema.String, branch: Schema.String, base: Schema.String })
export type WorktreeInfo = typeof WorktreeInfo.Type

/** What a person (or the CLI) needs to find a machine. */
export const MachineInfo = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  cwd: Schema.String,
  host: Schema.optional(Schema.String),
  ssh: Schema.optional(SshAccess),
  sandbox: Schema.optional(SandboxInfo),
  worktree: Schema.optional(WorktreeInfo)
})
export type MachineInfo = typeof MachineInfo.Type
