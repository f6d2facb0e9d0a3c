import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import WebSocket from "ws"
import * as Agent from "../src/Agent.js"
import { sessionOf } from "../src/internal/agent.js"
import { readDirectory, readFile } from "@ramure/node/JsonlLogSink"
import * as Process from "../src/Process.js"
import * as Protocol from "@ramure/protocol/Protocol"
import * as Registry from "@ramure/node/Registry"
import { Run } from "../src/Run.js"
import { decodeLine, type LogEntry } from "../src/RunEvent.js"
import { RunInfo } from "../src/RunInfo.js"
import { RunLog } from "../src/RunLog.js"
import { makeSecret, secretPrefix } from "../src/RunRoutes.js"
import * as RunStatus from "../src/RunStatus.js"
import { dropFromServer, readJsonl, scripted, tempHome } from "./helpers.js"

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

/** The protocol violations a run's log records: entries, plus the ones each entry says it stands for. */
const violations = (entries: ReadonlyArray<LogEntry>) =>
  entries.reduce((sum, e) => (e.event._tag === "ProtocolViolation" ? sum + 1 + (e.event.suppressed ?? 0) : sum), 0)

/** The refusals a run's log records: entries, plus the ones each entry says it stands for. */
const refusals = (entries: ReadonlyArray<LogEntry>) =>
  entries.reduce((sum, e) => (e.event._tag === "ConnectionRefused" ? sum + 1 + (e.event.suppressed ?? 0) : sum), 0)

describe("Run server", () => {
  it.live("a bad or missing secret is refused before the WebSocket opens, logged, and the run continues", () => {
    const home = tempHome()
    let executionId = ""
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        executionId = (yield* RunInfo).executionId
        const agent = yield* Agent.make("a")
        const wrong = yield* rawSocket(`${url}${Protocol.agentPath("a")}`, { [Protocol.TOKEN_HEADER]: "nope" })
        const none = yield* rawSocket(`${url}/control`, {})
        expect(yield* untilClosed(wrong.closed)).toMatchObject({ status: 401 })
        expect(yield* untilClosed(none.closed)).toMatchObject({ status: 401 })
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({}) }, () => Process.done("alive"))
        return yield* Process.wait()
      }))
    return Effect.gen(function* () {
      const result = yield* main().pipe(
        Effect.provide(
          scripted({
            a: (driver) => Effect.zipRight(Effect.sleep("150 millis"), Effect.zipRight(driver.waitForTool("finish"), driver.call("finish", {})))
          }, { home })
        )
      )
      expect(result).toBe("alive")
      // Refusals are logged at most once a second; the entries count the others, and the last is written at the end.
      expect(refusals(readFile(path.join(home, "logs", executionId, "_runtime.jsonl")))).toBe(2)
    })
  })

  it.live("an agent's secret opens its own path only: not another agent's, not the control channel", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        const a = yield* Agent.make("a")
        yield* Agent.make("b")
        const secret = sessionOf(a).secret
        const other = yield* rawSocket(`${url}${Protocol.agentPath("b")}`, { [Protocol.TOKEN_HEADER]: secret })
        const control = yield* rawSocket(`${url}${Protocol.controlPath}`, { [Protocol.TOKEN_HEADER]: secret })
        const own = yield* rawSocket(`${url}${Protocol.agentPath("a")}`, { [Protocol.TOKEN_HEADER]: secret })
        const result = {
          other: yield* untilClosed(other.closed),
          control: yield* untilClosed(control.closed),
          ownOpen: own.socket.readyState === WebSocket.OPEN
        }
        own.socket.close()
        return result
      }))
    return main().pipe(
      Effect.map((result) => {
        expect(result.other).toMatchObject({ status: 401 })
        expect(result.control).toMatchObject({ status: 401 })
        expect(result.ownOpen).toBe(true)
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("nothing a connection sends before its Hello is acted on", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        const agent = yield* Agent.make("a")
        const calls: Array<string> = []
        yield* agent.on("spend", { description: "", parameters: Schema.Struct({}) }, () => Effect.sync(() => calls.push("ran")))
        const raw = yield* rawSocket(`${url}${Protocol.agentPath("a")}`, { [Protocol.TOKEN_HEADER]: sessionOf(agent).secret })
        raw.socket.send(Protocol.encode({ _tag: "ToolCall", callId: "forged", tool: "spend", args: {} }))
        raw.socket.send(Protocol.encode({
          _tag: "Event",
          event: { _tag: "MessageEnded", role: "assistant", text: "forged", usage: { input: 1e9, output: 1e9, cost: 1e6 } }
        }))
        yield* waitFor(() => raw.received.length >= 2)
        raw.socket.close()
        const status = yield* (yield* RunLog).status
        return { calls, errors: raw.received.map((text) => JSON.parse(text)), cost: status.totals.cost }
      }))
    return main().pipe(
      Effect.map(({ calls, cost, errors }) => {
        expect(calls).toEqual([])
        expect(cost).toBe(0)
        expect(errors.map((e) => [e._tag, e.code])).toEqual([
          ["ProtocolError", "unknown_message"],
          ["ProtocolError", "unknown_message"]
        ])
        expect(errors[0].message).toContain("Hello")
      }),
      Effect.provide(scripted({ a: () => Effect.never }))
    )
  })

  it.live("an agent's Hello may ride in its upgrade request: the run syncs it without a first frame; a malformed one is a ProtocolError", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        const agent = yield* Agent.make("a")
        yield* agent.on("t", { description: "", parameters: Schema.Struct({}) }, () => Effect.succeed("ok"))
        const header = (value: string) => ({ [Protocol.TOKEN_HEADER]: sessionOf(agent).secret, [Protocol.HELLO_HEADER]: value })
        const hello = encodeURIComponent(JSON.stringify({ _tag: "Hello", protocol: Protocol.version, agentId: "a", after: 0 }))
        const synced = yield* rawSocket(`${url}${Protocol.agentPath("a")}`, header(hello))
        yield* waitFor(() => synced.received.some((text) => JSON.parse(text)._tag === "Synced"))
        synced.socket.close()
        const malformed = yield* rawSocket(`${url}${Protocol.agentPath("a")}`, header("%E0%A4%A"))
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
      Effect.provide(scripted({ a: () => Effect.never }))
    )
  })

  it.live("malformed and unknown messages get a typed ProtocolError; the connection and the run go on", () => {
    const home = tempHome()
    let executionId = ""
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const { url } = yield* Run
        const agent = yield* Agent.make("a")
        const headers = { [Protocol.TOKEN_HEADER]: sessionOf(agent).secret }
        const raw = yield* rawSocket(`${url}${Protocol.agentPath("a")}`, headers)
        raw.socket.send("{not json")
        raw.socket.send(JSON.stringify({ _tag: "Launch", missiles: true }))
        raw.socket.send(JSON.stringify({ _tag: "ToolCall", callId: 3 }))
        raw.socket.send(JSON.stringify([1, 2, 3]))
        yield* waitFor(() => raw.received.length >= 4)
        const errors = raw.received.map((text) => JSON.parse(text))
        const unknown = yield* rawSocket(`${url}${Protocol.agentPath("ghost")}`, headers)
        const unknownClose = yield* untilClosed(unknown.closed)
        const badPath = yield* rawSocket(`${url}/elsewhere`, headers)
        const badPathClose = yield* untilClosed(badPath.closed)
        raw.socket.close()
        executionId = (yield* RunInfo).executionId
        return { errors, unknownClose, badPathClose }
      }))
    return main().pipe(
      Effect.map(({ badPathClose, errors, unknownClose }) => {
        const log = readDirectory(path.join(home, "logs", executionId))
        expect(errors.map((e) => [e._tag, e.code])).toEqual([
          ["ProtocolError", "malformed"],
          ["ProtocolError", "unknown_message"],
          ["ProtocolError", "unknown_message"],
          ["ProtocolError", "unknown_message"]
        ])
        expect(errors[1].message).toContain("Launch")
        expect(unknownClose.status).toBe(404)
        expect(badPathClose.status).toBe(404)
        // Logged at most once a second per connection: the entries count the others.
        expect(violations(log)).toBe(4)
        expect(log.some((e) => e.event._tag === "ConnectionRefused" && e.event.reason === "not_found")).toBe(true)
      }),
      Effect.provide(scripted({}, { home }))
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
        expect(yield* dropFromServer(agent)).toBe(true)
        yield* agent.send("sent while disconnected")
        yield* Effect.sleep("50 millis")
        yield* Deferred.succeed(release, undefined)
        return yield* Process.wait()
      }), { success: Schema.String })
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
  it.live("writes _runtime.jsonl and one file per agent, every line a typed entry with ts, n, process and agent", () => {
    const home = tempHome()
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("writer")
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({}) }, () => Process.done("ok"))
        executionId = (yield* RunInfo).executionId
        return yield* Process.wait()
      }))
    let executionId = ""
    return Effect.gen(function* () {
      yield* main().pipe(
        Effect.provide(scripted({ writer: (d) => Effect.zipRight(d.waitForTool("finish"), d.call("finish", {})) }, { home }))
      )
      const directory = path.join(home, "logs", executionId)
      expect(fs.readdirSync(directory).sort()).toEqual(["STATUS.md", "_runtime.jsonl", "writer.jsonl"])
      expect(fs.statSync(directory).mode & 0o777).toBe(0o700)
      expect(fs.statSync(path.join(directory, "writer.jsonl")).mode & 0o777).toBe(0o600)
      expect(fs.statSync(path.join(directory, "STATUS.md")).mode & 0o777).toBe(0o600)
      const runtimeLines = readJsonl(path.join(directory, "_runtime.jsonl"))
      const agentLines = readJsonl(path.join(directory, "writer.jsonl"))
      expect(runtimeLines.map((l) => l.event._tag)).toEqual(["RunStarted", "ProcessStarted", "ProcessEnded", "RunEnded"])
      expect(agentLines.map((l) => l.event._tag)).toEqual(
        expect.arrayContaining(["AgentCreated", "AgentConnected", "ToolAdded", "ToolCalled", "ToolReturned", "AgentReleased"])
      )
      for (const line of [...runtimeLines, ...agentLines]) {
        expect(decodeLine(JSON.stringify(line))).toEqual(line)
      }
      expect(agentLines.every((l) => l.agent === "writer" && l.process === "main")).toBe(true)
      const all = [...runtimeLines, ...agentLines].map((l) => l.n).sort((a, b) => a - b)
      expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1))
      const token = JSON.stringify([...runtimeLines, ...agentLines])
      expect(token).not.toMatch(/"token"/)
    })
  })
})

describe("Secrets in the log", () => {
  it.live("a secret in an entry (whole or cut off) is redacted in the log file; the rest of the entry is kept", () => {
    const home = tempHome()
    const secret = makeSecret()
    let executionId = ""
    return Effect.gen(function* () {
      yield* Process.make("main", () =>
        Effect.gen(function* () {
          executionId = (yield* RunInfo).executionId
          yield* Process.emit("leak", { env: `RAMURE_TOKEN=${secret}`, cut: `${secret.slice(0, 30)}…` })
        }))().pipe(Effect.provide(scripted({}, { home })))
      const text = fs.readFileSync(path.join(home, "logs", executionId, "_runtime.jsonl"), "utf8")
      expect(text).not.toContain(secret.slice(secretPrefix.length, 30))
      const leak = readJsonl(path.join(home, "logs", executionId, "_runtime.jsonl")).find((l) => l.event._tag === "ProcessEmitted")
      expect(leak.event.data).toEqual({ env: "RAMURE_TOKEN=ramure_secret_[redacted]", cut: "ramure_secret_[redacted]…" })
    })
  })
})

describe("Agent log files", () => {
  it.live("every agent name maps to a safe file of its own: 300 characters, path separators, dots, non-ASCII", () => {
    const home = tempHome()
    const names = ["a".repeat(300), `${"b".repeat(299)}c`, "../../escape", "_runtime", "résumé ✓"]
    let executionId = ""
    const ids: Array<string> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        executionId = (yield* RunInfo).executionId
        for (const name of names) {
          const agent = yield* Agent.make(name)
          ids.push(agent.id)
          yield* agent.send(`hello ${name}`)
        }
      }))
    return Effect.gen(function* () {
      yield* main().pipe(Effect.provide(scripted({}, { home })))
      const directory = path.join(home, "logs", executionId)
      expect(new Set(ids).size).toBe(names.length)
      expect(fs.readdirSync(directory).filter((name) => name.endsWith(".jsonl")).sort()).toEqual(["_runtime.jsonl", ...ids.map((id) => `${id}.jsonl`)].sort())
      for (const [i, id] of ids.entries()) {
        expect(id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$/)
        const lines = readJsonl(path.join(directory, `${id}.jsonl`))
        expect(lines.find((l) => l.event._tag === "AgentCreated")?.event.name).toBe(names[i])
        expect(lines.find((l) => l.event._tag === "MessageDelivered")?.event.text).toBe(`hello ${names[i]}`)
        expect(lines.at(-1).event._tag).toBe("AgentReleased")
      }
    })
  })
})

describe("Live-run registry", () => {
  it.live("is written 0600 in a 0700 directory while the run lives, removed when it ends, even on failure", () => {
    const home = tempHome()
    const seen: Array<Registry.ListedEntry> = []
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const file = Registry.entryPath(home, (yield* RunInfo).executionId)
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

  it.live("says how long its agents wait for a resume when the run keeps them (resumableFor), and nothing otherwise", () => {
    const entryOf = (options: { readonly resumableFor?: Duration.DurationInput }) => {
      const home = tempHome()
      return Process.make("main", () =>
        Effect.flatMap(RunInfo, ({ executionId }) =>
          Effect.map(Registry.list(home), (listed) => listed.find((item) => item.entry.execution_id === executionId)?.entry)))().pipe(
        Effect.provide(scripted({}, { home, ...options }))
      )
    }
    return Effect.gen(function* () {
      expect((yield* entryOf({ resumableFor: "90 seconds" }))?.resumable_for_ms).toBe(90_000)
      const plain = yield* entryOf({})
      expect(plain).toBeDefined()
      expect(plain?.resumable_for_ms).toBeUndefined()
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
    const at = (n: number, event: LogEntry["event"]): LogEntry => ({ ts: `t${n}`, n, process: "main", agent: "a", event })
    const status = RunStatus.fromEntries([
      at(1, { _tag: "AgentConnected", after: 0, first: true }),
      at(2, { _tag: "AgentCreated", name: "a", machine: { id: "a", kind: "tmux", cwd: "/w" }, session: "ramure-x-a" })
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
          executionId = (yield* RunInfo).executionId
          yield* Process.emit("cyclic", cyclic)
          yield* Process.emit("after", { ok: true })
        }))().pipe(Effect.provide(scripted({}, { home })))
      const lines = readJsonl(path.join(home, "logs", executionId, "_runtime.jsonl"))
      const tags = lines.map((l) => l.event._tag)
      const unserializable = lines.find((l) => l.event._tag === "ProtocolViolation")
      expect(tags.indexOf("ProtocolViolation")).toBeLessThan(tags.indexOf("ProcessEmitted"))
      expect(unserializable.event.message).toContain("ProcessEmitted")
      expect(unserializable.event.message).toContain("circular")
      expect(lines.find((l) => l.event._tag === "ProcessEmitted").event).toEqual({ _tag: "ProcessEmitted", type: "after", data: { ok: true } })
    })
  })
})
