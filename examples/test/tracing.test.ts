/**
 * A real run exports its trace: build-and-review (real pi agents in tmux,
 * the scripted model) with the standard OpenTelemetry environment pointing
 * at an OTLP/HTTP receiver in this test. The spans the SDK sends form the
 * run's tree: the run, its process, each agent's life, its model turns (with
 * the GenAI conventions), the tools it ran in them.
 */
import { describe, expect, it } from "@effect/vitest"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as fs from "node:fs"
import * as path from "node:path"
import { expectClean, runExample } from "./helpers.js"

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly boolValue?: boolean
}
interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes?: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }>
  readonly status?: { readonly code?: number; readonly message?: string }
}
interface Export {
  readonly headers: http.IncomingHttpHeaders
  readonly path: string
  readonly body: {
    readonly resourceSpans: ReadonlyArray<{
      readonly resource: { readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }> }
      readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<OtlpSpan> }>
    }>
  }
}

/** An OTLP/HTTP (JSON) receiver on 127.0.0.1 keeping every export it gets. */
const receiver = async () => {
  const exports: Array<Export> = []
  const server = http.createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk) => chunks.push(chunk))
    request.on("end", () => {
      exports.push({ headers: request.headers, path: request.url ?? "", body: JSON.parse(Buffer.concat(chunks).toString("utf8")) })
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, exports, close: () => server.close() }
}

const value = (v: OtlpValue | undefined): unknown =>
  v === undefined ? undefined : v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.boolValue)
const attribute = (span: OtlpSpan, key: string): unknown => value(span.attributes?.find((a) => a.key === key)?.value)

describe("traces of a real run", () => {
  it("build-and-review exports one trace over OTLP: run → process → agents' lives → model turns → tool calls", async () => {
    const otlp = await receiver()
    try {
      const run = await runExample("build-and-review.ts", [], {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_HEADERS: "x-collector-key=k123",
        OTEL_SERVICE_NAME: "reviews"
      })
      expect(run.status, run.stderr).toBe(0)
      expectClean(run)

      expect(otlp.exports.length).toBeGreaterThan(0)
      for (const sent of otlp.exports) {
        expect(sent.path).toBe("/v1/traces")
        expect(sent.headers["x-collector-key"]).toBe("k123")
      }
      const resources = otlp.exports.flatMap((sent) => sent.body.resourceSpans.map((r) => r.resource))
      for (const resource of resources) {
        expect(value(resource.attributes.find((a) => a.key === "service.name")?.value)).toBe("reviews")
        expect(value(resource.attributes.find((a) => a.key === "service.instance.id")?.value)).toBe(run.executionId)
      }
      const spans = otlp.exports.flatMap((sent) => sent.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)))
      const byId = new Map(spans.map((span) => [span.spanId, span]))
      const parent = (span: OtlpSpan) => (span.parentSpanId ? byId.get(span.parentSpanId) : undefined)
      const named = (name: string) => spans.filter((span) => span.name === name)
      const one = (name: string) => {
        const found = named(name)
        expect(found.map((span) => span.name)).toEqual([name])
        return found[0]!
      }

      // One trace, named in the run's log.
      expect(new Set(spans.map((span) => span.traceId)).size).toBe(1)
      const started = run.runtimeLog.find((entry) => entry.event._tag === "RunStarted")
      expect(started.event.traceId).toBe(spans[0]!.traceId)

      const root = one("ramure.run")
      expect(parent(root)).toBeUndefined()
      expect(attribute(root, "ramure.program")).toBe("build-and-review")
      const process = one("Process.run")
      expect(parent(process)).toBe(root)
      expect(attribute(process, "process")).toBe("build-and-review")
      for (const name of ["builder", "auditor"]) {
        expect(parent(named("Agent.make").find((span) => attribute(span, "agent") === name)!)).toBe(process)
        const life = one(`invoke_agent ${name}`)
        expect(parent(life)).toBe(process)
        expect(attribute(life, "gen_ai.agent.name")).toBe(name)
        expect(attribute(life, "gen_ai.request.model")).toBe("scripted")
        expect(attribute(life, "gen_ai.provider.name")).toBe("ramure-scripted")
        expect(life.status?.code).not.toBe(2)
        const release = named("Agent.release").filter((span) => parent(span) === life)
        expect(release).toHaveLength(1)

        const turns = spans.filter((span) => span.name === "chat scripted" && parent(span) === life)
        // Each agent's script has at least five turns before the approval ends the run.
        expect(turns.length).toBeGreaterThanOrEqual(5)
        for (const turn of turns) {
          expect(turn.kind).toBe(3) // CLIENT
          expect(attribute(turn, "gen_ai.operation.name")).toBe("chat")
          expect(attribute(turn, "gen_ai.agent.name")).toBe(name)
          expect(attribute(turn, "gen_ai.request.model")).toBe("scripted")
        }
        const turnOf = (span: OtlpSpan) => Number(attribute(parent(span)!, "ramure.turn"))
        // pi's own bash ran in the first turn of each round (turns 1 and 4).
        const bash = spans.filter((span) => span.name === "execute_tool bash" && turns.includes(parent(span)!))
        expect(bash.map(turnOf).sort()).toEqual([1, 4])
        for (const span of bash) expect(attribute(span, "gen_ai.tool.name")).toBe("bash")
        // The process's tools ran in the second turn of each round.
        const calls = spans.filter((span) => span.name === "Agent.toolCall" && attribute(span, "agent") === name)
        for (const call of calls) expect(turns).toContain(parent(call))
        const tools = calls.map((call) => [turnOf(call), attribute(call, "gen_ai.tool.name")]).sort()
        expect(tools).toEqual(name === "builder" ? [[2, "submit"], [5, "submit"]] : [[2, "reject"], [5, "approve"]])
        for (const call of calls) {
          expect(attribute(call, "ramure.outcome")).toBe("ok")
          expect(Number(attribute(call, "ramure.arguments_bytes"))).toBeGreaterThan(2)
        }
        // The scripted model reports usage: turns that got an answer carry its tokens.
        const answered = turns.filter((turn) => attribute(turn, "gen_ai.usage.input_tokens") !== undefined)
        expect(answered.length).toBeGreaterThanOrEqual(5)
        for (const turn of answered) expect(Number(attribute(turn, "gen_ai.usage.input_tokens"))).toBeGreaterThan(0)
      }
      fs.rmSync(path.join(run.home), { recursive: true, force: true })
    } finally {
      otlp.close()
    }
  })
})
