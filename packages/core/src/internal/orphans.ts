/**
 * Synchronous last-resort cleanup: what is left of a run whose orchestrator
 * died (SIGKILL), and the forced exit on a second SIGINT. Synchronous because
 * it runs where no fiber can be waited for (a signal handler about to exit).
 *
 * @internal
 */
import { execFileSync } from "node:child_process"

// Kept free of imports from the rest of ramure: Runtime loads this module.
const socket = (): string => process.env.RAMURE_TMUX_SOCKET || "ramure"

const signalGroup = (pid: number, signal: NodeJS.Signals): boolean => {
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    return false
  }
}

const tmux = (args: ReadonlyArray<string>): string | undefined => {
  try {
    return execFileSync("tmux", ["-L", socket(), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
  } catch {
    return undefined
  }
}

/** Kill the tmux sessions of the run whose id starts with `idPrefix` (8 chars); returns their names. */
export const killSessionsSync = (idPrefix: string): ReadonlyArray<string> => {
  const listed = tmux(["list-sessions", "-F", "#{session_name} #{pid}"]) ?? ""
  const names = listed
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`ramure-${idPrefix.slice(0, 8)}-`))
  for (const name of names) {
    const panes = tmux(["list-panes", "-s", "-t", `=${name}`, "-F", "#{pane_pid}"]) ?? ""
    for (const pid of panes.split("\n").map(Number).filter((pid) => pid > 0)) signalGroup(pid, "SIGKILL")
    tmux(["kill-session", "-t", `=${name}`])
  }
  return names
}

/** SIGKILL a process group (or the lone process). */
export const killProcessSync = (pid: number): void => {
  if (signalGroup(pid, "SIGKILL")) return
  try {
    process.kill(pid, "SIGKILL")
  } catch {
    // already gone
  }
}
