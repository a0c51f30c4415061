/**
 * A small OTLP/HTTP receiver (JSON encoding, `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`)
 * for tests: apps export to `endpoint`, the test reads the spans and metric
 * names it got. Only what the assertions need is decoded.
 */
import { Effect, type Scope } from "effect"
import { createServer } from "node:http"

type Attributes = ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>

export interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly attributes: Record<string, unknown>
}

export interface ReceivedMetric {
  readonly service: string
  readonly name: string
  readonly data: Record<string, unknown>
}

export interface OtlpReceiver {
  readonly endpoint: string
  readonly spans: ReadonlyArray<ReceivedSpan>
  readonly metrics: ReadonlyArray<ReceivedMetric>
  /** Request paths received, with their content types (to check what was sent). */
  readonly requests: ReadonlyArray<string>
}

const attributes = (attrs: Attributes | undefined): Record<string, unknown> =>
  Object.fromEntries((attrs ?? []).map((a) => [a.key, Object.values(a.value)[0]]))

/** Listens on 127.0.0.1 (any free port) until the scope closes. */
export const make: Effect.Effect<OtlpReceiver, never, Scope.Scope> = Effect.acquireRelease(
  Effect.async<{ receiver: OtlpReceiver; close: () => void }>((resume) => {
    const spans: Array<ReceivedSpan> = []
    const metrics: Array<ReceivedMetric> = []
    const requests: Array<string> = []
    const server = createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        requests.push(`${req.method} ${req.url} ${req.headers["content-type"] ?? ""}`)
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as any
          for (const rs of body.resourceSpans ?? []) {
            const service = String(attributes(rs.resource?.attributes)["service.name"])
            for (const ss of rs.scopeSpans ?? []) {
              for (const s of ss.spans ?? []) {
                spans.push({
                  service,
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId || undefined,
                  name: s.name,
                  attributes: attributes(s.attributes)
                })
              }
            }
          }
          for (const rm of body.resourceMetrics ?? []) {
            const service = String(attributes(rm.resource?.attributes)["service.name"])
            for (const sm of rm.scopeMetrics ?? []) {
              for (const m of sm.metrics ?? []) metrics.push({ service, name: m.name, data: m })
            }
          }
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        } catch {
          res.writeHead(400).end()
        }
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({
        receiver: { endpoint: `http://127.0.0.1:${port}`, spans, metrics, requests },
        close: () => {
          server.closeAllConnections()
          server.close()
        }
      }))
    })
  }),
  ({ close }) => Effect.sync(close)
).pipe(Effect.map(({ receiver }) => receiver))
