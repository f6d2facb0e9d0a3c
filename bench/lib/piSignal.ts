/**
 * A pi extension that does nothing but report `session_start`: it connects
 * to the Unix socket `BENCH_SIGNAL` and writes `BENCH_ID`. The baseline of
 * figure 4 (bare pi) loads it instead of ramure's extension.
 */
import * as net from "node:net"

export default function signal(pi: { on: (event: "session_start", handler: () => void) => void }): void {
  pi.on("session_start", () => {
    const socketPath = process.env.BENCH_SIGNAL
    if (socketPath === undefined) return
    const socket = net.connect(socketPath, () => socket.end(`${process.env.BENCH_ID ?? ""}\n`))
    socket.on("error", () => {})
  })
}
