/**
 * The agent's client: every call gets exactly one answer — its result, or an
 * error result that names why there is none —, the run's address is read
 * before every connection attempt, and a run that stops answering loses its
 * connection.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Queue, Ref, Schema, Scope } from "effect"
import * as Agent from "../src/Agent.js"
import * as AgentClient from "@ramure/protocol/AgentClient"
import * as Process from "../src/Process.js"
import * as Protocol from "@ramure/protocol/Protocol"
import { scripted } from "./helpers.js"
import { entry, type Peer, rawRuntime } from "./rawRuntime.js"

const tool = (name: string): Protocol.EntryBody => ({ _tag: "ToolAdded", tool: { name, description: "", parameters: {} } })

/** A client of agent "g" (token "t") at `url`, synced by `peer` with `entries` and `limit`. */
const syncedClient = (
  url: string,
  connections: Queue.Dequeue<Peer>,
  options: { readonly limit?: number; readonly entries?: ReadonlyArray<Protocol.EntryBody> } = {}
) =>
  Effect.gen(function* () {
    const client = yield* AgentClient.make({ url, agentId: "g", token: "t" })
    const peer = yield* Queue.take(connections)
    expect(yield* peer.next).toMatchObject({ _tag: "Hello", after: 0 })
    const entries = options.entries ?? [tool("t")]
    entries.forEach((body, i) => peer.send(entry(i + 1, body)))
    peer.send({ _tag: "Synced", seq: entries.length, ...(options.limit === undefined ? {} : { maxFrameBytes: options.limit }) })
    yield* client.synced
    return { client, peer }
  })

describe("AgentClient: every call gets one answer", () => {
  it.scopedLive("a call over the run's frame limit is answered at once with its size and the limit, and not sent", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const { client, peer } = yield* syncedClient(server.url, server.connections, { limit: 1024 })
      const args = { text: "x".repeat(3000) }
      const size = Buffer.byteLength(Protocol.encode({ _tag: "ToolCall", callId: "big", tool: "t", args }))
      const result = yield* client.call("t", args, "big")
      expect(result.isError).toBe(true)
      expect(result.text).toContain(
        `tool "t" was not called: its message is ${size.toLocaleString("en-US")} bytes, over the run's limit of 1,024 bytes per message`
      )
      // Nothing went out for it; a call that fits still does.
      expect(yield* peer.pending).toBe(0)
      const small = yield* Effect.fork(client.call("t", { text: "x" }, "small"))
      expect(yield* peer.next).toEqual({ _tag: "ToolCall", callId: "small", tool: "t", args: { text: "x" } })
      peer.send(entry(2, { _tag: "ToolResult", callId: "small", isError: false, text: "ok" }))
      expect(yield* Fiber.join(small)).toEqual({ isError: false, text: "ok" })
    }))

  it.scopedLive("against a real run: arguments over its maxMessageBytes come back as an error result, the handler never runs, the agent goes on", () => {
    let handled = 0
    let answer: AgentClient.ToolCallResult | undefined
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agent = yield* Agent.make("g")
        yield* agent.on("store", { description: "", parameters: Schema.Struct({ data: Schema.String }) }, ({ data }) =>
          Effect.sync(() => (handled++, `stored ${data.length}`)))
        yield* agent.on("finish", { description: "", parameters: Schema.Struct({}) }, () => Process.done("finished"))
        return yield* Process.wait()
      }))
    return Effect.gen(function* () {
      expect(yield* main()).toBe("finished")
      expect(handled).toBe(1)
      expect(answer?.isError).toBe(true)
      expect(answer?.text).toContain("over the run's limit of 65,536 bytes per message")
    }).pipe(
      Effect.provide(scripted({
        g: (driver) =>
          Effect.gen(function* () {
            yield* driver.waitForTool("finish")
            answer = yield* driver.call("store", { data: "x".repeat(100 * 1024) })
            expect(yield* driver.call("store", { data: "small" })).toEqual({ isError: false, text: "stored 5" })
            yield* driver.call("finish", {})
          })
      }, { maxMessageBytes: 64 * 1024 }))
    )
  })

  it.scopedLive("pending calls are answered with an error naming the reason when the run asks the agent to shut down, and so are later calls", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const { client, peer } = yield* syncedClient(server.url, server.connections)
      const pending = yield* Effect.fork(client.call("t", {}, "c1"))
      expect(yield* peer.next).toMatchObject({ _tag: "ToolCall", callId: "c1" })
      peer.send(entry(2, { _tag: "Shutdown", reason: "process ended" }))
      const result = yield* Fiber.join(pending)
      expect(result).toEqual({
        isError: true,
        text: "ramure: the tool call got no result: the run asked the agent to shut down (process ended)"
      })
      expect(yield* client.call("t", {}, "c2")).toMatchObject({ isError: true, text: expect.stringContaining("shut down") })
    }))

  it.scopedLive("pending calls are answered with an error when the client's scope closes", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const scope = yield* Scope.make()
      const { client, peer } = yield* syncedClient(server.url, server.connections).pipe(Scope.extend(scope))
      const pending = yield* Effect.fork(client.call("t", {}, "c1"))
      expect(yield* peer.next).toMatchObject({ _tag: "ToolCall", callId: "c1" })
      yield* Scope.close(scope, Exit.void)
      expect(yield* Fiber.join(pending)).toEqual({
        isError: true,
        text: "ramure: the tool call got no result: the agent's connection to its run was closed"
      })
    }))

  it.scopedLive("a refusal before the first sync is final and answers pending calls", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime((socket) => {
        socket.send(Protocol.encode({ _tag: "ProtocolError", code: "unauthorized", message: "bad token" }))
        socket.close(Protocol.CloseCode.unauthorized, "unauthorized")
      })
      const client = yield* AgentClient.make({ url: server.url, agentId: "g", token: "t" })
      const pending = yield* Effect.fork(client.call("t", {}, "c1"))
      expect((yield* Effect.flip(client.fatal)).message).toBe("bad token")
      expect(yield* Fiber.join(pending)).toMatchObject({ isError: true, text: expect.stringContaining("refused the agent (bad token)") })
    }))

  it.scopedLive("an interrupted call is not sent again after a reconnect", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const { client, peer } = yield* syncedClient(server.url, server.connections)
      const abandoned = yield* Effect.fork(client.call("t", {}, "abandoned"))
      expect(yield* peer.next).toMatchObject({ _tag: "ToolCall", callId: "abandoned" })
      yield* Fiber.interrupt(abandoned)
      const kept = yield* Effect.fork(client.call("t", {}, "kept"))
      expect(yield* peer.next).toMatchObject({ _tag: "ToolCall", callId: "kept" })
      peer.close(4002, "dropped")
      const again = yield* Queue.take(server.connections)
      expect(yield* again.next).toMatchObject({ _tag: "Hello", after: 1 })
      again.send({ _tag: "Synced", seq: 1 })
      expect(yield* again.next).toMatchObject({ _tag: "ToolCall", callId: "kept" })
      again.send(entry(2, { _tag: "ToolResult", callId: "kept", isError: false, text: "done" }))
      expect(yield* Fiber.join(kept)).toEqual({ isError: false, text: "done" })
      expect(yield* again.pending).toBe(0)
    }))
})

describe("AgentClient: events", () => {
  it.scopedLive("an event over the run's frame limit is replaced by an EventDropped that names it and says why", () =>
    Effect.gen(function* () {
      const server = yield* rawRuntime()
      const { client, peer } = yield* syncedClient(server.url, server.connections, { limit: 1024 })
      yield* client.emit({ _tag: "MessageEnded", role: "assistant", text: "x".repeat(3000) })
      const sent = yield* peer.next
      expect(sent).toMatchObject({ _tag: "Event", event: { _tag: "EventDropped", event: "MessageEnded" } })
      expect(sent._tag === "Event" && sent.event._tag === "EventDropped" ? sent.event.reason : "").toMatch(
        /^it is [\d,]+ bytes, over the run's limit of 1,024 bytes per message$/
      )
      // One that fits goes as it is.
      yield* client.emit({ _tag: "TurnStarted" })
      expect(yield* peer.next).toEqual({ _tag: "Event", event: { _tag: "TurnStarted" } })
    }))
})

describe("AgentClient: finding and watching its run", () => {
  it.scopedLive("the run's address is read before every attempt: a run that moved (new port, new token) is reconnected there, where a refusal no longer ends the client", () =>
    Effect.gen(function* () {
      const first = yield* rawRuntime()
      const second = yield* rawRuntime()
      const address = yield* Ref.make<AgentClient.Address | undefined>(undefined)
      const reachable: Array<boolean> = []
      const client = yield* AgentClient.make({
        url: first.url,
        agentId: "g",
        token: "t",
        address: Ref.get(address),
        onReachable: (up) => Effect.sync(() => void reachable.push(up))
      })
      const peer = yield* Queue.take(first.connections)
      expect(peer.token).toBe("t")
      yield* peer.next
      peer.send(entry(1, tool("t")))
      peer.send({ _tag: "Synced", seq: 1 })
      yield* client.synced
      const pending = yield* Effect.fork(client.call("t", {}, "c1"))
      yield* peer.next
      // The run moves: its old address refuses, its new one has a new secret.
      yield* Ref.set(address, { url: second.url, token: "new-secret" })
      peer.send({ _tag: "ProtocolError", code: "unknown_agent", message: "not here any more" })
      peer.close(Protocol.CloseCode.unknownAgent, "gone")
      const moved = yield* Queue.take(second.connections)
      expect(moved.path).toBe(Protocol.agentPath("g"))
      expect(moved.token).toBe("new-secret")
      expect(yield* moved.next).toMatchObject({ _tag: "Hello", after: 1 })
      moved.send({ _tag: "Synced", seq: 1 })
      expect(yield* moved.next).toMatchObject({ _tag: "ToolCall", callId: "c1" })
      moved.send(entry(2, { _tag: "ToolResult", callId: "c1", isError: false, text: "answered by the moved run" }))
      expect(yield* Fiber.join(pending)).toEqual({ isError: false, text: "answered by the moved run" })
      expect(reachable).toEqual([true, false, true])
    }))

  it.scopedLive("a run that stops answering pings loses its connection, and the client reconnects", () =>
    Effect.gen(function* () {
      const silent = yield* rawRuntime({ autoPong: false })
      const reconnected = yield* Deferred.make<void>()
      const reachable: Array<boolean> = []
      const client = yield* AgentClient.make({
        url: silent.url,
        agentId: "g",
        token: "t",
        heartbeat: { interval: "100 millis", timeout: "300 millis" },
        onReachable: (up) => Effect.sync(() => void reachable.push(up))
      })
      const peer = yield* Queue.take(silent.connections)
      yield* peer.next
      peer.send({ _tag: "Synced", seq: 0 })
      yield* client.synced
      // The peer never closes: only the missing pongs can end this connection.
      const next = yield* Queue.take(silent.connections)
      expect(yield* next.next).toMatchObject({ _tag: "Hello" })
      yield* Deferred.succeed(reconnected, undefined)
      expect(reachable).toEqual([true, false])
      expect(silent.accepted()).toBe(2)
    }))

  it.scopedLive("a pre-started pi waiting for its agent stops waiting when its run stops answering pings", () =>
    Effect.gen(function* () {
      const silent = yield* rawRuntime({ autoPong: false })
      const error = yield* AgentClient.awaitAssignment({
        url: silent.url,
        memberId: "_pool-1",
        token: "t",
        heartbeat: { interval: "100 millis", timeout: "300 millis" }
      }).pipe(Effect.flip)
      expect(error).toBeInstanceOf(AgentClient.AgentClientError)
      expect(error.message).toBe("the run closed the connection before assigning an agent")
    }))
})
