/**
 * A run's traces, exported with OpenTelemetry: over OTLP when the standard
 * environment says where (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, with `…_HEADERS`, `…_PROTOCOL`,
 * `…_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), to an
 * exporter of the program's own, or nowhere. Without one, nothing is loaded:
 * the SDK is imported only when a run exports.
 *
 * The run is one trace: its span (`ramure.run`) is the parent of the
 * program's processes, whose spans hold their agents' lives, model turns,
 * tool calls and endpoint calls. `RunStarted` in the log carries its trace id.
 */
import type { SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Schema } from "effect"
import { RunInfo } from "@ramure/core/RunInfo"

/**
 * Where a run's spans go: by default over OTLP when the environment names an
 * endpoint, nowhere otherwise; `false`: nowhere, whatever the environment
 * says; `{ exporter }`: to this exporter (e.g. the SDK's `InMemorySpanExporter`).
 */
export type Traces = false | { readonly exporter: SpanExporter }

/** The environment asks for something ramure cannot do (an unknown exporter or protocol). */
export class TracingConfigError extends Schema.TaggedError<TracingConfigError>()("TracingConfigError", {
  variable: Schema.String,
  value: Schema.String,
  expected: Schema.String
}) {
  override get message() {
    return `${this.variable}=${this.value}: traces can only be exported ${this.expected}`
  }
}

export type Protocol = "http/protobuf" | "http/json"

/** What the environment says about exporting traces: nothing (`undefined`), or OTLP with this protocol. */
export const otlpSettings = (env: NodeJS.ProcessEnv): { readonly protocol: Protocol } | undefined | TracingConfigError => {
  const value = (name: string) => {
    const text = env[name]?.trim()
    return text === undefined || text === "" ? undefined : text
  }
  if (value("OTEL_SDK_DISABLED")?.toLowerCase() === "true") return undefined
  const exporters = (value("OTEL_TRACES_EXPORTER") ?? "otlp").split(",").map((name) => name.trim())
  if (exporters.includes("none")) return undefined
  const unknown = exporters.find((name) => name !== "otlp")
  if (unknown !== undefined) {
    return new TracingConfigError({ variable: "OTEL_TRACES_EXPORTER", value: unknown, expected: "with otlp (or none)" })
  }
  if (value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") === undefined && value("OTEL_EXPORTER_OTLP_ENDPOINT") === undefined) {
    return undefined
  }
  const variable = value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") === undefined
    ? "OTEL_EXPORTER_OTLP_PROTOCOL"
    : "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
  const protocol = value(variable) ?? "http/protobuf"
  if (protocol !== "http/protobuf" && protocol !== "http/json") {
    return new TracingConfigError({ variable, value: protocol, expected: "over OTLP/HTTP (http/protobuf or http/json)" })
  }
  return { protocol }
}

/** The service name: `OTEL_SERVICE_NAME`, else `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else `ramure`. */
export const serviceName = (env: NodeJS.ProcessEnv): string => {
  const named = env.OTEL_SERVICE_NAME?.trim()
  if (named) return named
  for (const pair of (env.OTEL_RESOURCE_ATTRIBUTES ?? "").split(",")) {
    const [key, value] = pair.split("=")
    if (key?.trim() === "service.name" && value?.trim()) return decodeURIComponent(value.trim())
  }
  return "ramure"
}

/** The OTLP exporter the environment asks for; it reads its endpoint, headers, timeout and compression there. */
const otlpExporter = (protocol: Protocol): Effect.Effect<SpanExporter> =>
  Effect.promise(async () =>
    protocol === "http/json"
      ? new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter()
      : new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter()
  )

/**
 * Set the run's tracer and open its span (ended, and every span flushed, when
 * the layer is released). Provides the run's span as the parent of what is
 * built on top, and of the program it is provided to.
 */
export const layer = (traces: Traces | undefined, env: NodeJS.ProcessEnv = process.env): Layer.Layer<never, TracingConfigError, RunInfo> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      if (traces === false) return Layer.empty
      let exporter: SpanExporter
      if (traces !== undefined) exporter = traces.exporter
      else {
        const settings = otlpSettings(env)
        if (settings === undefined) return Layer.empty
        if (settings instanceof TracingConfigError) return yield* settings
        exporter = yield* otlpExporter(settings.protocol)
      }
      const info = yield* RunInfo
      const [NodeSdk, { BatchSpanProcessor }] = yield* Effect.promise(() =>
        Promise.all([import("@effect/opentelemetry/NodeSdk"), import("@opentelemetry/sdk-trace-base")])
      )
      const sdk = NodeSdk.layer(() => ({
        spanProcessor: new BatchSpanProcessor(exporter),
        resource: {
          serviceName: serviceName(env),
          attributes: { "service.instance.id": info.executionId, "ramure.program": info.program }
        },
        shutdownTimeout: "5 seconds"
      }))
      const run = Layer.span("ramure.run", {
        attributes: { "ramure.execution_id": info.executionId, "ramure.program": info.program }
      })
      // The run's span is a `ParentSpan` in the context, which the run's type does not list: it is optional.
      return Layer.provide(run, sdk) as Layer.Layer<never>
    })
  )
