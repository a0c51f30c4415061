/**
 * An operator's actions through a real app (issue 13): a failed ingest is
 * retried once its cause is repaired (a new linked run that succeeds), and a
 * run waiting for the unreachable ontology app is cancelled and stays
 * cancelled when the ontology app is back. Operator routes need the token.
 */
import { SampleOntology } from "@duraflow/ontology"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Either } from "effect"
import {
  allReady,
  awaitRun,
  executionId,
  freePort,
  operatorClient,
  poll,
  publishSample,
  sampleDocuments,
  startBoth,
  startReplicas,
  withApps
} from "../src/Apps.js"

const TOKEN = "e2e-operator-token"

describe("run actions through an app", () => {
  layer(TestDatabase.layer("e2e_actions"), { timeout: 240_000, excludeTestServices: true })((it) => {
    it.scoped("retry a failed ingest once its ontology exists; cancel a run waiting for the ontology app", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const sql = yield* SqlClient.SqlClient
          const { knowledge, ontology } = yield* startBoth(apps, db.url, { operatorToken: TOKEN })
          const operator = yield* operatorClient(knowledge, "knowledge", TOKEN)
          const documents = sampleDocuments(3)
          const [first, second, third] = [documents[0]!, documents[1]!, documents[2]!]

          // a document typed with an ontology that does not exist yet: the run fails
          const failedId = yield* knowledge.client.workflows.IngestDocument({ payload: { ...first, ontologyId: "later" } })
            .pipe(executionId)
          const failed = yield* awaitRun(knowledge, "IngestDocument", failedId)
          expect(failed.status, JSON.stringify(failed)).toBe("failed")
          expect(failed.error).toMatchObject({ _tag: "UnknownOntology" })

          // the operator routes need the token
          const path = { workflow: "IngestDocument", executionId: failedId }
          const refused = yield* Effect.either(knowledge.client.runs.retry({ path }))
          expect(Either.isLeft(refused) && refused.left._tag).toBe("Unauthorized")

          // repaired: the ontology is published; the retry is a new run with the same payload
          const published = yield* ontology.client.workflows.PublishOntology({
            payload: { ontologyId: "later", turtle: SampleOntology.turtle }
          }).pipe(executionId, Effect.flatMap((id) => awaitRun(ontology, "PublishOntology", id)))
          expect(published.status).toBe("succeeded")
          const retried = yield* operator.runs.retry({ path })
          expect(retried.executionId).not.toBe(failedId)
          expect(retried.retryOf).toBe(failedId)
          const done = yield* awaitRun(knowledge, "IngestDocument", retried.executionId)
          expect(done.status, JSON.stringify(done)).toBe("succeeded")
          expect(done.retryOf).toBe(failedId)
          expect(yield* knowledge.client.runs.get({ path })).toMatchObject({ status: "failed", retriedBy: retried.executionId })
          const doc = yield* knowledge.client.knowledge.document({ path: { documentId: first.documentId } })
          expect(doc.ontologyId).toBe("later")

          // the ontology app goes away: a new ingest waits for it (running), and is cancelled
          yield* publishSample(ontology)
          yield* ontology.process.kill("SIGKILL")
          const waitingId = yield* knowledge.client.workflows.IngestDocument({ payload: second }).pipe(executionId)
          yield* knowledge.process.waitFor((l) => l.includes("retrying"), "60 seconds")
          expect((yield* knowledge.client.runs.get({ path: { workflow: "IngestDocument", executionId: waitingId } })).status)
            .toBe("running")
          const cancelled = yield* operator.runs.cancel({ path: { workflow: "IngestDocument", executionId: waitingId } })
          expect(cancelled.status).toBe("cancelled")
          const steps = yield* knowledge.client.runs.steps({ path: { workflow: "IngestDocument", executionId: waitingId } })
          expect(steps.source).toBe("engine-storage")

          // the ontology app is back: a later ingest succeeds, the cancelled one stays cancelled and stored nothing
          yield* apps.start("ontology", { databaseUrl: db.url, port: ontology.port, operatorToken: TOKEN })
          const laterId = yield* knowledge.client.workflows.IngestDocument({ payload: third }).pipe(executionId)
          expect((yield* awaitRun(knowledge, "IngestDocument", laterId)).status).toBe("succeeded")
          const still = yield* poll(
            "the cancelled run's engine state to settle",
            knowledge.client.runs.get({ path: { workflow: "IngestDocument", executionId: waitingId } }),
            (run) => run.status === "cancelled"
          )
          expect(still.status).toBe("cancelled")
          const stored = yield* sql<{ id: string }>`SELECT id FROM knowledge_documents WHERE id = ${second.documentId}`
          expect(stored).toEqual([])
          // cancelling it again is idempotent: the same cancelled run (a 503 cancel can be resent)
          const again = yield* operator.runs.cancel({ path: { workflow: "IngestDocument", executionId: waitingId } })
          expect(again.status).toBe("cancelled")
        })
      ), 240_000)

    it.scoped("cancel through one replica: runs active on the other are interrupted there and store nothing", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const sql = yield* SqlClient.SqlClient
          const ontology = yield* Effect.flatMap(freePort, (port) =>
            apps.start("ontology", { databaseUrl: db.url, port, mode: "durable" }))
          const replicas = yield* startReplicas(apps, "knowledge", 2, {
            databaseUrl: db.url,
            mode: "durable",
            ontologyUrl: ontology.baseUrl,
            operatorToken: TOKEN
          })
          yield* allReady(replicas)
          yield* publishSample(ontology)
          yield* ontology.process.kill("SIGKILL")

          // 16 runs spread over both replicas' shards (all on one: 1 in 2^15), all waiting for the ontology app
          const documents = sampleDocuments(8).flatMap((d) =>
            [1, 2].map((copy) => ({ ...d, documentId: `replicas-${copy}-${d.documentId}` }))
          )
          const ids = yield* Effect.forEach(documents, (d) =>
            replicas[0]!.client.workflows.IngestDocument({ payload: d }).pipe(executionId))
          yield* Effect.forEach(replicas, (r) => r.process.waitFor((l) => l.includes("retrying"), "60 seconds"))
          const operator = yield* operatorClient(replicas[0]!, "knowledge", TOKEN)
          for (const id of ids) {
            const run = yield* operator.runs.cancel({ path: { workflow: "IngestDocument", executionId: id } })
            expect(run.status).toBe("cancelled")
          }

          // the ontology app is back: a new ingest succeeds; the cancelled runs stored nothing
          yield* apps.start("ontology", { databaseUrl: db.url, port: ontology.port, mode: "durable" })
          const later = yield* replicas[1]!.client.workflows.IngestDocument({ payload: sampleDocuments(1)[0]! }).pipe(executionId)
          expect((yield* awaitRun(replicas[1]!, "IngestDocument", later)).status).toBe("succeeded")
          for (const id of ids) {
            expect((yield* replicas[1]!.client.runs.get({ path: { workflow: "IngestDocument", executionId: id } })).status)
              .toBe("cancelled")
          }
          const stored = yield* sql<{ id: string }>`
            SELECT id FROM knowledge_documents WHERE id IN ${sql.in(documents.map((d) => d.documentId))}`
          expect(stored).toEqual([])
        })
      ), 240_000)
  })
})
