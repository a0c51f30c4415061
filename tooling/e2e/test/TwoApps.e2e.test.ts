/**
 * Both apps as separate processes on ONE fresh database (durable mode): the
 * ontology app publishes the sample ontology, the knowledge app ingests 20
 * documents concurrently and types their entities with it over HTTP; each app
 * keeps to its own tables and its own runs, and re-posting is idempotent.
 */
import { SampleDocuments } from "@duraflow/knowledge"
import { SampleOntology } from "@duraflow/ontology"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { awaitRuns, classOfKind, executionId, ONTOLOGY_ID, publishSample, rowCounts, startBoth, tableNames, withApps } from "../src/Apps.js"


const samples = SampleDocuments.documents
const documents = [
  ...samples,
  ...Array.from({ length: 12 }, (_, i) => {
    const sample = samples[i % samples.length]!
    return { documentId: `generated-${i + 1}`, title: `Copy ${i + 1}: ${sample.title}`, text: sample.text }
  })
].map((d) => ({ ...d, ontologyId: ONTOLOGY_ID }))

describe("two apps on one database", () => {
  layer(TestDatabase.layer("e2e_two_apps"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("publish, ingest 20 documents concurrently, typed entities, isolated tables and runs", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          expect(new Set(documents.map((d) => d.documentId)).size).toBe(20)

          const { knowledge, ontology } = yield* startBoth(apps, db.url)

          // publish the sample ontology and wait for it
          const published = yield* publishSample(ontology)
          const publishId = published.executionId
          expect(published.status, JSON.stringify(published.error)).toBe("succeeded")
          expect(published.result).toMatchObject({ ontologyId: ONTOLOGY_ID, version: 1, created: true })

          // ingest 20 documents at once
          const ids = yield* Effect.forEach(documents, (d) => knowledge.client.workflows.IngestDocument({ payload: d }).pipe(executionId), {
            concurrency: "unbounded"
          })
          expect(new Set(ids).size).toBe(20)
          const finished = yield* awaitRuns(knowledge, ids)
          const notSucceeded = finished.filter((r) => r.status !== "succeeded")
          expect(notSucceeded, JSON.stringify(notSucceeded, null, 2)).toEqual([])

          // every run, read back by id, succeeded with a created result for its document
          for (const [i, d] of documents.entries()) {
            const run = yield* knowledge.client.workflows["IngestDocument.status"]({ path: { executionId: ids[i]! } })
            expect(run.status).toBe("succeeded")
            expect(run.result).toMatchObject({ documentId: d.documentId, created: true })
          }

          // every document is stored, with entities typed by the sample ontology's nerKind classes
          for (const d of documents) {
            const doc = yield* knowledge.client.knowledge.document({ path: { documentId: d.documentId } })
            expect(doc).toMatchObject({ documentId: d.documentId, title: d.title, ontologyId: ONTOLOGY_ID, status: "indexed" })
            expect(doc.chunkCount).toBeGreaterThan(0)
            expect(doc.entities.length).toBeGreaterThan(0)
            for (const e of doc.entities) {
              expect(e.classIri, `${d.documentId}: ${e.name} (${e.kind})`).toBe(classOfKind[e.kind])
            }
          }

          // across documents: every class IRI is in the sample namespace; all three classes appear
          const all = yield* knowledge.client.knowledge.entities({ urlParams: { limit: 500 } })
          expect(all.length).toBeGreaterThan(0)
          for (const e of all) expect(e.classIri?.startsWith(SampleOntology.namespace), `${e.name}: ${e.classIri}`).toBe(true)
          for (const [kind, type] of [["person", "Person"], ["organization", "Organization"], ["place", "Place"]] as const) {
            const typed = yield* knowledge.client.knowledge.entities({ urlParams: { type, limit: 500 } })
            expect(typed.length, type).toBeGreaterThan(0)
            for (const e of typed) expect(e).toMatchObject({ kind, classIri: classOfKind[kind] })
          }

          // each app only created tables under its own prefix
          const tables = yield* tableNames
          expect(tables.length).toBeGreaterThan(0)
          for (const t of tables) expect(t).toMatch(/^(knowledge|ontology)_/)

          // each app lists exactly its own runs
          const knowledgeRuns = yield* knowledge.client.runs.list({ urlParams: { limit: 500 } })
          expect(knowledgeRuns.length).toBe(20)
          expect(new Set(knowledgeRuns.map((r) => r.executionId))).toEqual(new Set(ids))
          for (const r of knowledgeRuns) expect(r.workflow).toBe("IngestDocument")
          const ontologyRuns = yield* ontology.client.runs.list({ urlParams: { limit: 500 } })
          expect(ontologyRuns.map((r) => [r.workflow, r.executionId])).toEqual([["PublishOntology", publishId]])

          // re-posting a document: the same execution id, nothing new written
          // every knowledge table but the engine's own (its housekeeping may add or drop rows at any time)
          const knowledgeTable = (t: string) => t.startsWith("knowledge_") && !t.startsWith("knowledge_cluster_")
          const before = yield* rowCounts(knowledgeTable)
          expect(before["knowledge_documents"]).toBe(20)
          const again = yield* knowledge.client.workflows.IngestDocument({ payload: documents[3]! }).pipe(executionId)
          expect(again).toBe(ids[3])
          yield* Effect.sleep("2 seconds") // time for a (wrongly) started second run to write
          expect(yield* rowCounts(knowledgeTable)).toEqual(before)
          const rerun = yield* knowledge.client.workflows["IngestDocument.status"]({ path: { executionId: ids[3]! } })
          expect(rerun.status).toBe("succeeded")
          expect(rerun.result).toMatchObject({ created: true })
          expect((yield* knowledge.client.runs.list({ urlParams: { limit: 500 } })).length).toBe(20)
        })
      ), 180_000)
  })
})
