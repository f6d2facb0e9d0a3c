/**
 * What a run killed with SIGKILL leaves on its ssh hosts (tmux sessions, pi,
 * its directory) and here (its master connection): each host a run uses is
 * recorded in `<home>/ssh/<execution id>-<n>.json` until the run releases it,
 * so a later run (or `ramure gc`) can clean up after a run that died.
 *
 * @internal
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import { Effect, Schema } from "effect"
import * as nodeFs from "node:fs"
import * as path from "node:path"
import { processAlive } from "@ramure/node/Owner"
import * as Registry from "@ramure/node/Registry"
import { shortId } from "@ramure/core/RunInfo"
import { runCollect } from "@ramure/node/LocalMachine"
import { remoteCommand } from "./sshConnection.js"

export const HostRecord = Schema.Struct({
  executionId: Schema.String,
  /** The run's process, and its start time (so a recycled pid is not taken for the run). */
  pid: Schema.Number,
  pidStarted: Schema.optional(Schema.String),
  host: Schema.String,
  /** `ssh` arguments up to and including the destination (through the control socket while the master lives). */
  sshArgs: Schema.Array(Schema.String),
  controlPath: Schema.String,
  destination: Schema.String,
  tmuxSocket: Schema.String,
  runDirectory: Schema.String
})
export type HostRecord = typeof HostRecord.Type

export const recordsDirectory = (home: string): string => path.join(home, "ssh")

/** Kill a run's sessions (their process groups first) and remove its directory. */
export const killRunScript = `
sock=$1 prefix=$2 dir=$3
for session in $(tmux -L "$sock" list-sessions -F '#{session_name}' 2>/dev/null | grep "^$prefix"); do
  pid=$(tmux -L "$sock" display-message -p -t "=$session:" '#{pane_pid}' 2>/dev/null)
  [ -n "$pid" ] && kill -s KILL -- "-$pid" 2>/dev/null
  tmux -L "$sock" kill-session -t "=$session" 2>/dev/null
  echo "$session"
done
rm -rf -- "$dir"
exit 0`

/** The remote command line that cleans up after `record`'s run. */
export const cleanupCommand = (record: HostRecord): string =>
  remoteCommand(killRunScript, [record.tmuxSocket, `ramure-${shortId(record.executionId)}-`, record.runDirectory])

const ssh = (args: ReadonlyArray<string>) =>
  runCollect(Command.make("ssh", ...args)).pipe(
    Effect.timeout("20 seconds"),
    Effect.map((result) => ({ ok: result.exitCode === 0, stdout: result.stdout })),
    Effect.orElseSucceed(() => ({ ok: false, stdout: "" }))
  )

export interface Collected {
  readonly executionId: string
  readonly host: string
  /** The tmux sessions killed there. */
  readonly sessions: ReadonlyArray<string>
  /** Whether the host answered (if not, the record is kept for a later try). */
  readonly reached: boolean
}

/** Clean up after every recorded run whose process is gone; what was done. */
export const collect = (home: string): Effect.Effect<ReadonlyArray<Collected>, never, CommandExecutor.CommandExecutor> =>
  Effect.gen(function* () {
    const directory = recordsDirectory(home)
    const files = yield* Effect.sync(() => {
      try {
        return nodeFs.readdirSync(directory).filter((name) => name.endsWith(".json")).map((name) => path.join(directory, name))
      } catch {
        return []
      }
    })
    const decode = Schema.decodeUnknownOption(Schema.parseJson(HostRecord))
    const dead = files.flatMap((file) => {
      let text: string
      try {
        text = nodeFs.readFileSync(file, "utf8")
      } catch {
        return []
      }
      const record = decode(text)
      // A gone run whose agents still wait for a resume keeps what it has there; so does a run resumed since.
      return record._tag === "Some" && !processAlive(record.value.pid, record.value.pidStarted) &&
          !Registry.keeps(home, record.value.executionId)
        ? [{ file, record: record.value }]
        : []
    })
    return yield* Effect.forEach(dead, ({ file, record }) =>
      Effect.gen(function* () {
        const cleaned = yield* ssh([...record.sshArgs, cleanupCommand(record)])
        // The dead run's master may still be up, holding its tunnels.
        yield* ssh(["-S", record.controlPath, "-O", "exit", record.destination])
        if (cleaned.ok) {
          yield* Effect.sync(() => {
            nodeFs.rmSync(file, { force: true })
            nodeFs.rmSync(record.controlPath, { force: true })
          })
        }
        return {
          executionId: record.executionId,
          host: record.host,
          sessions: cleaned.stdout.split("\n").filter((line) => line.length > 0),
          reached: cleaned.ok
        }
      }), { concurrency: "unbounded" })
  })

export const recordFile = (home: string, name: string): string => path.join(recordsDirectory(home), `${name}.json`)

/** Record that the run uses `record.host` (0600); removed when the run releases the host. */
export const write = (home: string, name: string, record: HostRecord): Effect.Effect<string> =>
  Effect.sync(() => {
    const file = recordFile(home, name)
    nodeFs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    nodeFs.writeFileSync(`${file}.tmp`, JSON.stringify(record), { mode: 0o600 })
    nodeFs.renameSync(`${file}.tmp`, file)
    return file
  })
