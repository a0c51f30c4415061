/**
 * The knowledge app as composed for production (`KnowledgeServer.layer`,
 * config from the environment): it keeps its documents in Postgres, so even
 * in memory mode it refuses to start without DATABASE_URL, naming it; given a
 * database it serves health and its domain routes.
 */
import { KnowledgeApi } from "@duraflow/knowledge"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpServer from "@effect/platform/HttpServer"
import * as OpenApi from "@effect/platform/OpenApi"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import * as KnowledgeServer from "../src/KnowledgeServer.js"
import { registry } from "../src/registry.js"

/** Never run: a client of the exported API is typed by IngestDocument's payload schema. */
export const typeChecks = Effect.gen(function*() {
  const client = yield* HttpApiClient.make(KnowledgeApi.KnowledgeApi, { baseUrl: "http://127.0.0.1:1" })
  yield* client.workflows.IngestDocument({ payload: { documentId: "d", title: "t", text: "x" } })
  // @ts-expect-error a misspelled payload field
  yield* client.workflows.IngestDocument({ payload: { documentId: "d", titel: "t", text: "x" } })
})

const withConfig = (entries: ReadonlyArray<[string, string]>) =>
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries))))

const App = Layer.unwrapEffect(Effect.map(TestDatabase.TestDatabase, (db) =>
  KnowledgeServer.layer.pipe(
    withConfig([["DATABASE_URL", db.url], ["PORT", "0"], ["WORKFLOW_MODE", "memory"], ["ONTOLOGY_URL", "http://127.0.0.1:9"]])
  ))).pipe(Layer.provideMerge(TestDatabase.layer("knowledge_server")), Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)))

const get = (path: string) =>
  Effect.gen(function*() {
    const { port } = (yield* HttpServer.HttpServer).address as HttpServer.TcpAddress
    return yield* Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`)
      const text = await response.text()
      return { status: response.status, body: text ? JSON.parse(text) : undefined }
    })
  })

describe("knowledge-server", () => {
  it("declares for `duraflow upgrade-check` exactly the workflows its API serves", () => {
    const served = Object.keys(OpenApi.fromApi(KnowledgeApi.KnowledgeApi).paths)
      .filter((p) => /^\/runs\/[A-Z]\w*$/.test(p)).map((p) => p.slice(6)).sort()
    expect(registry.workflows.map((w) => w.workflow.name).sort()).toEqual(served)
    expect(registry.prefix).toBe("knowledge")
  })

  it.effect("memory mode without DATABASE_URL: a typed error naming DATABASE_URL, not a crash", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(KnowledgeServer.layer.pipe(withConfig([["PORT", "0"], ["WORKFLOW_MODE", "memory"]]))).pipe(
        Effect.scoped,
        Effect.flip
      )
      expect(error).toMatchObject({ _tag: "InvalidRuntimeConfig", key: "DATABASE_URL" })
    }))

  layer(App, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("with a database, memory mode serves health and the domain routes", () =>
      Effect.gen(function*() {
        expect(yield* get("/health")).toMatchObject({
          status: 200,
          body: { status: "ok", mode: "memory", prefix: "knowledge", database: { reachable: true } }
        })
        expect(yield* get("/documents/missing")).toMatchObject({ status: 404 })
        expect(yield* get("/entities")).toEqual({ status: 200, body: [] })
      }))
  })
})
