/**
 * The ontology app as composed for production (`OntologyServer.layer`, config
 * from the environment) comes up on a fresh database and serves the runtime's
 * routes, its OpenAPI document and its domain routes.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { HttpServer } from "@effect/platform"
import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import * as OntologyServer from "../src/OntologyServer.js"

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
  })
})
