/**
 * Files between connected agents: `send_file` copies a file of the sender's
 * machine to a peer's, `download_file` one of a peer's machine to the
 * agent's own. Both go through the machines' confined file access (regular
 * files with one name only, opened once without following links, written
 * beside the target and renamed into place; see `MachineFiles`), refuse
 * files over the connection's `maxFileBytes`, and stream: a copy holds one
 * chunk in memory and waits on nothing but its two files.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import type { Machine, MachineError } from "../Machine.js"

/** The size limit of a file copied along a connection, unless `Agent.connect` sets one (64 MiB). */
export const defaultMaxFileBytes = 64 * 1024 * 1024

export const SendFileArgs = Schema.Struct({
  to: Schema.String.annotations({ description: "id of the agent to send the file to" }),
  path: Schema.String.annotations({ description: "file to send, relative to your working directory" }),
  dest: Schema.optional(Schema.String).annotations({
    description: "where to put it, relative to the receiver's working directory (default: same path)"
  })
})

export const DownloadFileArgs = Schema.Struct({
  from: Schema.String.annotations({ description: "id of the agent to download the file from" }),
  path: Schema.String.annotations({ description: "file to download, relative to that agent's working directory" }),
  dest: Schema.optional(Schema.String).annotations({
    description: "where to put it, relative to your working directory (default: same path)"
  })
})

export const sendFileDescription = (reach: string, maxBytes: number) =>
  `Copy a regular file from your machine to another agent's (you can reach: ${reach}; at most ${maxBytes} bytes).`

export const downloadFileDescription = (reach: string, maxBytes: number) =>
  `Copy a regular file from another agent's machine to yours (you can reach: ${reach}; at most ${maxBytes} bytes).`

/**
 * Copy `path` of `from` to `dest` of `to`, at most `maxBytes`; its size.
 * The source is opened (and checked) before anything is written.
 */
export const copy = (from: Machine, path: string, to: Machine, dest: string, maxBytes: number): Effect.Effect<number, MachineError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const source = yield* from.openFile(path, { maxBytes })
      yield* to.writeFileFrom(dest, source, { mode: source.mode })
      return source.size
    })
  ).pipe(Effect.withSpan("FileTransfer.copy", { attributes: { from: from.id, path, to: to.id, dest } }))

/** `send_file`: the result text, or what went wrong. */
export const send = (
  sender: { readonly id: string; readonly machine: Machine },
  receiver: { readonly id: string; readonly machine: Machine },
  args: typeof SendFileArgs.Type,
  maxBytes: number
): Effect.Effect<{ readonly dest: string; readonly result: string }, string> => {
  const dest = args.dest ?? args.path
  return copy(sender.machine, args.path, receiver.machine, dest, maxBytes).pipe(
    Effect.mapError((error) => `cannot send ${args.path} to ${receiver.id}: ${error.message}`),
    Effect.map((bytes) => ({ dest, result: `sent ${args.path} to ${receiver.id} as ${dest} (${bytes} bytes)` }))
  )
}

/** `download_file`: the result text, or what went wrong. */
export const download = (
  agent: { readonly id: string; readonly machine: Machine },
  peer: { readonly id: string; readonly machine: Machine },
  args: typeof DownloadFileArgs.Type,
  maxBytes: number
): Effect.Effect<string, string> => {
  const dest = args.dest ?? args.path
  return copy(peer.machine, args.path, agent.machine, dest, maxBytes).pipe(
    Effect.mapError((error) => `cannot download ${args.path} from ${peer.id}: ${error.message}`),
    Effect.map((bytes) => `downloaded ${args.path} from ${peer.id} to ${dest} (${bytes} bytes)`)
  )
}
