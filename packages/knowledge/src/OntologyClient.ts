/**
 * How knowledge learns an ontology's classes: over HTTP, from the ontology app,
 * through a client derived from the ontology package's exported `OntologyApi`
 * (never by reading ontology tables). An ontology declares which NER kind maps
 * to which of its classes with the `nerKind` annotation; this client turns the
 * ontology into that mapping. "Not published" and "unreachable" are distinct
 * errors: the first fails the run, the second is retried with backoff.
 */
import { OntologyApi, type OntologyModel } from "@duraflow/ontology"
import { FetchHttpClient, HttpApiClient } from "@effect/platform"
import { Config, Context, Effect, Layer, Schema } from "effect"
import * as KnowledgeModel from "./KnowledgeModel.js"

/** The ontology named by the document does not exist (a permanent failure). */
export class UnknownOntology extends Schema.TaggedError<UnknownOntology>()("UnknownOntology", {
  ontologyId: Schema.String,
  message: Schema.String
}) {}

/** The ontology app could not be reached or answered with a server error (transient). */
export class OntologyUnavailable extends Schema.TaggedError<OntologyUnavailable>()("OntologyUnavailable", {
  url: Schema.String,
  message: Schema.String
}) {}

/** For each NER kind, the IRI of the ontology class it maps to (null: the ontology has none). */
export const EntityClasses = Schema.Struct({
  ontologyId: Schema.String,
  version: Schema.Number,
  classes: Schema.Record({ key: KnowledgeModel.EntityKind, value: Schema.NullOr(Schema.String) })
})
export interface EntityClasses extends Schema.Schema.Type<typeof EntityClasses> {}

export class OntologyClient extends Context.Tag("@duraflow/knowledge/OntologyClient")<OntologyClient, {
  readonly entityClasses: (ontologyId: string) => Effect.Effect<EntityClasses, UnknownOntology | OntologyUnavailable>
}>() {}

const classFor = (view: OntologyModel.OntologyView, kind: KnowledgeModel.EntityKind): string | null =>
  view.classes.find((c) => c.nerKind === kind)?.iri ?? null

export const make = (baseUrl: string) =>
  Effect.gen(function*() {
    const client = yield* HttpApiClient.make(OntologyApi.OntologyApi, { baseUrl })
    return OntologyClient.of({
      entityClasses: (ontologyId) =>
        client.ontologies.get({ path: { ontologyId } }).pipe(
          Effect.timeout("10 seconds"),
          Effect.mapError((error): UnknownOntology | OntologyUnavailable =>
            error._tag === "OntologyNotFound"
              ? new UnknownOntology({ ontologyId, message: error.message })
              : new OntologyUnavailable({
                url: baseUrl,
                message: `ontology app at ${baseUrl}: ${error.message}`
              })
          ),
          Effect.map((view): EntityClasses => ({
            ontologyId,
            version: view.version,
            classes: {
              person: classFor(view, "person"),
              organization: classFor(view, "organization"),
              place: classFor(view, "place")
            }
          }))
        )
    })
  })

/** `ONTOLOGY_URL` (default http://127.0.0.1:4001). */
export const urlConfig = Config.string("ONTOLOGY_URL").pipe(Config.withDefault("http://127.0.0.1:4001"))

export const layer = (baseUrl: string): Layer.Layer<OntologyClient> =>
  Layer.effect(OntologyClient, make(baseUrl)).pipe(Layer.provide(FetchHttpClient.layer))

export const layerConfig = Layer.unwrapEffect(Effect.map(urlConfig, layer))
