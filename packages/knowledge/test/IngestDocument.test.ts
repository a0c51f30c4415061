/**
 * What "idempotent" means for IngestDocument: the run is keyed on the document's
 * content, so the same document posted twice is one run with one execution id,
 * while new text for a known document id is a new run whose result replaces the
 * stored document (nothing of the old text's index survives).
 */
import { AppRuntime } from "@duraflow/runtime-core"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, LogLevel, Option } from "effect"
import * as IngestDocument from "../src/IngestDocument.js"
import * as KnowledgeDomain from "../src/KnowledgeDomain.js"
import * as KnowledgeRepository from "../src/KnowledgeRepository.js"
import * as SampleDocuments from "../src/SampleDocuments.js"

const App = Layer.mergeAll(
  AppRuntime.layer({
    prefix: KnowledgeDomain.prefix,
    migrations: KnowledgeDomain.migrations,
    workflows: IngestDocument.layer
  }),
  KnowledgeRepository.layer
).pipe(
  Layer.provideMerge(TestDatabase.layer("ingest_document")),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["WORKFLOW_MODE", "memory"]])))),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
)

const [first, second] = [SampleDocuments.documents[0]!, SampleDocuments.documents[2]!]
const original = { documentId: "story", title: first.title, text: first.text }
const revised = { documentId: "story", title: first.title, text: second.text }

describe("IngestDocument idempotency", () => {
  layer(App, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("the execution id is keyed on content: same body, same id; new text, title or ontology, new id", () =>
      Effect.gen(function*() {
        const id = IngestDocument.IngestDocument.executionId
        expect(yield* id({ ...original })).toBe(yield* id({ ...original }))
        const others = [revised, { ...original, title: "Other" }, { ...original, ontologyId: "news" }]
        const ids = new Set([yield* id(original), ...(yield* Effect.forEach(others, id))])
        expect(ids.size).toBe(4)
      }))

    it.effect("same body twice is one run; new text is a new run and the document reflects only the new text", () =>
      Effect.gen(function*() {
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const once = yield* IngestDocument.IngestDocument.execute(original)
        const twice = yield* IngestDocument.IngestDocument.execute(original)
        expect(once).toMatchObject({ documentId: "story", created: true, replaced: false })
        expect(twice).toEqual(once)
        expect((yield* AppRuntime.listRuns({ workflow: "IngestDocument" })).length).toBe(1)
        const before = Option.getOrThrow(yield* repo.getDocument("story"))

        const after = yield* IngestDocument.IngestDocument.execute(revised)
        expect(after).toMatchObject({ documentId: "story", created: true, replaced: true })
        expect((yield* AppRuntime.listRuns({ workflow: "IngestDocument" })).length).toBe(2)
        const view = Option.getOrThrow(yield* repo.getDocument("story"))
        expect(view.chunkCount).toBe(after.chunks)
        expect(view.entities.length).toBe(after.entities)
        // the entities are the new text's alone: each one is named in it, and the old text's others are gone
        for (const e of view.entities) expect(second.text).toContain(e.name)
        const oldOnly = before.entities.filter((e) => !second.text.includes(e.name))
        expect(oldOnly.length).toBeGreaterThan(0)
        for (const e of oldOnly) expect(view.entities.map((v) => v.name)).not.toContain(e.name)
      }))
  })
})
