/**
 * The tmux side of the CLI: ramure's sessions live on their own socket
 * (`tmux -L ramure`, or `RAMURE_TMUX_SOCKET`), named `ramure-<id8>-<agent>`
 * and labelled with their owner; the dialect is core's.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Tmux from "@ramure/node/Tmux"
import { Effect } from "effect"

/** The tmux socket name ramure uses. */
export const socket = Tmux.currentSocket

/** Every session on the socket (none when tmux or its server is missing). */
export const sessions: Effect.Effect<ReadonlyArray<string>, never, CommandExecutor.CommandExecutor> = Effect.suspend(() =>
  Tmux.listPanes(socket())
).pipe(
  Effect.map((panes) => [...new Set(panes.map((pane) => pane.session))]),
  Effect.orElseSucceed(() => [])
)

/** Sessions of the run `executionId`. */
export const sessionsOf = (executionId: string) =>
  Effect.map(sessions, (names) => names.filter((name) => name.startsWith(Tmux.sessionPrefix(executionId))))
