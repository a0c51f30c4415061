/**
 * OpenTelemetry across both apps, as real processes exporting OTLP/HTTP (JSON)
 * to a receiver in this test: one `POST /runs/IngestDocument` to knowledge is
 * ONE trace holding knowledge's HTTP server span, its workflow run, its
 * activity attempts and SQL statements, and the ontology app's HTTP server span
 * for the call knowledge makes to it (W3C `traceparent`). The run metrics
 * arrive too, and `LOG_FORMAT=json` makes every output line of the app JSON.
 * A run knowledge was in the middle of when it restarted is resumed by the new
 * process in that same trace.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { awaitRun, executionId, ONTOLOGY_ID, poll, publishSample, sampleDocuments, startBoth, withApps } from "../src/Apps.js"
import * as OtlpReceiver from "../src/OtlpReceiver.js"

const otel = (endpoint: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  OTEL_BSP_SCHEDULE_DELAY: "200",
  OTEL_METRIC_EXPORT_INTERVAL: "500",
  OTEL_SERVICE_NAME: undefined,
  OTEL_SDK_DISABLED: undefined
})

describe("telemetry", () => {
  layer(TestDatabase.layer("e2e_telemetry"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("one trace from POST /runs/IngestDocument on knowledge through its call to ontology", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const receiver = yield* OtlpReceiver.make
          const { knowledge, ontology } = yield* startBoth(apps, db.url, {
            mode: "durable",
            env: {
              ontology: otel(receiver.endpoint),
              knowledge: { ...otel(receiver.endpoint), LOG_FORMAT: "json" }
            }
          })
          const published = yield* publishSample(ontology)
          expect(published.status).toBe("succeeded")

          const document = { ...sampleDocuments(1)[0]!, documentId: "otel-doc", ontologyId: ONTOLOGY_ID }
          const id = yield* knowledge.client.workflows.IngestDocument({ payload: document }).pipe(executionId)
          const run = yield* awaitRun(knowledge, "IngestDocument", id)
          expect(run.status, JSON.stringify(run.error)).toBe("succeeded")

          // the trace of the run: the one its workflow.run span is in
          const traceOf = () => {
            const runSpan = receiver.spans.find((s) =>
              s.service === "knowledge" && s.name === "workflow.run IngestDocument" && s.attributes["workflow.execution_id"] === id
            )
            return runSpan === undefined ? [] : receiver.spans.filter((s) => s.traceId === runSpan.traceId)
          }
          const complete = (spans: ReadonlyArray<OtlpReceiver.ReceivedSpan>) =>
            spans.some((s) => s.service === "knowledge" && s.name.startsWith("http.server POST")) &&
            spans.some((s) => s.service === "knowledge" && s.name.startsWith("activity.attempt ")) &&
            spans.some((s) => s.service === "knowledge" && s.name === "sql.execute") &&
            spans.some((s) => s.service === "knowledge" && s.name.startsWith("http.client GET")) &&
            spans.some((s) => s.service === "ontology" && s.name.startsWith("http.server GET"))
          const spans = yield* poll("the run's trace to hold both apps' spans", Effect.sync(traceOf), complete, {
            timeout: "30 seconds",
            interval: "200 millis"
          }).pipe(Effect.tapError(() =>
            Effect.sync(() =>
              console.error(receiver.spans.map((s) => `${s.service} ${s.traceId} ${s.name}`).join("\n"))
            )
          ))

          // one trace id across both services, rooted at knowledge's POST /runs/IngestDocument
          expect(new Set(spans.map((s) => s.traceId)).size).toBe(1)
          expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["knowledge", "ontology"]))
          const post = spans.find((s) => s.service === "knowledge" && s.name.startsWith("http.server POST"))!
          expect(String(post.attributes["url.path"] ?? post.attributes["http.url"] ?? "")).toContain("/runs/IngestDocument")
          const ontologyGet = spans.find((s) => s.service === "ontology" && s.name.startsWith("http.server GET"))!
          expect(String(ontologyGet.attributes["url.path"] ?? "")).toContain(`/ontologies/${ONTOLOGY_ID}`)
          // the ontology server span's parent is knowledge's client span (propagated traceparent)
          const clientSpan = spans.find((s) => s.spanId === ontologyGet.parentSpanId)
          expect(clientSpan?.service).toBe("knowledge")
          // every activity attempt says how it ended
          const attempts = spans.filter((s) => s.name.startsWith("activity.attempt "))
          for (const a of attempts) {
            expect(a.attributes["workflow.execution_id"]).toBe(id)
            expect(a.attributes["activity.outcome"]).toBe("success")
            expect(typeof a.attributes["activity.attempt"]).not.toBe("undefined")
          }

          // metrics: a succeeded run of IngestDocument, activity durations
          const names = yield* poll(
            "run metrics",
            Effect.sync(() => new Set(receiver.metrics.filter((m) => m.service === "knowledge").map((m) => m.name))),
            (n) => n.has("duraflow.runs.succeeded") && n.has("duraflow.activity.duration") && n.has("duraflow.runs.in_flight"),
            { timeout: "30 seconds", interval: "200 millis" }
          )
          expect(names.has("duraflow.runs.started")).toBe(true)
          expect(receiver.requests.some((r) => r.startsWith("POST /v1/traces application/json"))).toBe(true)

          // LOG_FORMAT=json: every line knowledge wrote is one JSON object
          const lines = knowledge.process.lines.filter((l) => l.trim() !== "")
          expect(lines.length).toBeGreaterThan(0)
          for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow()
        })
      ))

    it.scoped("a run the knowledge app was in the middle of when it restarted resumes in the same trace", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const receiver = yield* OtlpReceiver.make
          const { knowledge, ontology } = yield* startBoth(apps, db.url, {
            mode: "durable",
            env: { ontology: otel(receiver.endpoint), knowledge: otel(receiver.endpoint) }
          })
          const published = yield* publishSample(ontology)
          expect(published.status).toBe("succeeded")

          // the ontology app goes away: the run keeps retrying its ontology lookup
          yield* ontology.process.kill("SIGKILL")
          const document = { ...sampleDocuments(2)[1]!, documentId: "otel-restart", ontologyId: ONTOLOGY_ID }
          const id = yield* knowledge.client.workflows.IngestDocument({ payload: document }).pipe(executionId)
          yield* knowledge.process.waitFor((l) => l.includes("retrying"), "30 seconds")
          // the trace of the POST that started it (the run's own span only ends with the run), with the
          // failing calls to ontology in it (exported in batches: they may arrive after the POST's span)
          const started = yield* poll(
            "the POST's span, and the failing calls to ontology in its trace",
            Effect.sync(() =>
              receiver.spans.find((s) =>
                s.service === "knowledge" && s.name.startsWith("http.server POST") &&
                String(s.attributes["url.path"] ?? "").includes("/runs/IngestDocument")
              )
            ),
            (post) =>
              post !== undefined &&
              receiver.spans.some((s) => s.traceId === post.traceId && s.name.startsWith("http.client GET")),
            { timeout: "30 seconds", interval: "200 millis" }
          )
          const traceId = started!.traceId

          // knowledge restarts (a new process, told apart by its service name), ontology comes back
          yield* knowledge.process.kill("SIGTERM")
          yield* knowledge.process.exited
          yield* apps.start("ontology", { databaseUrl: db.url, port: ontology.port, env: otel(receiver.endpoint) })
          const again = yield* apps.start("knowledge", {
            databaseUrl: db.url,
            port: knowledge.port,
            ontologyUrl: ontology.baseUrl,
            env: { ...otel(receiver.endpoint), OTEL_SERVICE_NAME: "knowledge-restarted" }
          })
          const run = yield* awaitRun(again, "IngestDocument", id)
          expect(run.status, JSON.stringify(run.error)).toBe("succeeded")

          // the restarted process's run, its activities and its call to ontology are in the first POST's trace
          const resumed = yield* poll(
            "the resumed run's spans",
            Effect.sync(() => receiver.spans.filter((s) => s.service === "knowledge-restarted" && s.traceId === traceId)),
            (spans) =>
              spans.some((s) => s.name === "workflow.run IngestDocument" && s.attributes["workflow.execution_id"] === id) &&
              spans.some((s) => s.name.startsWith("activity.attempt ") && s.attributes["activity.outcome"] === "success") &&
              receiver.spans.some((s) => s.service === "ontology" && s.traceId === traceId && s.name.startsWith("http.server GET")),
            { timeout: "30 seconds", interval: "200 millis" }
          ).pipe(Effect.tapError(() =>
            Effect.sync(() => console.error(receiver.spans.map((s) => `${s.service} ${s.traceId} ${s.name}`).join("\n")))
          ))
          expect(resumed.length).toBeGreaterThan(0)
        })
      ))
  })
})
