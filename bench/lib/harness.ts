/**
 * Shared set-up: private RAMURE_HOME directories, scripted runs with an
 * `echo` tool, a raw `ws` echo server and client.
 */
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as Ramure from "ramure/Ramure"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import { Deferred, Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import WebSocket, { WebSocketServer } from "ws"

/** A fresh private directory, removed when the scope closes. */
export const tempDirectory = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), `ramure-bench-${prefix}-`))),
    (directory) => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true }))
  )

/**
 * A scripted run (default JSONL logs, real WebSocket server) in a fresh
 * RAMURE_HOME, removed afterwards, unless `options.home` is given: `body`
 * runs as the root process.
 */
export const scriptedRun = <A, E, R>(
  scripts: ScriptedAgents.Scripts,
  body: (home: string) => Effect.Effect<A, E, R>,
  options: Ramure.LayerOptions = {}
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const home = options.home ?? (yield* tempDirectory("home"))
      const main = Process.make("bench", () => body(home))
      return yield* main().pipe(
        Effect.provide(Ramure.layerScripted(scripts, { home, program: "bench", ...options }))
      )
    })
  )

export const EchoArgs = Schema.Struct({ text: Schema.String })

/** Give `agent` the `echo` tool: it returns its `text` argument. */
export const addEcho = (agent: Agent.Agent) =>
  agent.on("echo", { description: "Echo the text back", parameters: EchoArgs }, ({ text }) => Effect.succeed(text))

/** Scripts that hand each driver to the benchmark once it has the `echo` tool, then idle. */
export const handOver = (drivers: Map<string, Deferred.Deferred<ScriptedAgents.Driver>>): ScriptedAgents.Scripts =>
  () => (driver) =>
    Effect.gen(function* () {
      yield* driver.waitForTool("echo")
      const slot = drivers.get(driver.agentId)
      if (slot !== undefined) yield* Deferred.succeed(slot, driver)
      return yield* Effect.never
    })

/** A `ws` server on 127.0.0.1 that echoes every frame; closed with the scope. */
export const echoServer = Effect.acquireRelease(
  Effect.async<{ readonly server: WebSocketServer; readonly url: string }>((resume) => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 })
    server.on("connection", (socket) => {
      socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }))
    })
    server.on("listening", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ server, url: `ws://127.0.0.1:${port}` }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      for (const client of server.clients) client.terminate()
      server.close(() => resume(Effect.void))
    })
)

/** A client of the echo server: `roundTrip(text)` sends a frame and resolves with the echo. */
export const echoClient = (url: string) =>
  Effect.acquireRelease(
    Effect.async<WebSocket, Error>((resume) => {
      const socket = new WebSocket(url)
      socket.once("open", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.terminate())
  ).pipe(
    Effect.map((socket) => {
      let waiting: ((text: string) => void) | undefined
      socket.on("message", (data) => {
        const resolve = waiting
        waiting = undefined
        resolve?.(data.toString())
      })
      return {
        roundTrip: (text: string) =>
          new Promise<string>((resolve) => {
            waiting = resolve
            socket.send(text)
          })
      }
    })
  )
