/**
 * Bad input against both apps: every rejection has the documented status and
 * body, and nothing lands in the domain tables. Requests rejected at the HTTP
 * boundary persist nothing at all (not even a run); publish runs that fail on
 * their content appear in the runs ledger as failed but write no ontology data.
 */
import { SampleDocuments } from "@duraflow/knowledge"
import { SampleOntology } from "@duraflow/ontology"
import { RunsApi } from "@duraflow/runtime-core"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { 
  awaitRun,
  executionId,
  expectJson,
  isDomainTable,
  ONTOLOGY_ID,
  publishSample,
  raw,
  type RawResponse,
  send,
  rowCounts,
  type RunningApp,
  startBoth,
  withApps
 } from "../src/Apps.js"

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

const TaggedError = Schema.Struct({ _tag: Schema.String, message: Schema.String })
const paths = (body: RunsApi.MalformedPayload) => body.issues.map((i) => i.path.join("."))

describe("bad input", () => {
  layer(TestDatabase.layer("e2e_bad_input"), { timeout: 180_000, excludeTestServices: true })((it) => {
    it.scoped("rejections have the documented status and body and write nothing", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const { knowledge, ontology } = yield* startBoth(apps, db.url)

          // a baseline: the sample ontology as version 1 of "news"
          expect((yield* publishSample(ontology)).status).toBe("succeeded")
          const baseline = yield* ontology.client.ontologies.get({ path: { ontologyId: ONTOLOGY_ID } })
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
            app: RunningApp,
            workflow: string,
            payload: unknown,
            check: (body: RunsApi.MalformedPayload) => void
          ) =>
            writesNothing(
              `${workflow} ${JSON.stringify(payload)}`,
              Effect.gen(function*() {
                const response = yield* raw(app, "POST", `/runs/${workflow}`, payload)
                const body = yield* expectJson(RunsApi.MalformedPayload, response, 400, `${workflow} malformed payload`)
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
          const runsBefore = (yield* ontology.client.runs.list({ urlParams: { limit: 500 } })).length

          const turtleRunId = yield* ontology.client.workflows.PublishOntology({ payload: {
            ontologyId: "broken",
            turtle: malformedTurtle
          } }).pipe(executionId)
          const turtleRun = yield* awaitRun(ontology, "PublishOntology", turtleRunId)
          expect(turtleRun.status).toBe("failed")
          expect(turtleRun.error).toMatchObject({ _tag: "InvalidTurtle", line: 3 })
          expect((turtleRun.error as { message: unknown }).message).toEqual(expect.any(String))

          const ontologyRunId = yield* ontology.client.workflows.PublishOntology({ payload: {
            ontologyId: ONTOLOGY_ID,
            turtle: invalidOntology
          } }).pipe(executionId)
          const ontologyRun = yield* awaitRun(ontology, "PublishOntology", ontologyRunId)
          expect(ontologyRun.status).toBe("failed")
          expect(ontologyRun.error).toEqual({
            _tag: "InvalidOntology",
            problems: [
              { _tag: "UnknownSuperclass", iri: `${EX}Child`, superClass: `${EX}MissingParent` },
              { _tag: "UnknownRange", iri: `${EX}owns`, range: `${EX}Nowhere` }
            ]
          })

          expect(yield* rowCounts(isDomainTable), "failed publish runs wrote domain rows").toEqual(domainBefore)
          const runsAfter = yield* ontology.client.runs.list({ urlParams: { limit: 500 } })
          expect(runsAfter.length).toBe(runsBefore + 2)
          expect(
            runsAfter.filter((r) => r.status === "failed").map((r) => r.executionId).sort()
          ).toEqual([turtleRunId, ontologyRunId].sort())
          // the ontology is unchanged, the broken one never existed
          expect(yield* ontology.client.ontologies.get({ path: { ontologyId: ONTOLOGY_ID } })).toEqual(baseline)
          // a typed error is the API's answer for its status (OntologyNotFound: 404)
          const broken = yield* Effect.flip(ontology.client.ontologies.get({ path: { ontologyId: "broken" } }))
          expect(broken).toMatchObject({ _tag: "OntologyNotFound" })

          // ---- invalid JSON
          for (const [app, workflow] of [[ontology, "PublishOntology"], [knowledge, "IngestDocument"]] as const) {
            const response = yield* writesNothing(
              `${workflow} invalid JSON`,
              raw(app, "POST", `/runs/${workflow}`, "{\"documentId\": \"x\", ")
            )
            expect(response.status, `${workflow} invalid JSON: ${response.body}`).toBe(400)
          }

          // ---- missing fields: the issues name them
          yield* expectMalformed(ontology, "PublishOntology", { ontologyId: "x" }, (body) => {
            expect(body.issues).toContainEqual({ path: ["turtle"], message: "is missing" })
          })
          yield* expectMalformed(ontology, "PublishOntology", {}, (body) => {
            expect(paths(body).sort()).toEqual(["ontologyId", "turtle"])
          })
          yield* expectMalformed(knowledge, "IngestDocument", { documentId: "doc-1", title: "A title" }, (body) => {
            expect(body.issues).toEqual([{ path: ["text"], message: "is missing" }])
          })

          // ---- wrong types and values
          yield* expectMalformed(ontology, "PublishOntology", { ontologyId: 42, turtle: true }, (body) => {
            expect(paths(body).sort()).toEqual(["ontologyId", "turtle"])
          })
          yield* expectMalformed(
            knowledge,
            "IngestDocument",
            { documentId: "doc-2", title: 7, text: ["not", "a", "string"], ontologyId: ONTOLOGY_ID },
            (body) => {
              expect(paths(body).sort()).toEqual(["text", "title"])
            }
          )
          yield* expectMalformed(
            knowledge,
            "IngestDocument",
            { documentId: "../etc/passwd", title: "t", text: "Some text." },
            (body) => expect(paths(body)).toEqual(["documentId"])
          )
          yield* expectMalformed(knowledge, "IngestDocument", [sample], (body) => {
            expect(body.issues.length).toBeGreaterThan(0)
          })

          // ---- extra unknown fields
          yield* expectMalformed(
            ontology,
            "PublishOntology",
            { ontologyId: "x", turtle: SampleOntology.turtle, version: 2 },
            (body) => {
              expect(paths(body)).toEqual(["version"])
              expect(body.issues[0]!.message).toMatch(/unexpected/)
            }
          )
          yield* expectMalformed(knowledge, "IngestDocument", { ...sample, priority: "high" }, (body) => {
            expect(paths(body)).toEqual(["priority"])
            expect(body.issues[0]!.message).toMatch(/unexpected/)
          })

          // ---- unknown workflow
          for (const app of [ontology, knowledge]) {
            const started = yield* writesNothing("unknown workflow", raw(app, "POST", "/runs/DeleteEverything", sample))
            const body = yield* expectJson(TaggedError, started, 404, "unknown workflow")
            expect(body._tag).toBe("UnknownWorkflow")
            const read = yield* raw(app, "GET", "/runs/DeleteEverything/abc")
            expect(read.status).toBe(404)
            expect(JSON.parse(read.body)).toMatchObject({ _tag: "UnknownWorkflow" })
          }
          // a workflow of the other app is unknown here
          const crossed = yield* writesNothing(
            "other app's workflow",
            raw(knowledge, "POST", "/runs/PublishOntology", { ontologyId: "x", turtle: SampleOntology.turtle })
          )
          expect(crossed.status).toBe(404)
          expect(JSON.parse(crossed.body)).toMatchObject({ _tag: "UnknownWorkflow" })

          // ---- unknown document, ontology and run
          const missing = yield* writesNothing(
            "unknown document",
            Effect.flip(knowledge.client.knowledge.document({ path: { documentId: "no-such-document" } }))
          )
          expect(missing._tag).toBe("DocumentNotFound")
          const missingOntology = yield* Effect.flip(ontology.client.ontologies.get({ path: { ontologyId: "no-such-ontology" } }))
          expect(missingOntology._tag).toBe("OntologyNotFound")
          const missingRun = yield* Effect.flip(knowledge.client.workflows["IngestDocument.status"]({ path: { executionId: "no-such-run" } }))
          expect(missingRun._tag).toBe("RunNotFound")

          // ---- limit out of range
          // (the typed clients refuse to send these: raw requests)
          const limitErrors: Array<[string, RawResponse]> = []
          for (const app of [ontology, knowledge]) {
            limitErrors.push([`${app.baseUrl}/runs?limit=0`, yield* writesNothing("limit=0", raw(app, "GET", "/runs?limit=0"))])
            limitErrors.push([`${app.baseUrl}/runs?limit=501`, yield* raw(app, "GET", "/runs?limit=501")])
          }
          limitErrors.push([`/entities?limit=0`, yield* raw(knowledge, "GET", "/entities?limit=0")])
          for (const [url, response] of limitErrors) {
            expect(response.status, `${url}: ${response.body}`).toBe(400)
            const Issues = Schema.Struct({ issues: Schema.Array(Schema.Struct({ path: Schema.Array(Schema.Unknown) })) })
            const issues = Schema.decodeUnknownSync(Schema.parseJson(Issues))(response.body).issues
            expect(issues.some((i) => i.path.join(".") === "limit"), url).toBe(true)
          }

          // nothing above reached the domain tables; the ledgers hold only the three publish runs
          expect(yield* rowCounts(isDomainTable)).toEqual(domainBefore)
          expect((yield* ontology.client.runs.list({ urlParams: { limit: 500 } })).length).toBe(3)
          expect(yield* knowledge.client.runs.list({ urlParams: { limit: 500 } })).toEqual([])
        })
      ), 180_000)

    // The server answers these before reading the body. Unread bytes on a socket the server closes make
    // the kernel reset the connection, and the client then loses the answer (EPIPE/ECONNRESET instead).
    it.scoped("an answer given before the body was read reaches the client, whatever the body's size", () =>
      withApps((apps) =>
        Effect.gen(function*() {
          const db = yield* TestDatabase.TestDatabase
          const { ontology } = yield* startBoth(apps, db.url)
          const body = Buffer.alloc(2_000_000, "a") // under the 4 MiB limit
          const json: ReadonlyArray<readonly [string, string]> = [["content-type", "application/json"]]
          const cases = [
            { what: "an unknown path", target: "/no-such-path", headers: json, status: 404, tag: "NotFound" },
            { what: "a path with too many segments", target: "/runs/PublishOntology/x/y", headers: json, status: 404, tag: "NotFound" },
            { what: "a body that is not JSON", target: "/runs/PublishOntology", headers: [["content-type", "text/plain"]] as const, status: 415, tag: "UnsupportedMediaType" },
            { what: "a NUL in the URL", target: "/runs/PublishOntology%00", headers: json, status: 400, tag: "MalformedRequest" },
            // U+0080..U+00FF stand for raw bytes: Node's HTTP parser refuses the request line
            { what: "raw bytes in the request line", target: "/runs/\u00f1\u00bd", headers: json, status: 400, tag: "MalformedRequest" }
          ]
          for (const c of cases) {
            const outcomes = new Map<string, number>()
            for (let i = 0; i < 20; i++) {
              const outcome = yield* Effect.promise(() =>
                send(ontology.port, { method: "POST", target: c.target, headers: c.headers, body }).then(
                  (r) => `${r.status} ${Schema.decodeUnknownSync(Schema.parseJson(TaggedError))(r.body)._tag}`,
                  (e: Error) => `no answer: ${e.message}`
                )
              )
              outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
            }
            expect(Object.fromEntries(outcomes), c.what).toEqual({ [`${c.status} ${c.tag}`]: 20 })
          }
          // and the app still answers
          expect((yield* raw(ontology, "GET", "/health")).status).toBe(200)
        })
      ), 180_000)
  })
})
