/** `ramure web [id]`: a page on 127.0.0.1 to watch and steer live runs and read finished ones. */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as Runs from "../Runs.js"
import * as WebServer from "../WebServer.js"

const runId = Args.text({ name: "id" }).pipe(
  Args.withDescription("The run the page opens on (any unique prefix of its execution id); without it, the newest live run, else the newest run. Every run of RAMURE_HOME can be picked on the page."),
  Args.optional
)

const port = Options.integer("port").pipe(
  Options.withDescription("Port on 127.0.0.1 (default: any free one)."),
  Options.optional
)

export const web = Command.make("web", { id: runId, port }, ({ id, port }) =>
  Effect.gen(function* () {
    const home = yield* Runs.home
    // An id names the run the page opens on (any unique prefix; a bad one is an error here, not on the page).
    const run = Option.isSome(id) ? yield* Runs.resolve(home, id) : undefined
    const server = yield* WebServer.make({ home, ...(Option.isSome(port) ? { port: port.value } : {}) })
    yield* Console.log(`ramure web: ${server.url}${run === undefined ? "" : `#${run.id}`}`)
    yield* Console.log("Open it in a browser on this machine; anyone with this address can steer your runs. Ctrl-C stops serving.")
    return yield* Effect.never
  }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(
    "Serve a page on 127.0.0.1 that shows runs live (process tree, agents, a timeline of model turns and tool calls, the log) and steers live ones (call endpoints, message agents, stop). The address it prints carries a secret: only it opens the page."
  )
)
