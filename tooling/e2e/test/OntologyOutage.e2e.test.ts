/**
 * The ontology app goes away while documents are being ingested: the
 * knowledge app's runs keep retrying (they neither fail nor store anything),
 * and once the ontology app is back on the same port they finish with typed
 * entities.
 */
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { awaitRuns, classOfKind, executionId, ONTOLOGY_ID, publishSample, sampleDocuments, startBoth, withApps } from "../src/Apps.js"

const documents = sampleDocuments(3)

describe("ontology app outage", () => {
  layer(TestDatabase.layer("e2e_outage"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("ingest runs wait for the ontology app and finish once it is back", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const sql = yield* SqlClient.SqlClient
          const { knowledge, ontology } = yield* startBoth(apps, db.url)

          const published = yield* publishSample(ontology)
          const publishId = published.executionId
          expect(published.status, JSON.stringify(published.error)).toBe("succeeded")

          // the ontology app dies
          yield* ontology.process.kill("SIGKILL")
          const unreachable = yield* Effect.either(ontology.client.health.health())
          expect(unreachable._tag).toBe("Left")

          const ids = yield* Effect.forEach(documents, (d) => knowledge.client.workflows.IngestDocument({ payload: d }).pipe(executionId), {
            concurrency: "unbounded"
          })
          expect(new Set(ids).size).toBe(3)

          // while it is down: the runs are still running, nothing is stored
          yield* Effect.sleep("2 seconds")
          for (const id of ids) {
            const run = yield* knowledge.client.workflows["IngestDocument.status"]({ path: { executionId: id } })
            expect(run.status, JSON.stringify(run)).toBe("running")
          }
          const stored = yield* sql<{ id: string }>`
            SELECT id FROM knowledge_documents WHERE id IN ${sql.in(documents.map((d) => d.documentId))}`
          expect(stored).toEqual([])
          // the knowledge app reports the outage and retries
          yield* knowledge.process.waitFor((l) => l.includes("retrying"), "30 seconds")

          // the ontology app comes back on the same port (its data is in the database)
          const restarted = yield* apps.start("ontology", { databaseUrl: db.url, port: ontology.port })
          expect(restarted.baseUrl).toBe(ontology.baseUrl)

          const finished = yield* awaitRuns(knowledge, ids, "120 seconds")
          const notSucceeded = finished.filter((r) => r.status !== "succeeded")
          expect(notSucceeded, JSON.stringify(notSucceeded, null, 2)).toEqual([])
          for (const d of documents) {
            const doc = yield* knowledge.client.knowledge.document({ path: { documentId: d.documentId } })
            expect(doc.ontologyId).toBe(ONTOLOGY_ID)
            expect(doc.entities.length).toBeGreaterThan(0)
            for (const e of doc.entities) {
              expect(e.classIri, `${d.documentId}: ${e.name} (${e.kind})`).toBe(classOfKind[e.kind])
            }
          }
          const typed = yield* knowledge.client.knowledge.entities({ urlParams: { type: "Person", limit: 500 } })
          expect(typed.length).toBeGreaterThan(0)

          // the restarted ontology app still has its one publish run
          const ontologyRuns = yield* restarted.client.runs.list({ urlParams: { limit: 500 } })
          expect(ontologyRuns.map((r) => [r.executionId, r.status])).toEqual([[publishId, "succeeded"]])
        })
      ), 180_000)
  })
})
