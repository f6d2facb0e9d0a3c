/** `ramure stop [id]`: cancel a live run's root process and wait for it to exit. */
import { Command, Options } from "@effect/cli"
import * as Registry from "@ramure/node/Registry"
import { shortId } from "@ramure/core/RunInfo"
import { Console, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as ControlClient from "../ControlClient.js"
import { HostError } from "../Errors.js"
import * as Format from "../Format.js"
import * as Runs from "../Runs.js"
import * as Tmux from "../Tmux.js"
import { runId } from "./shared.js"

const grace = Options.float("grace").pipe(
  Options.withDefault(10),
  Options.withDescription("Seconds to wait for the run to exit before sending it SIGTERM.")
)

export const stop = Command.make("stop", { id: runId, grace }, ({ grace, id }) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    const run = yield* Runs.resolve(home, id)
    const entry = yield* Runs.requireLive(home, run)
    const short = shortId(run.id)
    const started = Date.now()
    const asked = yield* Effect.either(
      Effect.scoped(Effect.flatMap(ControlClient.connect(entry), (client) => client.stop("ramure stop")))
    )
    const gone = Either.isLeft(asked) && !Registry.isAlive(entry.pid)
    let how = Either.isRight(asked) ? "stopped" : gone ? "had already exited" : "terminated (SIGTERM)"
    if (Either.isLeft(asked) && !gone) yield* Console.error(`${asked.left.message}; sending SIGTERM to pid ${entry.pid}`)
    let exited = gone || (Either.isRight(asked) && (yield* Runs.waitForExit(entry.pid, grace * 1000)))
    if (!exited) {
      if (Either.isRight(asked)) how = `did not exit within ${grace} s, terminated (SIGTERM)`
      yield* Effect.try(() => process.kill(entry.pid, "SIGTERM")).pipe(Effect.ignore)
      exited = yield* Runs.waitForExit(entry.pid, 5000)
    }
    if (!exited) {
      return yield* new HostError({ reason: `run ${short} (pid ${entry.pid}) is still running after SIGTERM; kill -9 ${entry.pid}` })
    }
    // Its own entry only, if it did not remove it: the others are `ramure gc`'s.
    if (!Registry.entryAlive(entry)) fs.rmSync(Registry.entryPath(home, run.id), { force: true })
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    yield* Console.log(`run ${short} ${how} after ${seconds} s: ${Format.oneLine(Runs.outcome(home, run.id))}`)
    const left = yield* Tmux.sessionsOf(run.id)
    yield* Console.log(
      left.length === 0 ? "no tmux sessions left" : `tmux sessions still open: ${left.join(", ")} (ramure gc kills them)`
    )
  })
).pipe(
  Command.withDescription("Stop a live run: its root process is cancelled, scopes close and agents are cleaned up; after --grace seconds it gets SIGTERM.")
)
