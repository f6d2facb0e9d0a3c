/**
 * Ports of this host's 127.0.0.1 reachable from a sandbox without a network
 * (`network: "none"`): outside, a Unix socket per port relays to the port;
 * inside, a small Node program listens on the same port of the sandbox's own
 * loopback, relays to the socket, and runs the sandboxed program once every
 * port listens. Nothing else leaves the sandbox.
 *
 * @internal
 */
import { Effect } from "effect"
import * as net from "node:net"
import * as nodeFs from "node:fs"
import * as path from "node:path"

/** Where the sockets appear inside the sandbox. */
export const insideDirectory = "/run/ramure/forward"

/**
 * `node -e <insideProgram> <ports as JSON> <command> <args…>`: relay
 * `127.0.0.1:<port>` to `<insideDirectory>/<port>.sock`, then run the
 * command with this program's stdio and exit with its status. SIGTERM and
 * SIGHUP are passed on; this program leaves when the command does.
 */
export const insideProgram = `
const net = require("node:net"), os = require("node:os"), { spawn } = require("node:child_process")
const ports = JSON.parse(process.argv[1]), [command, ...args] = process.argv.slice(2)
const run = () => {
  const child = spawn(command, args, { stdio: "inherit" })
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal))
  child.on("error", (error) => { console.error(command + ": " + error.message); process.exit(127) })
  child.on("exit", (code, signal) => process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0)))
}
let waiting = ports.length
if (waiting === 0) run()
for (const port of ports) {
  net.createServer((socket) => {
    const upstream = net.connect(${JSON.stringify(insideDirectory)} + "/" + port + ".sock")
    socket.pipe(upstream).pipe(socket)
    socket.on("error", () => upstream.destroy())
    upstream.on("error", () => socket.destroy())
  }).listen(port, "127.0.0.1", () => { if (--waiting === 0) run() })
}
`

/**
 * Serve `ports` through Unix sockets in a fresh private directory under
 * `parent` (bind it at {@link insideDirectory}); everything closes with the scope.
 */
export const serve = (parent: string, ports: ReadonlyArray<number>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly directory: string; readonly close: () => void }, Error>((resume) => {
      nodeFs.mkdirSync(parent, { recursive: true, mode: 0o700 })
      const directory = nodeFs.mkdtempSync(path.join(parent, "f-"))
      const sockets = new Set<net.Socket>()
      const track = (socket: net.Socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
      }
      const servers = ports.map((port) =>
        net.createServer((socket) => {
          const upstream = net.connect({ port, host: "127.0.0.1" })
          track(socket)
          track(upstream)
          socket.pipe(upstream).pipe(socket)
          socket.on("error", () => upstream.destroy())
          upstream.on("error", () => socket.destroy())
        })
      )
      const close = () => {
        for (const server of servers) server.close()
        for (const socket of sockets) socket.destroy()
        nodeFs.rmSync(directory, { recursive: true, force: true })
      }
      let waiting = servers.length
      const ready = () => resume(Effect.succeed({ directory, close }))
      if (waiting === 0) ready()
      servers.forEach((server, i) => {
        server.once("error", (error) => {
          close()
          resume(Effect.fail(error))
        })
        server.listen(path.join(directory, `${ports[i]}.sock`), () => {
          if (--waiting === 0) ready()
        })
      })
    }),
    ({ close }) => Effect.sync(close)
  )
