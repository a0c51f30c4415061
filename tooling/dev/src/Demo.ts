/**
 * The demo: publish the sample ontology, ingest the sample documents, and print
 * the typed entities found, all through the apps' typed HTTP clients (derived
 * from the HttpApi each domain package exports), as another team would.
 */
import { KnowledgeApi, SampleDocuments } from "@duraflow/knowledge"
import { OntologyApi, SampleOntology } from "@duraflow/ontology"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import { Array as Arr, Console, Effect, Schedule } from "effect"

const until = <A extends { readonly status: string }, E, R>(poll: Effect.Effect<A, E, R>) =>
  poll.pipe(
    Effect.repeat({
      schedule: Schedule.spaced("200 millis"),
      until: (run) => run.status === "succeeded" || run.status === "failed"
    }),
    Effect.flatMap(() => poll),
    Effect.timeout("120 seconds")
  )

export const run = (urls: { readonly ontology: string; readonly knowledge: string }) =>
  Effect.gen(function*() {
    const ontology = yield* HttpApiClient.make(OntologyApi.OntologyApi, { baseUrl: urls.ontology })
    const knowledge = yield* HttpApiClient.make(KnowledgeApi.KnowledgeApi, { baseUrl: urls.knowledge })
    const ontologyId = "news"

    yield* Console.log(`\n▶ Publishing the sample ontology "${ontologyId}" to ${urls.ontology}`)
    const publish = yield* ontology.workflows.PublishOntology({ payload: { ontologyId, turtle: SampleOntology.turtle } })
    const published = yield* until(ontology.runs.get({ path: { workflow: "PublishOntology", ...publish } }))
    if (published.status !== "succeeded") return yield* Effect.fail(new Error(`publish ${published.status}`))
    const view = yield* ontology.ontologies.get({ path: { ontologyId } })
    yield* Console.log(`  version ${view.version}: ${view.classes.length} classes, ${view.properties.length} properties`)

    yield* Console.log(`\n▶ Ingesting ${SampleDocuments.documents.length} documents into ${urls.knowledge}`)
    const started = yield* Effect.forEach(
      SampleDocuments.documents,
      (document) =>
        knowledge.workflows.IngestDocument({ payload: { ...document, ontologyId } }),
      { concurrency: "unbounded" }
    )
    const runs = yield* Effect.forEach(
      started,
      ({ executionId }) => until(knowledge.runs.get({ path: { workflow: "IngestDocument", executionId } })),
      { concurrency: "unbounded" }
    )
    for (const [document, run] of Arr.zip(SampleDocuments.documents, runs)) {
      yield* Console.log(`  ${run.status === "succeeded" ? "✓" : "✗"} ${document.documentId}: ${run.status}`)
    }

    yield* Console.log(`\n▶ Typed entities (GET ${urls.knowledge}/entities)`)
    for (const type of ["Person", "Organization", "Place"]) {
      const entities = yield* knowledge.knowledge.entities({ urlParams: { type, limit: 100 } })
      const names = entities.map((e) => `${e.name} (${e.classIri?.split("#").pop()})`)
      yield* Console.log(`  ${type.padEnd(12)} ${entities.length}: ${names.join(", ")}`)
    }
    const untyped = yield* knowledge.knowledge.entities({ urlParams: { limit: 500 } })
    yield* Console.log(
      `\n  ${untyped.length} distinct entities in all; try ${urls.knowledge}/documents/${
        SampleDocuments.documents[0].documentId
      } or ${urls.ontology}/openapi.json`
    )
  }).pipe(Effect.provide(FetchHttpClient.layer))
