/**
 * The agent channel's transport, side by side in one process: sequential
 * WebSocket echo round trips of one agent-sized JSON frame over
 *
 * - `ws`: raw `ws` client and server (callbacks and a promise per round trip);
 * - `Connection`: ramure's `Connection` over `ws` at both ends, as the run and
 *   its agents use it today;
 * - `Socket`: `@effect/platform`'s `Socket` at both ends (the client from
 *   `Socket.makeWebSocket` with `NodeSocket.layerWebSocketConstructor`, the
 *   server from `NodeSocketServer.makeWebSocket`), handlers as Effects;
 * - `Socket → Connection`: the platform client against the `Connection`
 *   server (only the agent's side switched).
 *
 * Rounds alternate their order (see `interleaved`) so that the machine's
 * drift hits every transport alike. Reports latency percentiles over every
 * measured round trip and the process's CPU time (both ends) per round trip.
 *
 *   npx tsx bench/lib/socketCompare.ts [roundTrips per transport, default 20000] [rounds, default 10]
 *
 * Not a figure of `npm run bench`: it informs a choice of implementation.
 */
import * as Socket from "@effect/platform/Socket"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Connection from "@ramure/protocol/Connection"
import * as Protocol from "@ramure/protocol/Protocol"
import { Deferred, Effect, Queue, type Scope } from "effect"
import * as os from "node:os"
import { WebSocket, WebSocketServer } from "ws"
import { interleaved, now } from "./Figure.js"
import { echoClient, echoServer } from "./harness.js"

/** What an agent sends when a pi tool finishes: about 200 bytes of JSON. */
const frame = Protocol.encode({
  _tag: "Event",
  event: {
    _tag: "ToolExecutionEnded",
    toolCallId: "toolu_01HqUj3rT9x2b8VvKQ7nYc4E",
    tool: "bash",
    isError: false,
    result: "total 24\ndrwxr-xr-x 4 agent agent 4096 src\n-rw-r--r-- 1 agent agent 812 package.json"
  }
})

/** A transport under test: `batch(n)` makes `n` sequential round trips and returns each one's latency, in µs. */
interface Transport {
  readonly name: string
  readonly batch: (n: number) => Effect.Effect<Array<number>>
}

/** Sequential round trips in Effect: `send`, then wait for the echo on `replies`. */
const effectBatch = (send: (text: string) => Effect.Effect<void>, replies: Queue.Dequeue<unknown>) => (n: number) =>
  Effect.gen(function* () {
    const samples = new Array<number>(n)
    for (let i = 0; i < n; i++) {
      const started = now()
      yield* send(frame)
      yield* Queue.take(replies)
      samples[i] = (now() - started) * 1000
    }
    return samples
  })

const listening = (server: WebSocketServer) =>
  Effect.async<string>((resume) => {
    server.once("listening", () => {
      const address = server.address()
      resume(Effect.succeed(`ws://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`))
    })
  })

const rawWs: Effect.Effect<Transport, Error, Scope.Scope> = Effect.gen(function* () {
  const { url } = yield* echoServer
  const client = yield* echoClient(url)
  return {
    name: "ws",
    batch: (n) =>
      Effect.promise(async () => {
        const samples = new Array<number>(n)
        for (let i = 0; i < n; i++) {
          const started = now()
          await client.roundTrip(frame)
          samples[i] = (now() - started) * 1000
        }
        return samples
      })
  }
})

/** A `ws` server whose every connection echoes through a `Connection`, as the run's server reads and writes. */
const connectionServer = Effect.acquireRelease(
  Effect.sync(() => new WebSocketServer({ host: "127.0.0.1", port: 0 })),
  (server) =>
    Effect.async<void>((resume) => {
      for (const client of server.clients) client.terminate()
      server.close(() => resume(Effect.void))
    })
).pipe(
  Effect.tap((server) => {
    server.on("connection", (socket) =>
      Effect.runFork(Effect.flatMap(Connection.fromWebSocket(socket), (connection) => connection.forEach(connection.send))))
  }),
  Effect.flatMap(listening)
)

const connectionClient = (url: string): Effect.Effect<Transport, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const socket = yield* Effect.acquireRelease(
      Effect.async<WebSocket, Error>((resume) => {
        const socket = new WebSocket(url)
        socket.once("open", () => resume(Effect.succeed(socket)))
        socket.once("error", (error) => resume(Effect.fail(error)))
      }),
      (socket) => Effect.sync(() => socket.terminate())
    )
    const connection = yield* Connection.fromWebSocket(socket)
    const replies = yield* Queue.unbounded<string>()
    yield* Effect.forkScoped(connection.forEach((text) => Queue.offer(replies, text)))
    return { name: "Connection", batch: effectBatch(connection.send, replies) }
  })

/** A platform `Socket` server: every connection echoes what it receives. */
const socketServer = Effect.gen(function* () {
  const server = yield* NodeSocketServer.makeWebSocket({ host: "127.0.0.1", port: 0 })
  yield* Effect.forkScoped(server.run((socket) =>
    Effect.flatMap(socket.writer, (write) => socket.runRaw((data) => write(data))).pipe(Effect.ignore)
  ))
  const address = server.address
  return address._tag === "TcpAddress" ? `ws://127.0.0.1:${address.port}` : ""
})

const socketClient = (url: string, name: string): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.gen(function* () {
    const socket = yield* Socket.makeWebSocket(url).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))
    const replies = yield* Queue.unbounded<string | Uint8Array>()
    const open = yield* Deferred.make<void>()
    yield* Effect.forkScoped(socket.runRaw((data) => Queue.offer(replies, data), { onOpen: Deferred.succeed(open, undefined) }))
    yield* Deferred.await(open)
    const write = yield* socket.writer
    return { name, batch: effectBatch((text) => Effect.orDie(write(text)), replies) }
  })

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const main = Effect.gen(function* () {
  const roundTrips = Number(process.argv[2] ?? 20_000)
  const rounds = Number(process.argv[3] ?? 10)
  const perRound = Math.ceil(roundTrips / rounds)
  const warmup = 2_000

  const loadBefore = os.loadavg()
  const transports = [
    yield* rawWs,
    yield* Effect.flatMap(connectionServer, connectionClient),
    yield* Effect.flatMap(socketServer, (url) => socketClient(url, "Socket")),
    yield* Effect.flatMap(connectionServer, (url) => socketClient(url, "Socket → Connection"))
  ]
  for (const transport of transports) yield* transport.batch(warmup)

  const results = new Map(transports.map((transport) => [transport.name, { samples: new Array<number>(), cpu: 0 }]))
  for (const transport of interleaved(rounds, transports)) {
    const cpu = process.cpuUsage()
    const samples = yield* transport.batch(perRound)
    const used = process.cpuUsage(cpu)
    const result = results.get(transport.name)!
    result.samples.push(...samples)
    result.cpu += used.user + used.system
  }
  const loadAfter = os.loadavg()

  const rows = [...results].map(([name, { cpu, samples }]) => {
    const sorted = samples.sort((a, b) => a - b)
    const mean = samples.reduce((sum, sample) => sum + sample, 0) / samples.length
    return { name, n: samples.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), mean, cpu: cpu / samples.length }
  })
  const digits = (value: number) => value.toFixed(1)
  const lines = [
    `Echo round trips of a ${Buffer.byteLength(frame)}-byte JSON frame, ${rounds} interleaved rounds of ${perRound} per transport (after ${warmup} warm-up each)`,
    `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}); load average ${loadBefore.map(digits).join(" ")} before, ${loadAfter.map(digits).join(" ")} after`,
    "",
    "| transport | round trips | p50 µs | p99 µs | mean µs | CPU µs / round trip |",
    "|---|---:|---:|---:|---:|---:|",
    ...rows.map((row) => `| ${row.name} | ${row.n} | ${digits(row.p50)} | ${digits(row.p99)} | ${digits(row.mean)} | ${digits(row.cpu)} |`)
  ]
  yield* Effect.sync(() => console.log(lines.join("\n")))
})

NodeRuntime.runMain(main.pipe(Effect.scoped))
