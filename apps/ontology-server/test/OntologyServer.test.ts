/**
 * The ontology app as composed for production (`OntologyServer.layer`, config
 * from the environment) comes up on a fresh database and serves the runtime's
 * routes, its OpenAPI document (named and versioned from the app's package,
 * saying what PublishOntology takes) and its domain routes; a client derived
 * from the exported `OntologyApi` is typed by PublishOntology's own schemas.
 */
import { OntologyApi, SampleOntology } from "@duraflow/ontology"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpServer from "@effect/platform/HttpServer"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, LogLevel, Schedule } from "effect"
import pkg from "../package.json" with { type: "json" }
import * as OntologyServer from "../src/OntologyServer.js"
import { registry } from "../src/registry.js"

/** Never run: it only has to compile, or not. */
export const typeChecks = Effect.gen(function*() {
  const client = yield* HttpApiClient.make(OntologyApi.OntologyApi, { baseUrl: "http://127.0.0.1:1" })
  yield* client.workflows.PublishOntology({ payload: { ontologyId: "news", turtle: "" } })
  // @ts-expect-error a misspelled payload field
  yield* client.workflows.PublishOntology({ payload: { ontologyID: "news", turtle: "" } })
  // @ts-expect-error a field of the wrong type
  yield* client.workflows.PublishOntology({ payload: { ontologyId: "news", turtle: 42 } })
  const run = yield* client.workflows["PublishOntology.status"]({ path: { executionId: "x" } })
  // the result is typed by the workflow's success schema
  const version: number | undefined = run.result?.version
  // @ts-expect-error no such field in the result
  const misspelled = run.result?.versoin
  return [version, misspelled]
})

const App = Layer.unwrapEffect(Effect.map(TestDatabase.TestDatabase, (db) =>
  OntologyServer.layer.pipe(
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
      ["DATABASE_URL", db.url],
      ["PORT", "0"],
      ["WORKFLOW_MODE", "durable"]
    ]))))
  ))).pipe(Layer.provideMerge(TestDatabase.layer("ontology_server")), Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)))

const get = (path: string) =>
  Effect.gen(function*() {
    const { port } = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
    return yield* Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`)
      const text = await response.text()
      return { status: response.status, body: text ? JSON.parse(text) : undefined }
    })
  })

describe("ontology-server", () => {
  layer(App, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("serves health, the OpenAPI document and the domain routes", () =>
      Effect.gen(function*() {
        expect(yield* get("/health")).toMatchObject({
          status: 200,
          body: { status: "ok", mode: "durable", prefix: "ontology", database: { reachable: true } }
        })
        const openapi = yield* get("/openapi.json")
        expect(openapi.status).toBe(200)
        expect(Object.keys(openapi.body.paths)).toEqual(expect.arrayContaining(["/health", "/ontologies/{ontologyId}"]))
        expect(yield* get("/ontologies/news")).toMatchObject({ status: 404, body: { _tag: "OntologyNotFound" } })
      }))

    it.effect("the OpenAPI document names the app and says what PublishOntology takes", () =>
      Effect.gen(function*() {
        const doc = (yield* get("/openapi.json")).body
        expect(doc.info).toMatchObject({ title: pkg.name, version: pkg.version })
        const ref: string = doc.paths["/runs/PublishOntology"].post.requestBody.content["application/json"].schema.$ref
        const payload = ref === undefined
          ? doc.paths["/runs/PublishOntology"].post.requestBody.content["application/json"].schema
          : doc.components.schemas[ref.split("/").pop()!]
        expect(Object.keys(payload.properties).sort()).toEqual(["ontologyId", "turtle"])
        expect(payload.additionalProperties).toBe(false)
        // the registry `duraflow upgrade-check` reads declares exactly the workflows the app serves
        const served = Object.keys(doc.paths).filter((p) => /^\/runs\/[A-Z]\w*$/.test(p)).map((p) => p.slice(6)).sort()
        expect(registry.workflows.map((w) => w.workflow.name).sort()).toEqual(served)
        expect(served).toEqual(["PublishOntology", "RevalidateOntologies"])
      }))

    it.effect("a client derived from OntologyApi publishes and reads the typed result", () =>
      Effect.gen(function*() {
        const { port } = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
        const client = yield* HttpApiClient.make(OntologyApi.OntologyApi, { baseUrl: `http://127.0.0.1:${port}` })
        const { executionId } = yield* client.workflows.PublishOntology({
          payload: { ontologyId: "typed", turtle: SampleOntology.turtle }
        })
        const run = yield* client.workflows["PublishOntology.status"]({ path: { executionId } }).pipe(
          Effect.filterOrFail((r) => r.status === "succeeded"),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("60 seconds")
        )
        expect(run.result?.version).toBe(1)
        // the run records the app version that started it
        expect(run.startedBy).toBe(pkg.version)

        // the nightly revalidation (its schedule is registered; started by hand here) re-checks
        // every ontology's latest version with this build's rules
        const revalidation = yield* client.workflows.RevalidateOntologies({ payload: { scheduledAt: "manual" } })
        const report = yield* client.workflows["RevalidateOntologies.status"]({ path: revalidation }).pipe(
          Effect.filterOrFail((r) => r.status === "succeeded"),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("60 seconds")
        )
        expect(report.result).toEqual({ checked: 1, invalid: [] })
        // and its schedule runs (as the app's singleton): it has recorded where it starts from
        const sql = yield* SqlClient.SqlClient
        const schedules = yield* sql<{ name: string }>`SELECT name FROM ontology_schedules`.pipe(
          Effect.filterOrFail((rows) => rows.length > 0),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("60 seconds")
        )
        expect(schedules.map((r) => r.name)).toEqual(["revalidate-nightly"])
      }).pipe(Effect.provide(FetchHttpClient.layer)))
  })
})
