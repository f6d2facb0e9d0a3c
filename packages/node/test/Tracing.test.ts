/**
 * A run's OpenTelemetry traces, through the real SDK (an in-memory
 * exporter): one trace per run, nested as the run happened, with the GenAI
 * conventions on agents, model turns and tool calls; and what the
 * environment asks for.
 */
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import { Effect, Schema } from "effect"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import { Agent, Process, Ramure } from "ramure"
import { otlpSettings, serviceName, TracingConfigError } from "../src/NodeTracing.js"
import { readJsonl, tempHome } from "../../core/test/helpers.js"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"

/** The SDK's in-memory exporter, keeping its spans when the run's provider shuts it down. */
class KeepingExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId

/** The spans as a tree of names: `name` then its children, indented, in order of start. */
const tree = (spans: ReadonlyArray<ReadableSpan>, keep: (span: ReadableSpan) => boolean): string => {
  const lines: Array<string> = []
  const visit = (parent: string | undefined, depth: number) => {
    const children = spans
      .filter((span) => parentOf(span) === parent && keep(span))
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1])
    for (const span of children) {
      lines.push(`${"  ".repeat(depth)}${span.name}`)
      visit(span.spanContext().spanId, depth + 1)
    }
  }
  visit(undefined, 0)
  return lines.join("\n")
}

const echo = Process.make("child", () =>
  Effect.gen(function* () {
    yield* Process.expose("echo", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
      text === "boom" ? Effect.fail("no boom") : Effect.succeed(text))
    return yield* Effect.never
  }))

const main = Process.make("main", () =>
  Effect.gen(function* () {
    const child = yield* Process.spawn(echo)
    while ((yield* child.endpoints).length === 0) yield* Effect.sleep("5 millis")
    const agent = yield* Agent.make("worker", { model: "acme/m1" })
    yield* agent.on("finish", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
      Effect.zipRight(child.call("echo", { text }), Process.done(text)))
    yield* agent.on("check", { description: "", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
      child.call("echo", { text }))
    return yield* Process.wait()
  }))

/** pi's events for two turns: one that runs `bash` (which fails) and asks `check` (which fails), one that calls `finish`. */
const worker = (driver: ScriptedAgents.Driver) =>
  Effect.gen(function* () {
    yield* driver.waitForTool("finish")
    yield* driver.emit({ _tag: "WorkStarted" })
    yield* driver.emit({ _tag: "TurnStarted" })
    yield* driver.emit({
      _tag: "MessageEnded",
      role: "assistant",
      text: "",
      toolCalls: ["bash", "check"],
      model: "acme/m1-2025",
      usage: { input: 100, output: 20, cacheRead: 40, cost: 0.01 }
    })
    yield* driver.emit({ _tag: "ToolExecutionStarted", toolCallId: "b1", tool: "bash" })
    yield* driver.emit({ _tag: "ToolExecutionEnded", toolCallId: "b1", tool: "bash", isError: true, result: "exit 1" })
    yield* driver.call("check", { text: "boom" }, "c1")
    yield* driver.emit({ _tag: "TurnEnded" })
    yield* driver.emit({ _tag: "TurnStarted" })
    yield* driver.emit({ _tag: "MessageEnded", role: "assistant", text: "", toolCalls: ["finish"], usage: { input: 150, output: 10, cost: 0.02 } })
    yield* driver.call("finish", { text: "hi" }, "c2")
  })

const attributes = (span: ReadableSpan | undefined) => span?.attributes ?? {}

describe("NodeTracing", () => {
  it.live("a run is one trace: processes, agents' lives, model turns, tool and endpoint calls nested as they happened", () =>
    Effect.gen(function* () {
      const exporter = new KeepingExporter()
      const home = tempHome()
      const result = yield* main().pipe(
        Effect.provide(Ramure.layerScripted({ worker }, { home, program: "traced", traces: { exporter } }))
      )
      expect(result).toBe("hi")
      // The provider flushed every span when the run's layer was released.
      const spans = exporter.getFinishedSpans()
      expect(new Set(spans.map((span) => span.spanContext().traceId)).size).toBe(1)
      const interesting = (span: ReadableSpan) =>
        ["ramure.run", "Process.run", "Agent.make", "Agent.toolCall", "Process.endpoint", "Agent.release"].includes(span.name) ||
        /^(invoke_agent|chat|execute_tool) /.test(span.name)
      expect(tree(spans, interesting)).toBe([
        "ramure.run",
        "  Process.run",
        "    Process.run",
        "    Agent.make",
        "    invoke_agent worker",
        "      chat m1",
        "        execute_tool bash",
        "        Agent.toolCall",
        "          Process.endpoint",
        "      chat m1",
        "        Agent.toolCall",
        "          Process.endpoint",
        "      Agent.release"
      ].join("\n"))

      const named = (name: string) => spans.filter((span) => span.name === name)
      const run = named("ramure.run")[0]!
      expect(attributes(run)).toMatchObject({ "ramure.program": "traced" })
      expect(run.resource.attributes["service.name"]).toBe("ramure")
      const life = named("invoke_agent worker")[0]!
      expect(attributes(life)).toMatchObject({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "worker",
        "gen_ai.agent.id": "worker",
        "gen_ai.request.model": "m1",
        "gen_ai.provider.name": "acme",
        "gen_ai.usage.input_tokens": 250,
        "gen_ai.usage.output_tokens": 30,
        "ramure.turns": 2
      })
      expect(attributes(life)["gen_ai.usage.cost"]).toBeCloseTo(0.03)
      const [first, second] = named("chat m1").sort((a, b) => Number(attributes(a)["ramure.turn"]) - Number(attributes(b)["ramure.turn"]))
      expect(attributes(first)).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.agent.name": "worker",
        "gen_ai.request.model": "m1",
        "gen_ai.response.model": "m1-2025",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 40,
        "gen_ai.usage.cost": 0.01
      })
      expect(first!.kind).toBe(SpanKind.CLIENT)
      expect(first!.status.code).toBe(SpanStatusCode.OK)
      // The second turn was still open when the process ended: it was cut short, not failed.
      expect(attributes(second)).toMatchObject({ "gen_ai.usage.input_tokens": 150, "status.interrupted": true })
      const bash = named("execute_tool bash")[0]!
      expect(attributes(bash)).toMatchObject({ "gen_ai.tool.name": "bash", "gen_ai.tool.call.id": "b1", "ramure.outcome": "error" })
      expect(bash.status).toMatchObject({ code: SpanStatusCode.ERROR, message: "exit 1" })
      const [check, finish] = named("Agent.toolCall").sort((a, b) => String(attributes(a)["gen_ai.tool.call.id"]).localeCompare(String(attributes(b)["gen_ai.tool.call.id"])))
      expect(attributes(check)).toMatchObject({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "check",
        "gen_ai.tool.call.id": "c1",
        "ramure.arguments_bytes": JSON.stringify({ text: "boom" }).length,
        "ramure.outcome": "error"
      })
      expect(check!.status.code).toBe(SpanStatusCode.ERROR)
      expect(attributes(finish)).toMatchObject({ "gen_ai.tool.name": "finish", "ramure.outcome": "ok" })
      const [failedCall, okCall] = named("Process.endpoint").sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1])
      expect(attributes(failedCall)).toMatchObject({ endpoint: "echo", process: "main/child", "ramure.outcome": "error" })
      expect(failedCall!.status).toMatchObject({ code: SpanStatusCode.ERROR })
      expect(failedCall!.status.message).toContain("no boom")
      expect(attributes(okCall)).toMatchObject({ "ramure.outcome": "ok", "ramure.arguments_bytes": JSON.stringify({ text: "hi" }).length })

      // The run's log names its trace.
      const [id] = fs.readdirSync(path.join(home, "logs"))
      const started = readJsonl(path.join(home, "logs", id!, "_runtime.jsonl")).find((entry) => entry.event._tag === "RunStarted")
      expect(started.event.traceId).toBe(run.spanContext().traceId)
    }))

  it.live("an agent that crashes ends its life in error; without traces the log names no trace", () =>
    Effect.gen(function* () {
      const exporter = new KeepingExporter()
      const crashing = Process.make("main", () =>
        Effect.gen(function* () {
          yield* Agent.make("doomed")
          return yield* Process.wait()
        }))
      const exit = yield* crashing().pipe(
        Effect.provide(Ramure.layerScripted({ doomed: () => Effect.fail("kaput") }, { home: tempHome(), traces: { exporter } })),
        Effect.exit
      )
      expect(exit._tag).toBe("Failure")
      const life = exporter.getFinishedSpans().find((span) => span.name === "invoke_agent doomed")!
      expect(life.status.code).toBe(SpanStatusCode.ERROR)
      expect(life.status.message).toContain("crashed")

      const home = tempHome()
      yield* Process.make("main", () => Effect.succeed(1))().pipe(Effect.provide(Ramure.layerScripted({}, { home, traces: false })))
      const [id] = fs.readdirSync(path.join(home, "logs"))
      const started = readJsonl(path.join(home, "logs", id!, "_runtime.jsonl")).find((entry) => entry.event._tag === "RunStarted")
      expect(started.event.traceId).toBeUndefined()
    }))

  it("exports over OTLP only when the environment names an endpoint, with the protocol it names", () => {
    expect(otlpSettings({})).toBeUndefined()
    expect(otlpSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })).toEqual({ protocol: "http/protobuf" })
    expect(otlpSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c/v1/traces", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }))
      .toEqual({ protocol: "http/json" })
    expect(otlpSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf" }))
      .toEqual({ protocol: "http/protobuf" })
    expect(otlpSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_SDK_DISABLED: "true" })).toBeUndefined()
    expect(otlpSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_TRACES_EXPORTER: "none" })).toBeUndefined()
    const grpc = otlpSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })
    expect(grpc).toBeInstanceOf(TracingConfigError)
    expect((grpc as TracingConfigError).message).toBe(
      "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: traces can only be exported over OTLP/HTTP (http/protobuf or http/json)"
    )
    expect(otlpSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_TRACES_EXPORTER: "zipkin" })).toBeInstanceOf(TracingConfigError)
    expect(serviceName({})).toBe("ramure")
    expect(serviceName({ OTEL_RESOURCE_ATTRIBUTES: "team=a,service.name=builds" })).toBe("builds")
    expect(serviceName({ OTEL_SERVICE_NAME: "mine", OTEL_RESOURCE_ATTRIBUTES: "service.name=builds" })).toBe("mine")
  })

  it.live("by default the trace goes to the environment's endpoint as OTLP protobuf, with its headers and service name", () =>
    Effect.gen(function* () {
      const received: Array<{ readonly path: string; readonly type: string; readonly key: string; readonly body: Buffer }> = []
      const receiver = http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk) => chunks.push(chunk))
        request.on("end", () => {
          received.push({
            path: request.url ?? "",
            type: request.headers["content-type"] ?? "",
            key: String(request.headers["x-key"]),
            body: Buffer.concat(chunks)
          })
          response.writeHead(200).end()
        })
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))),
        () => Effect.sync(() => receiver.close())
      )
      const environment = {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
        OTEL_EXPORTER_OTLP_HEADERS: "x-key=k-42",
        OTEL_SERVICE_NAME: "proto-check"
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => Object.assign(process.env, environment)),
        () => Effect.sync(() => Object.keys(environment).forEach((name) => delete process.env[name]))
      )
      yield* Process.make("main", () => Effect.succeed(1))().pipe(Effect.provide(Ramure.layerScripted({}, { home: tempHome() })))
      expect(received.length).toBeGreaterThan(0)
      const body = Buffer.concat(received.map((r) => r.body)).toString("latin1")
      for (const sent of received) expect(sent).toMatchObject({ path: "/v1/traces", type: "application/x-protobuf", key: "k-42" })
      // Protobuf carries strings as they are.
      for (const name of ["proto-check", "ramure.run", "Process.run"]) expect(body).toContain(name)
    }).pipe(Effect.scoped))

  it.live("a bad tracing setting in the environment is a RunStartError that says which", () =>
    Effect.gen(function* () {
      const saved = { ...process.env }
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:9"
      process.env.OTEL_EXPORTER_OTLP_PROTOCOL = "grpc"
      const exit = yield* Process.make("main", () => Effect.succeed(1))().pipe(
        Effect.provide(Ramure.layerScripted({}, { home: tempHome() })),
        Effect.exit,
        Effect.ensuring(Effect.sync(() => {
          delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT
          delete process.env.OTEL_EXPORTER_OTLP_PROTOCOL
          Object.assign(process.env, saved)
        }))
      )
      expect(exit).toMatchObject({ _tag: "Failure", cause: { error: { _tag: "RunStartError" } } })
      expect(JSON.stringify(exit)).toContain("OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
    }))
})
