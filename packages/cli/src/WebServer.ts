/**
 * The server behind `ramure web`: a static page and a small JSON and
 * server-sent-events API, on 127.0.0.1 only. Every request must carry the
 * server's random secret as the first segment of its path (compared in
 * constant time) and name this server as its `Host` (so a page of another
 * site cannot reach it through a DNS name of its own); anything else is a
 * 404 or a 403 that says nothing more.
 *
 * It holds no state of its own about runs: a live run is followed and
 * steered through its control channel (`ControlRpcs`, as the other verbs do),
 * a finished one is read from its log files; both are folded with
 * `RunStatus`, as `ramure status` does.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type { LogEntry } from "@ramure/core/RunEvent"
import { makeSecret } from "@ramure/core/RunRoutes"
import * as RunStatus from "@ramure/core/RunStatus"
import * as Registry from "@ramure/node/Registry"
import { Chunk, Effect, Option, Schema, type Scope, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as Http from "node:http"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as ControlClient from "./ControlClient.js"
import { RunUnreachable, WebServerError } from "./Errors.js"
import * as Runs from "./Runs.js"

export interface Options {
  readonly home: string
  /** Port on 127.0.0.1 (default: any free one). */
  readonly port?: number
  /** The directory of the page's files (default: `web/` beside the CLI's bundle). */
  readonly assets?: string
}

export interface WebServer {
  /** `http://127.0.0.1:<port>/<secret>/`: the page, and the only way in. */
  readonly url: string
}

/** The page's files, as the build writes them. */
const assetTypes: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8"
}

const defaultAssets = () => path.join(path.dirname(fileURLToPath(import.meta.url)), "web")

const readAssets = (directory: string) =>
  Effect.try({
    try: () => new Map(Object.keys(assetTypes).map((name) => [name, fs.readFileSync(path.join(directory, name))])),
    catch: () => new WebServerError({ message: `the web view's page is not built (${directory}): run npm run build` })
  })

const securityHeaders = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

const respond = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status, headers: securityHeaders })
const refuse = (status: number) => HttpServerResponse.text(status === 404 ? "not found" : "forbidden", { status, headers: securityHeaders })

const sameSecret = (given: string, secret: string): boolean => {
  const a = Buffer.from(given)
  const b = Buffer.from(secret)
  return a.length === b.length && crypto.timingSafeEqual(a, b)
}

const SendBody = Schema.Struct({ agent: Schema.String, text: Schema.String })
const CallBody = Schema.Struct({ process: Schema.optional(Schema.String), endpoint: Schema.String, args: Schema.Unknown })

/** One server-sent event. */
const event = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

/** The page's events, and the end of the entries. */
type Item = { readonly _tag: "Entry"; readonly entry: LogEntry } | { readonly _tag: "Ended" }

/**
 * A run's entries: a live run's through its control channel until its end;
 * what its log files hold beyond that (all of them for a finished run, the
 * rest for one whose connection dropped or that ended before it could be
 * reached). A run still alive that cannot be followed is an error.
 */
const runEntries = (home: string, run: Runs.Run): Stream.Stream<Item, RunUnreachable> => {
  let last = 0
  let ended = false
  const alive = () => run.live !== undefined && Registry.isAlive(run.live.pid)
  const live: Stream.Stream<LogEntry, RunUnreachable> = run.live === undefined
    ? Stream.empty
    : Stream.unwrapScoped(Effect.map(ControlClient.connect(run.live), (client) => client.follow(0))).pipe(
      Stream.filterMap((event) => (event._tag === "Entry" ? Option.some(event.entry) : Option.none())),
      Stream.catchAll((error) => (alive() ? Stream.fail(error) : Stream.empty))
    )
  const rest = Stream.suspend(() =>
    ended
      ? Stream.empty
      : alive()
      ? Stream.fail(new RunUnreachable({ run: run.id.slice(0, 8), reason: "its control connection was lost" }))
      : Stream.fromIterable(Runs.readLog(home, run.id).filter((entry) => entry.n > last))
  )
  return Stream.concat(live, rest).pipe(
    Stream.tap((entry) =>
      Effect.sync(() => {
        last = entry.n
        if (entry.event._tag === "RunEnded") ended = true
      })),
    Stream.map((entry): Item => ({ _tag: "Entry", entry })),
    Stream.concat(Stream.succeed<Item>({ _tag: "Ended" }))
  )
}

/**
 * A run as a stream of events for the page: `reset` (start over), `batch`
 * (entries and the status after them), `end` (the run is over; nothing
 * more), `failure` (it cannot be followed).
 */
const runEvents = (home: string, run: Runs.Run): Stream.Stream<string> => {
  const status = RunStatus.empty()
  const batches = runEntries(home, run).pipe(
    Stream.groupedWithin(500, "100 millis"),
    Stream.map((chunk) => {
      const entries: Array<LogEntry> = []
      let ended = false
      for (const item of Chunk.toReadonlyArray(chunk)) {
        if (item._tag === "Ended") ended = true
        else {
          entries.push(item.entry)
          RunStatus.step(status, item.entry)
        }
      }
      const batch = entries.length === 0 ? "" : event("batch", { entries, status: RunStatus.snapshot(status) })
      return ended ? `${batch}${event("end", { outcome: status.outcome ?? Runs.outcomeOf([]) })}` : batch
    }),
    Stream.filter((text) => text.length > 0),
    Stream.catchAll((error) => Stream.succeed(event("failure", { message: error.message })))
  )
  return Stream.concat(Stream.succeed(event("reset", { id: run.id, live: run.live !== undefined })), batches)
}

/** What a command sent to a live run answers: its value, or an error status with the one-line reason. */
const answer = <A>(effect: Effect.Effect<A, { readonly message: string; readonly _tag: string }, Scope.Scope>) =>
  effect.pipe(
    Effect.map((value) => respond(200, { ok: true, value: value ?? null })),
    Effect.catchAll((error) =>
      Effect.succeed(
        respond(error._tag === "RunUnreachable" ? 502 : error._tag === "UnknownRun" ? 404 : 409, { ok: false, error: error.message })
      )),
    Effect.scoped
  )

/** Serve the web view until the scope closes. */
export const make = Effect.fn("WebServer.make")(function* (options: Options) {
  const assets = yield* readAssets(options.assets ?? defaultAssets())
  const secret = makeSecret()
  const { home } = options

  const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: options.port ?? 0, host: "127.0.0.1" }).pipe(
    Effect.mapError((error) => new WebServerError({ message: `cannot listen on 127.0.0.1:${options.port ?? 0}: ${String(error.cause ?? error)}` }))
  )
  if (server.address._tag !== "TcpAddress") return yield* new WebServerError({ message: "the server did not bind a TCP port" })
  const port = server.address.port
  const hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`])

  const runOf = (id: string) => Runs.resolve(home, Option.some(id))
  const liveRun = (id: string) => Effect.flatMap(runOf(id), (run) => Runs.requireLive(home, run))
  const withRun = <A, E>(id: string, use: (client: ControlClient.ControlClient) => Effect.Effect<A, E>) =>
    Effect.flatMap(Effect.flatMap(liveRun(id), (entry) => ControlClient.connect(entry)), use)
  const body = <A, I>(request: HttpServerRequest.HttpServerRequest, schema: Schema.Schema<A, I>) =>
    request.json.pipe(
      Effect.flatMap(Schema.decodeUnknown(schema)),
      Effect.mapError(() => ({ _tag: "BadRequest", message: "the request's body is not what this call takes" }))
    )

  const app = Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!hosts.has(request.headers.host ?? "")) return refuse(403)
    const url = new URL(request.url, `http://127.0.0.1:${port}`)
    const [given = "", ...route] = url.pathname.split("/").slice(1)
    if (!sameSecret(given, secret)) return refuse(404)
    if (route.length === 0) return HttpServerResponse.redirect(`/${secret}/`, { status: 302, headers: securityHeaders })
    const at = route.join("/")
    if (request.method === "GET") {
      const file = at === "" ? "index.html" : at
      const content = assets.get(file)
      if (content !== undefined) return HttpServerResponse.uint8Array(content, { contentType: assetTypes[file]!, headers: securityHeaders })
      if (at === "api/runs") return respond(200, yield* Runs.list(home, { all: true }))
      if (route[0] === "api" && route[1] === "runs" && route[3] === "events" && route.length === 4) {
        return yield* runOf(decodeURIComponent(route[2]!)).pipe(
          Effect.map((run) =>
            HttpServerResponse.stream(Stream.encodeText(runEvents(home, run)), {
              contentType: "text/event-stream",
              headers: securityHeaders
            })),
          Effect.catchAll((error) => Effect.succeed(respond(404, { ok: false, error: error.message })))
        )
      }
      return refuse(404)
    }
    if (request.method !== "POST" || route[0] !== "api" || route[1] !== "runs" || route.length !== 4) return refuse(404)
    // Only this page posts: a form of another origin (which could not know the secret anyway) is refused too.
    const origin = request.headers.origin
    if (origin !== undefined && !hosts.has(origin.replace(/^http:\/\//, ""))) return refuse(403)
    if (!(request.headers["content-type"] ?? "").startsWith("application/json")) return refuse(403)
    const id = decodeURIComponent(route[2]!)
    switch (route[3]) {
      case "send":
        return yield* answer(Effect.flatMap(body(request, SendBody), ({ agent, text }) =>
          withRun(id, (client) => client.send(agent, text))))
      case "call":
        return yield* answer(Effect.flatMap(body(request, CallBody), ({ args, endpoint, process }) =>
          withRun(id, (client) => client.call(endpoint, args, { process }))))
      case "stop":
        return yield* answer(withRun(id, (client) => client.stop("stopped from the web view")))
      default:
        return refuse(404)
    }
  })

  yield* server.serve(app)
  return { url: `http://127.0.0.1:${port}/${secret}/` } satisfies WebServer
})
