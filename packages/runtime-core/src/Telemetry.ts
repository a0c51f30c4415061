/**
 * Traces and metrics over OTLP/HTTP, configured by the standard `OTEL_*`
 * variables, and the process's log format (`Logging`). With no OTLP endpoint
 * set (or `OTEL_SDK_DISABLED=true`, or both exporters `none`) no tracer or
 * exporter is installed at all: spans stay Effect's no-op native spans and
 * nothing is sent.
 *
 * The exporters are `@effect/opentelemetry`'s Effect-native OTLP ones
 * (`OtlpTracer`, `OtlpMetrics`): no OpenTelemetry SDK in the process. Spans
 * come from what the libraries already trace (HTTP server and client, with
 * W3C `traceparent` propagation; SQL statements; the cluster's entity RPCs,
 * whose parent span is stored with each message, so a run replayed after a
 * restart stays in the trace of the request that started it) plus the
 * runtime's own: `workflow.run` per execution (`WorkflowLayer`) and
 * `activity.attempt` per activity attempt with its outcome
 * (`internal/ActivityTelemetry`). Metrics are effect `Metric`s, see `Metrics` below.
 *
 * Variables read (per the OpenTelemetry spec where it applies):
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL; `/v1/traces` and `/v1/metrics` are appended),
 *   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (full URLs)
 * - `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (default) or `http/json`; `grpc` is refused
 * - `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`
 * - `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`: `otlp` (default) or `none`
 * - `OTEL_SERVICE_NAME` (default: the app's name), `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`)
 * - `OTEL_BSP_SCHEDULE_DELAY` (ms between span exports, default 5000),
 *   `OTEL_METRIC_EXPORT_INTERVAL` (ms between metric exports, default 60000)
 * - `OTEL_SDK_DISABLED=true`: nothing at all
 */
import * as OtlpMetrics from "@effect/opentelemetry/OtlpMetrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { Config, Duration, Effect, Layer, Metric, MetricBoundaries, Option } from "effect"
import * as Logging from "./Logging.js"
import { InvalidRuntimeConfig } from "./RuntimeError.js"

// ---------------------------------------------------------------------------------------------------------------
// Metrics (tagged `workflow`; the resource says which app)

export const Metrics = {
  /** Executions of a workflow that began: a new run, and each resume of it (after a suspension or a restart). */
  runsStarted: Metric.counter("duraflow.runs.started", { description: "workflow executions begun (new runs and resumes)", incremental: true }),
  runsSucceeded: Metric.counter("duraflow.runs.succeeded", { description: "runs that finished successfully", incremental: true }),
  runsFailed: Metric.counter("duraflow.runs.failed", { description: "runs that finished failed", incremental: true }),
  /** Executions running in this process right now (up and down). */
  runsInFlight: Metric.counter("duraflow.runs.in_flight", { description: "workflow executions running in this process" }),
  /** Runs started and held until this process has a free slot (`WORKFLOW_MAX_RUNS_IN_FLIGHT`, `RunAdmission`). */
  runsWaiting: Metric.gauge("duraflow.runs.waiting", { description: "runs waiting for a slot in this process (maxRunsInFlight)" }),
  /** Each activity attempt's duration, tagged `workflow`, `activity` and `outcome` (success, failure, suspended). */
  activityDuration: Metric.histogram(
    "duraflow.activity.duration",
    MetricBoundaries.exponential({ start: 1, factor: 2, count: 18 }),
    "activity attempt duration in milliseconds"
  )
} as const

// ---------------------------------------------------------------------------------------------------------------
// Config

export interface Settings {
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  readonly resourceAttributes: Record<string, string>
  readonly protocol: "http/protobuf" | "http/json"
  readonly headers: Record<string, string>
  /** Where spans go; none: no tracer. */
  readonly tracesUrl: Option.Option<string>
  /** Where metrics go; none: no metrics export. */
  readonly metricsUrl: Option.Option<string>
  readonly tracesInterval: Duration.Duration
  readonly metricsInterval: Duration.Duration
}

/** `k=v,k2=v2` (values URL-decoded, as the spec says), empty entries skipped. */
export const parseKeyValues = (text: string): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const part of text.split(",")) {
    const i = part.indexOf("=")
    if (i <= 0) continue
    const key = part.slice(0, i).trim()
    const raw = part.slice(i + 1).trim()
    let value = raw
    try {
      value = decodeURIComponent(raw)
    } catch {
      // not URL-encoded: taken as is
    }
    if (key) out[key] = value
  }
  return out
}

const optionalString = (name: string) =>
  Config.option(Config.string(name)).pipe(Config.map(Option.filter((s) => s.trim() !== "")), Config.map(Option.map((s) => s.trim())))

const join = (base: string, path: string) => `${base.replace(/\/+$/, "")}${path}`

/** The settings from `OTEL_*`, for an app named `appName` (the default service name). */
export const settingsConfig = (appName: string, serviceVersion?: string) =>
  Effect.gen(function*() {
    const disabled = yield* Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false))
    const base = yield* optionalString("OTEL_EXPORTER_OTLP_ENDPOINT")
    const tracesEndpoint = yield* optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    const metricsEndpoint = yield* optionalString("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    const tracesExporter = Option.getOrElse(yield* optionalString("OTEL_TRACES_EXPORTER"), () => "otlp").toLowerCase()
    const metricsExporter = Option.getOrElse(yield* optionalString("OTEL_METRICS_EXPORTER"), () => "otlp").toLowerCase()
    for (const [key, value] of [["OTEL_TRACES_EXPORTER", tracesExporter], ["OTEL_METRICS_EXPORTER", metricsExporter]]) {
      if (value !== "otlp" && value !== "none") {
        return yield* new InvalidRuntimeConfig({ key: key!, reason: `is ${JSON.stringify(value)}; supported: otlp, none` })
      }
    }
    const protocol = Option.getOrElse(yield* optionalString("OTEL_EXPORTER_OTLP_PROTOCOL"), () => "http/protobuf")
    if (protocol !== "http/protobuf" && protocol !== "http/json") {
      return yield* new InvalidRuntimeConfig({
        key: "OTEL_EXPORTER_OTLP_PROTOCOL",
        reason: `is ${JSON.stringify(protocol)}; supported: http/protobuf, http/json (no gRPC)`
      })
    }
    const serviceName = Option.getOrElse(yield* optionalString("OTEL_SERVICE_NAME"), () => appName)
    const resourceAttributes = parseKeyValues(Option.getOrElse(yield* optionalString("OTEL_RESOURCE_ATTRIBUTES"), () => ""))
    const headers = parseKeyValues(Option.getOrElse(yield* optionalString("OTEL_EXPORTER_OTLP_HEADERS"), () => ""))
    const tracesMs = yield* Config.integer("OTEL_BSP_SCHEDULE_DELAY").pipe(Config.withDefault(5000))
    const metricsMs = yield* Config.integer("OTEL_METRIC_EXPORT_INTERVAL").pipe(Config.withDefault(60000))
    const url = (exporter: string, specific: Option.Option<string>, path: string) =>
      disabled || exporter === "none"
        ? Option.none()
        : Option.orElse(specific, () => Option.map(base, (b) => join(b, path)))
    return {
      serviceName,
      serviceVersion,
      resourceAttributes,
      protocol,
      headers,
      tracesUrl: url(tracesExporter, tracesEndpoint, "/v1/traces"),
      metricsUrl: url(metricsExporter, metricsEndpoint, "/v1/metrics"),
      tracesInterval: Duration.millis(Math.max(1, tracesMs)),
      metricsInterval: Duration.millis(Math.max(1, metricsMs))
    } satisfies Settings
  })

// ---------------------------------------------------------------------------------------------------------------
// Layers

/** The exporters `settings` ask for; `Layer.empty` when neither has a URL. */
export const layer = (settings: Settings): Layer.Layer<never> => {
  const resource = {
    serviceName: settings.serviceName,
    serviceVersion: settings.serviceVersion,
    attributes: settings.resourceAttributes
  }
  const tracer = Option.match(settings.tracesUrl, {
    onNone: () => Layer.empty,
    onSome: (url) =>
      OtlpTracer.layer({ url, resource, headers: settings.headers, exportInterval: settings.tracesInterval })
  })
  const metrics = Option.match(settings.metricsUrl, {
    onNone: () => Layer.empty,
    onSome: (url) =>
      OtlpMetrics.layer({ url, resource, headers: settings.headers, exportInterval: settings.metricsInterval })
  })
  if (Option.isNone(settings.tracesUrl) && Option.isNone(settings.metricsUrl)) return Layer.empty
  return Layer.merge(tracer, metrics).pipe(
    Layer.provide(settings.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
    Layer.provide(FetchHttpClient.layer)
  )
}

/**
 * What an app's main provides under everything else: the log format and level
 * (`LOG_FORMAT`, `LOG_LEVEL`, see `Logging`) and the OTLP exporters from
 * `OTEL_*`. `appName` is the default `OTEL_SERVICE_NAME`.
 */
export const layerConfig = (appName: string, options: { readonly serviceVersion?: string | undefined } = {}) =>
  Layer.merge(
    Logging.layerConfig,
    Layer.unwrapEffect(Effect.map(settingsConfig(appName, options.serviceVersion), layer))
  )
