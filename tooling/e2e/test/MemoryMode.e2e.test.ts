/**
 * Both apps with the in-memory workflow engine on a fresh database: the same
 * flows work, and no engine (cluster) tables are created.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { awaitRuns, classOfKind, executionId, publishSample, sampleDocuments, startBoth, tableNames, withApps } from "../src/Apps.js"

const documents = sampleDocuments(3)

describe("memory mode", () => {
  layer(TestDatabase.layer("e2e_memory"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("publish and ingest work with WORKFLOW_MODE=memory, without cluster tables", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const { knowledge, ontology } = yield* startBoth(apps, db.url, { mode: "memory" })

          expect(yield* ontology.client.health.health()).toMatchObject({ status: "ok", mode: "memory", prefix: "ontology" })
          expect(yield* knowledge.client.health.health()).toMatchObject({ status: "ok", mode: "memory", prefix: "knowledge" })

          const published = yield* publishSample(ontology)
          expect(published.status, JSON.stringify(published.error)).toBe("succeeded")

          const ids = yield* Effect.forEach(documents, (d) => knowledge.client.workflows.IngestDocument({ payload: d }).pipe(executionId), {
            concurrency: "unbounded"
          })
          const finished = yield* awaitRuns(knowledge, ids)
          const notSucceeded = finished.filter((r) => r.status !== "succeeded")
          expect(notSucceeded, JSON.stringify(notSucceeded, null, 2)).toEqual([])
          for (const d of documents) {
            const doc = yield* knowledge.client.knowledge.document({ path: { documentId: d.documentId } })
            expect(doc.entities.length).toBeGreaterThan(0)
            for (const e of doc.entities) expect(e.classIri).toBe(classOfKind[e.kind])
          }

          const tables = yield* tableNames
          expect(tables).toContain("knowledge_documents")
          expect(tables).toContain("ontology_versions")
          expect(tables.filter((t) => t.includes("_cluster_"))).toEqual([])
          for (const t of tables) expect(t).toMatch(/^(knowledge|ontology)_/)
        })
      ), 180_000)
  })
})
