/**
 * The tmux side of the CLI: ramure's sessions live on their own socket
 * (`tmux -L ramure`, or `RAMURE_TMUX_SOCKET`), named `ramure-<id8>-<agent>`.
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { defaultSocket, killRunSessions } from "@ramure/core/TmuxMachineProvider"
import { Effect } from "effect"

/** The tmux socket name ramure uses. */
export const socket = (): string => process.env.RAMURE_TMUX_SOCKET || defaultSocket

/** Every session on the socket (none when tmux or its server is missing). */
export const sessions: Effect.Effect<ReadonlyArray<string>, never, CommandExecutor.CommandExecutor> = Command.make(
  "tmux",
  "-L",
  socket(),
  "list-sessions",
  "-F",
  "#{session_name}"
).pipe(
  Command.stderr("pipe"),
  Command.string,
  Effect.map((out) => out.split("\n").filter((name) => name.length > 0)),
  Effect.orElseSucceed(() => [])
)

/** The execution id prefix (8 characters) a ramure session belongs to. */
export const runOf = (session: string): string | undefined => /^ramure-([0-9a-f]{8})-/.exec(session)?.[1]

/** Sessions of the run `executionId`. */
export const sessionsOf = (executionId: string) =>
  Effect.map(sessions, (names) => names.filter((name) => runOf(name) === executionId.slice(0, 8)))

/** Kill the sessions of the run(s) whose id starts with `id8` (panes get SIGTERM first); the names killed. */
export const killRun = (id8: string) =>
  killRunSessions(id8, { socket: socket() }).pipe(Effect.orElseSucceed((): ReadonlyArray<string> => []))
