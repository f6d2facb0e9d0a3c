import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import WebSocket from "ws"
import * as Agent from "../src/Agent.js"
import * as Process from "../src/Process.js"
import * as Protocol from "../src/Protocol.js"
import * as Registry from "../src/Registry.js"
import * as RunStatus from "../src/RunStatus.js"
import { Runtime } from "../src/Runtime.js"
import { readJsonl, scripted, tempHome } from "./helpers.js"

/** Open a raw WebSocket to the run and collect what it sends until it closes. */
const rawSocket = (url: string, headers: Record<string, string>) =>
  Effect.async<{ socket: WebSocket; received: Array<string>; closed: Promise<{ code: number; status?: number }> }, Error>(
    (resume) => {
      const socket = new WebSocket(url, { headers })
      const received: Array<string> = []
      let settle: (value: { code: number; status?: number }) => void = () => {}
      const closed = new Promise<{ code: number; status?: number }>((resolve) => (settle = resolve))
      socket.on("message", (data) => received.push(data.toString()))
      socket.on("close", (code) => settle({ code }))
      socket.on("unexpected-response", (_request, response) => {
        settle({ code: 0, status: response.statusCode! })
        resume(Effect.succeed({ socket, received, closed }))
      })
      socket.on("error", () => {})
      socket.on("open", () => resume(Effect.succeed({ socket, received, closed })))
    }
  )

const untilClosed = (closed: Promise<{ code: number; status?: number }>) => Effect.promise(() => closed)
const waitFor = (check: () => boolean) =>
  Effect.gen(function* () {
    while (!check()) yield* Effect.sleep("5 millis")
  })

describe("Runtime server", () => {
  it.live("a bad or missing token is refused before the WebSocket opens, logged, and the run continues", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const agent = yield* Agent.make("a")
        const wrong = yield* rawSocket(`${runtime.url}${Protocol.agentPath("a")}`, { [Protocol.TOKEN_HEADER]: "nope" })
        const none = yield* rawSocket(`${runtime.url}/control`, {})
        expect(yield* untilClosed(wrong.closed)).toMatchObject({ status: 401 })
        expect(yield* untilClosed(none.closed)).toMatchObject({ status: 401 })
        const unauthorized = (yield* runtime.entries.items).filter((e) => e.type === "unauthorized").length
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({}) }, () =>
          Process.done({ result: "alive", unauthorized }))
        return yield* Process.wait<{ result: string; unauthorized: number }>()
      }))
    return main().pipe(
      Effect.map(({ result, unauthorized }) => {
        expect(result).toBe("alive")
        expect(unauthorized).toBe(2)
      }),
      Effect.provide(
        scripted({
          a: (driver) => Effect.zipRight(Effect.sleep("150 millis"), Effect.zipRight(driver.waitForTool("finish"), driver.call("finish", {})))
        })
      )
    )
  })

  it.live("malformed and unknown messages get a typed ProtocolError; the connection and the run go on", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const headers = { [Protocol.TOKEN_HEADER]: runtime.token }
        yield* Agent.make("a")
        const raw = yield* rawSocket(`${runtime.url}${Protocol.agentPath("a")}`, headers)
        raw.socket.send("{not json")
        raw.socket.send(JSON.stringify({ _tag: "Launch", missiles: true }))
        raw.socket.send(JSON.stringify({ _tag: "ToolCall", callId: 3 }))
        raw.socket.send(JSON.stringify([1, 2, 3]))
        yield* waitFor(() => raw.received.length >= 4)
        const errors = raw.received.map((text) => JSON.parse(text))
        const unknown = yield* rawSocket(`${runtime.url}${Protocol.agentPath("ghost")}`, headers)
        const unknownClose = yield* untilClosed(unknown.closed)
        const badPath = yield* rawSocket(`${runtime.url}/elsewhere`, headers)
        const badPathClose = yield* untilClosed(badPath.closed)
        raw.socket.close()
        return { errors, unknownClose, unknownSaid: unknown.received, badPathClose, log: yield* runtime.entries.items }
      }))
    return main().pipe(
      Effect.map(({ badPathClose, errors, log, unknownClose, unknownSaid }) => {
        expect(errors.map((e) => [e._tag, e.code])).toEqual([
          ["ProtocolError", "malformed"],
          ["ProtocolError", "unknown_message"],
          ["ProtocolError", "unknown_message"],
          ["ProtocolError", "unknown_message"]
        ])
        expect(errors[1].message).toContain("Launch")
        expect(unknownClose.code).toBe(Protocol.CloseCode.unknownAgent)
        expect(JSON.parse(unknownSaid[0]!)).toMatchObject({ _tag: "ProtocolError", code: "unknown_agent" })
        expect(badPathClose.status).toBe(404)
        expect(log.filter((e) => e.type === "protocol_error").length).toBeGreaterThanOrEqual(6)
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("an agent's Hello may ride in its upgrade request: the run syncs it without a first frame; a malformed one is a ProtocolError", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const agent = yield* Agent.make("a")
        yield* agent.on("t", { description: "", parameters: Schema.Struct({}) }, () => Effect.succeed("ok"))
        const header = (value: string) => ({ [Protocol.TOKEN_HEADER]: runtime.token, [Protocol.HELLO_HEADER]: value })
        const hello = encodeURIComponent(JSON.stringify({ _tag: "Hello", protocol: Protocol.version, agentId: "a", after: 0 }))
        const synced = yield* rawSocket(`${runtime.url}${Protocol.agentPath("a")}`, header(hello))
        yield* waitFor(() => synced.received.some((text) => JSON.parse(text)._tag === "Synced"))
        synced.socket.close()
        const malformed = yield* rawSocket(`${runtime.url}${Protocol.agentPath("a")}`, header("%E0%A4%A"))
        yield* waitFor(() => malformed.received.length >= 1)
        const stillOpen = malformed.socket.readyState === WebSocket.OPEN
        malformed.socket.close()
        return { synced: synced.received.map((text) => JSON.parse(text)), malformed: JSON.parse(malformed.received[0]!), stillOpen }
      }))
    return main().pipe(
      Effect.map(({ malformed, stillOpen, synced }) => {
        expect(synced).toEqual([
          { _tag: "Entry", seq: 1, body: { _tag: "ToolAdded", tool: expect.objectContaining({ name: "t" }) } },
          { _tag: "Synced", seq: 1, maxFrameBytes: 16 * 1024 * 1024 }
        ])
        expect(malformed).toMatchObject({ _tag: "ProtocolError", code: "malformed" })
        expect(stillOpen).toBe(true)
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("a connection dropped during a tool call loses nothing: the result arrives after reconnecting", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("a")
        const release = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        yield* agent.on("slow", { description: "", parameters: Schema.Struct({}) }, () =>
          Effect.zipRight(Deferred.succeed(started, undefined), Effect.as(Deferred.await(release), "slow result")))
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
          Process.done(text))
        yield* Deferred.await(started)
        // Drop the agent's connection from the server side while the handler runs.
        yield* agent.sessionState.current!.close(4002, "test drop")
        yield* agent.send("sent while disconnected")
        yield* Effect.sleep("50 millis")
        yield* Deferred.succeed(release, undefined)
        return yield* Process.wait<string>()
      }))
    return main().pipe(
      Effect.map((text) => expect(JSON.parse(text)).toEqual({ result: "slow result", message: "sent while disconnected" })),
      Effect.provide(
        scripted({
          a: (driver) =>
            Effect.gen(function* () {
              yield* driver.waitForTool("finish")
              const result = yield* driver.call("slow", {})
              const message = yield* driver.nextMessage
              yield* driver.call("finish", { text: JSON.stringify({ result: result.text, message }) })
            })
        })
      )
    )
  })
})

describe("Log tree", () => {
  it.live("writes _runtime.jsonl and one file per agent, every line with ts, type, process and agent", () => {
    const home = tempHome()
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("writer")
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({}) }, () => Process.done("ok"))
        executionId = (yield* Runtime).executionId
        return yield* Process.wait()
      }))
    let executionId = ""
    return Effect.gen(function* () {
      yield* main().pipe(
        Effect.provide(scripted({ writer: (d) => Effect.zipRight(d.waitForTool("finish"), d.call("finish", {})) }, { home }))
      )
      const directory = path.join(home, "logs", executionId)
      expect(fs.readdirSync(directory).sort()).toEqual(["_runtime.jsonl", "writer.jsonl"])
      expect(fs.statSync(directory).mode & 0o777).toBe(0o700)
      expect(fs.statSync(path.join(directory, "writer.jsonl")).mode & 0o777).toBe(0o600)
      const runtimeLines = readJsonl(path.join(directory, "_runtime.jsonl"))
      const agentLines = readJsonl(path.join(directory, "writer.jsonl"))
      expect(runtimeLines.map((l) => l.type)).toEqual(["run_started", "process_started", "process_ended", "run_ended"])
      expect(agentLines.map((l) => l.type)).toEqual(
        expect.arrayContaining(["agent_created", "agent_connected", "tool_added", "tool_call", "tool_result", "agent_released"])
      )
      for (const line of [...runtimeLines, ...agentLines]) {
        expect(typeof line.ts).toBe("string")
        expect(typeof line.type).toBe("string")
        expect(typeof line.n).toBe("number")
      }
      expect(agentLines.every((l) => l.agent === "writer" && l.process === "main")).toBe(true)
      const all = [...runtimeLines, ...agentLines].map((l) => l.n).sort((a, b) => a - b)
      expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1))
      const token = JSON.stringify([...runtimeLines, ...agentLines])
      expect(token).not.toMatch(/"token"/)
    })
  })
})

describe("Live-run registry", () => {
  it.live("is written 0600 in a 0700 directory while the run lives, removed when it ends, even on failure", () => {
    const home = tempHome()
    const seen: Array<Registry.ListedEntry> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const file = Registry.entryPath(home, runtime.executionId)
        expect(fs.statSync(file).mode & 0o777).toBe(0o600)
        expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700)
        seen.push(...(yield* Registry.list(home)))
        return yield* Process.fail("on purpose")
      }))
    return Effect.gen(function* () {
      const exit = yield* Effect.exit(main().pipe(Effect.provide(scripted({}, { home, program: "reg-test" }))))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(seen).toHaveLength(1)
      expect(seen[0]!.alive).toBe(true)
      expect(seen[0]!.entry).toMatchObject({ pid: process.pid, program: "reg-test" })
      expect(seen[0]!.entry.server_url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
      expect(seen[0]!.entry.token.length).toBeGreaterThan(20)
      expect(yield* Registry.list(home)).toEqual([])
    })
  })

  it.live("is removed when the run is interrupted", () => {
    const home = tempHome()
    return Effect.gen(function* () {
      const fiber = yield* Effect.fork(
        Process.make("main", () => Effect.never)().pipe(Effect.provide(scripted({}, { home })))
      )
      yield* waitFor(() => fs.existsSync(path.join(home, "runtimes")) && fs.readdirSync(path.join(home, "runtimes")).length === 1)
      yield* Fiber.interrupt(fiber)
      expect(fs.readdirSync(path.join(home, "runtimes"))).toEqual([])
    })
  })

  it.live("stale entries (dead pid) are removed when the next run starts", () => {
    const home = tempHome()
    fs.mkdirSync(path.join(home, "runtimes"), { recursive: true, mode: 0o700 })
    const stale = path.join(home, "runtimes", "dead.json")
    fs.writeFileSync(
      stale,
      JSON.stringify({
        execution_id: "dead",
        pid: 2 ** 22 + 12345,
        server_url: "ws://127.0.0.1:1",
        token: "x",
        program: "old",
        started_at: new Date().toISOString()
      }),
      { mode: 0o600 }
    )
    return Process.make("main", () => Effect.sync(() => fs.existsSync(stale)))().pipe(
      Effect.map((stillThere) => expect(stillThere).toBe(false)),
      Effect.provide(scripted({}, { home }))
    )
  })
})

describe("RunStatus", () => {
  it("an agent that connects before its creation is logged is idle, with its machine and session", () => {
    const at = (n: number, type: string, data?: unknown) => ({ ts: `t${n}`, n, type, process: "main", agent: "a", data })
    const status = RunStatus.fromEntries([
      at(1, "agent_connected", { after: 0 }),
      at(2, "agent_created", { machine: { id: "a", kind: "tmux", cwd: "/w" }, session: "ramure-x-a" })
    ])
    expect(status.agents).toEqual([
      expect.objectContaining({ id: "a", state: "idle", session: "ramure-x-a", machine: { id: "a", kind: "tmux", cwd: "/w" } })
    ])
  })
})

describe("JsonlLogSink", () => {
  it.live("a line whose data cannot be serialized is still written, and later lines too", () => {
    const home = tempHome()
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    let executionId = ""
    return Effect.gen(function* () {
      yield* Process.make("main", () =>
        Effect.gen(function* () {
          executionId = (yield* Runtime).executionId
          yield* Process.emit("cyclic", cyclic)
          yield* Process.emit("after", { ok: true })
        }))().pipe(Effect.provide(scripted({}, { home })))
      const lines = readJsonl(path.join(home, "logs", executionId, "_runtime.jsonl"))
      const events = lines.filter((l) => l.type === "process_event")
      expect(events.map((l) => l.data.type ?? "unserializable")).toEqual(["unserializable", "after"])
      expect(events[0].data.unserializable).toContain("circular")
    })
  })
})
