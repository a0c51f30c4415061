/**
 * Bad input against both apps: every rejection has the documented status and
 * body, and nothing lands in the domain tables. Requests rejected at the HTTP
 * boundary persist nothing at all (not even a run); publish runs that fail on
 * their content appear in the runs ledger as failed but write no ontology data.
 */
import { SampleDocuments } from "@duraflow/knowledge"
import { SampleOntology } from "@duraflow/ontology"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import {
  type Client,
  expectJson,
  type HttpResult,
  isDomainTable,
  MalformedPayload,
  rowCounts,
  startBoth,
  TaggedError,
  withApps
} from "./helpers.js"

const ONTOLOGY_ID = "news"
const EX = "http://example.org/bad#"

// n3 stops at line 3: a triple with no object before the terminating dot
const malformedTurtle = `@prefix ex: <${EX}> .
ex:A a <http://www.w3.org/2002/07/owl#Class> .
ex:B a ex:C ex:D .
`

// parses, but ex:Child's superclass and ex:owns' range are declared nowhere
const invalidOntology = `@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl:  <http://www.w3.org/2002/07/owl#> .
@prefix ex:   <${EX}> .

ex:Child a owl:Class ;
  rdfs:subClassOf ex:MissingParent .

ex:owns a owl:ObjectProperty ;
  rdfs:domain ex:Child ;
  rdfs:range ex:Nowhere .
`

const sample = SampleDocuments.documents[0]!

const paths = (body: MalformedPayload) => body.issues.map((i) => i.path.join("."))

describe("bad input", () => {
  layer(TestDatabase.layer("e2e_bad_input"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("rejections have the documented status and body and write nothing", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const { knowledge, ontology } = yield* startBoth(apps, db.url)

          // a baseline: the sample ontology as version 1 of "news"
          const publishId = yield* ontology.client.start("PublishOntology", {
            ontologyId: ONTOLOGY_ID,
            turtle: SampleOntology.turtle
          })
          expect((yield* ontology.client.awaitRun("PublishOntology", publishId)).status).toBe("succeeded")
          const baseline = yield* ontology.client.ontology(ONTOLOGY_ID)
          expect(baseline.version).toBe(1)

          /** Runs `effect` and checks that no public table (runs and engine tables included) changed. */
          const writesNothing = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
            Effect.gen(function*() {
              const before = yield* rowCounts()
              const result = yield* effect
              expect(yield* rowCounts(), `${what}: row counts changed`).toEqual(before)
              return result
            })

          const expectMalformed = (
            app: Client,
            workflow: string,
            payload: unknown,
            check: (body: MalformedPayload) => void
          ) =>
            writesNothing(
              `${workflow} ${JSON.stringify(payload)}`,
              Effect.gen(function*() {
                const response = yield* app.post(`/runs/${workflow}`, payload)
                const body = yield* expectJson(MalformedPayload, response, 400, `${workflow} malformed payload`)
                expect(body.workflow).toBe(workflow)
                expect(body.issues.length).toBeGreaterThan(0)
                check(body)
              })
            )

          // ---- failed publish runs: in the ledger as failed, no ontology data written
          const domainBefore = yield* rowCounts(isDomainTable)
          // the comparison is not vacuous: the domain tables exist and hold the baseline version
          expect(Object.keys(domainBefore)).toEqual(expect.arrayContaining([
            "ontology_ontologies",
            "ontology_versions",
            "ontology_classes",
            "ontology_subclass_links",
            "ontology_properties",
            "knowledge_documents",
            "knowledge_entities"
          ]))
          expect(domainBefore).toMatchObject({ ontology_versions: 1, ontology_classes: baseline.classes.length })
          const runsBefore = (yield* ontology.client.runs("limit=500")).length

          const turtleRunId = yield* ontology.client.start("PublishOntology", {
            ontologyId: "broken",
            turtle: malformedTurtle
          })
          const turtleRun = yield* ontology.client.awaitRun("PublishOntology", turtleRunId)
          expect(turtleRun.status).toBe("failed")
          expect(turtleRun.error).toMatchObject({ _tag: "InvalidTurtle", line: 3 })
          expect((turtleRun.error as { message: unknown }).message).toEqual(expect.any(String))

          const ontologyRunId = yield* ontology.client.start("PublishOntology", {
            ontologyId: ONTOLOGY_ID,
            turtle: invalidOntology
          })
          const ontologyRun = yield* ontology.client.awaitRun("PublishOntology", ontologyRunId)
          expect(ontologyRun.status).toBe("failed")
          expect(ontologyRun.error).toEqual({
            _tag: "InvalidOntology",
            problems: [
              { _tag: "UnknownSuperclass", iri: `${EX}Child`, superClass: `${EX}MissingParent` },
              { _tag: "UnknownRange", iri: `${EX}owns`, range: `${EX}Nowhere` }
            ]
          })

          expect(yield* rowCounts(isDomainTable), "failed publish runs wrote domain rows").toEqual(domainBefore)
          const runsAfter = yield* ontology.client.runs("limit=500")
          expect(runsAfter.length).toBe(runsBefore + 2)
          expect(
            runsAfter.filter((r) => r.status === "failed").map((r) => r.executionId).sort()
          ).toEqual([turtleRunId, ontologyRunId].sort())
          // the ontology is unchanged, the broken one never existed
          expect(yield* ontology.client.ontology(ONTOLOGY_ID)).toEqual(baseline)
          const broken = yield* ontology.client.get("/ontologies/broken")
          expect(broken.status).toBe(404)
          expect(broken.json).toMatchObject({ _tag: "OntologyNotFound" })

          // ---- invalid JSON
          for (const [app, workflow] of [[ontology.client, "PublishOntology"], [knowledge.client, "IngestDocument"]] as const) {
            const response = yield* writesNothing(
              `${workflow} invalid JSON`,
              app.postRaw(`/runs/${workflow}`, "{\"documentId\": \"x\", ")
            )
            expect(response.status, `${workflow} invalid JSON: ${response.text}`).toBe(400)
          }

          // ---- missing fields: the issues name them
          yield* expectMalformed(ontology.client, "PublishOntology", { ontologyId: "x" }, (body) => {
            expect(body.issues).toContainEqual({ path: ["turtle"], message: "is missing" })
          })
          yield* expectMalformed(ontology.client, "PublishOntology", {}, (body) => {
            expect(paths(body).sort()).toEqual(["ontologyId", "turtle"])
          })
          yield* expectMalformed(knowledge.client, "IngestDocument", { documentId: "doc-1", title: "A title" }, (body) => {
            expect(body.issues).toEqual([{ path: ["text"], message: "is missing" }])
          })

          // ---- wrong types and values
          yield* expectMalformed(ontology.client, "PublishOntology", { ontologyId: 42, turtle: true }, (body) => {
            expect(paths(body).sort()).toEqual(["ontologyId", "turtle"])
          })
          yield* expectMalformed(
            knowledge.client,
            "IngestDocument",
            { documentId: "doc-2", title: 7, text: ["not", "a", "string"], ontologyId: ONTOLOGY_ID },
            (body) => {
              expect(paths(body).sort()).toEqual(["text", "title"])
            }
          )
          yield* expectMalformed(
            knowledge.client,
            "IngestDocument",
            { documentId: "../etc/passwd", title: "t", text: "Some text." },
            (body) => expect(paths(body)).toEqual(["documentId"])
          )
          yield* expectMalformed(knowledge.client, "IngestDocument", [sample], (body) => {
            expect(body.issues.length).toBeGreaterThan(0)
          })

          // ---- extra unknown fields
          yield* expectMalformed(
            ontology.client,
            "PublishOntology",
            { ontologyId: "x", turtle: SampleOntology.turtle, version: 2 },
            (body) => {
              expect(paths(body)).toEqual(["version"])
              expect(body.issues[0]!.message).toMatch(/unexpected/)
            }
          )
          yield* expectMalformed(knowledge.client, "IngestDocument", { ...sample, priority: "high" }, (body) => {
            expect(paths(body)).toEqual(["priority"])
            expect(body.issues[0]!.message).toMatch(/unexpected/)
          })

          // ---- unknown workflow
          for (const app of [ontology.client, knowledge.client]) {
            const started = yield* writesNothing("unknown workflow", app.post("/runs/DeleteEverything", sample))
            const body = yield* expectJson(TaggedError, started, 404, "unknown workflow")
            expect(body._tag).toBe("UnknownWorkflow")
            const read = yield* app.get("/runs/DeleteEverything/abc")
            expect(read.status).toBe(404)
            expect(read.json).toMatchObject({ _tag: "UnknownWorkflow" })
          }
          // a workflow of the other app is unknown here
          const crossed = yield* writesNothing(
            "other app's workflow",
            knowledge.client.post("/runs/PublishOntology", { ontologyId: "x", turtle: SampleOntology.turtle })
          )
          expect(crossed.status).toBe(404)
          expect(crossed.json).toMatchObject({ _tag: "UnknownWorkflow" })

          // ---- unknown document, ontology and run
          const missing = yield* writesNothing("unknown document", knowledge.client.get("/documents/no-such-document"))
          expect((yield* expectJson(TaggedError, missing, 404, "unknown document"))._tag).toBe("DocumentNotFound")
          const missingOntology = yield* ontology.client.get("/ontologies/no-such-ontology")
          expect((yield* expectJson(TaggedError, missingOntology, 404, "unknown ontology"))._tag).toBe("OntologyNotFound")
          const missingRun = yield* knowledge.client.get("/runs/IngestDocument/no-such-run")
          expect((yield* expectJson(TaggedError, missingRun, 404, "unknown run"))._tag).toBe("RunNotFound")

          // ---- limit out of range
          const limitErrors: Array<[string, HttpResult]> = []
          for (const app of [ontology.client, knowledge.client]) {
            limitErrors.push([`${app.baseUrl}/runs?limit=0`, yield* writesNothing("limit=0", app.get("/runs?limit=0"))])
            limitErrors.push([`${app.baseUrl}/runs?limit=501`, yield* app.get("/runs?limit=501")])
          }
          limitErrors.push([`/entities?limit=0`, yield* knowledge.client.get("/entities?limit=0")])
          for (const [url, response] of limitErrors) {
            expect(response.status, `${url}: ${response.text}`).toBe(400)
            const issues = Schema.decodeUnknownSync(Schema.Struct({ issues: Schema.Array(Schema.Struct({ path: Schema.Array(Schema.Unknown) })) }))(
              response.json
            ).issues
            expect(issues.some((i) => i.path.join(".") === "limit"), url).toBe(true)
          }

          // nothing above reached the domain tables; the ledgers hold only the three publish runs
          expect(yield* rowCounts(isDomainTable)).toEqual(domainBefore)
          expect((yield* ontology.client.runs("limit=500")).length).toBe(3)
          expect(yield* knowledge.client.runs("limit=500")).toEqual([])
        })
      ), 180_000)
  })
})
