/**
 * How knowledge learns an ontology's classes: over HTTP, from the ontology app,
 * through a client derived from the ontology package's exported `OntologyApi`
 * (never by reading ontology tables). An ontology declares which NER kind maps
 * to which of its classes with the `nerKind` annotation; this client turns the
 * ontology into that mapping. "Not published" and "unreachable" are distinct
 * errors: the first fails the run, the second is retried with backoff. An id
 * the ontology app refuses (a 400, or an id its `OntologyId` schema rejects) or
 * does not know (a 404) is "not published": retrying cannot change the answer.
 */
import { OntologyApi, OntologyModel } from "@duraflow/ontology"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
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

/** Statuses by which the ontology app says the id is not (and will not become) valid or known. */
const permanent = (status: number) => status === 400 || status === 404

const isValidId = Schema.is(OntologyModel.OntologyId)

/** The message of a JSON error body (`{ message }`), else the body's start. */
const bodyMessage = (response: { readonly text: Effect.Effect<string, unknown> }) =>
  response.text.pipe(
    Effect.map((text) => {
      try {
        const message = (JSON.parse(text) as { message?: unknown })?.message
        if (typeof message === "string") return message
      } catch {
        // not JSON: show the text itself
      }
      return text.slice(0, 300)
    }),
    Effect.orElseSucceed(() => "")
  )

export const make = (baseUrl: string) =>
  Effect.gen(function*() {
    const client = yield* HttpApiClient.make(OntologyApi.OntologyApi, {
      baseUrl,
      // every 400/404 becomes a StatusCode error before decoding, whatever its body (an app of
      // another version, a proxy): those are recognised by status below
      transformClient: HttpClient.filterStatus((status) => !permanent(status))
    })
    const unknown = (ontologyId: string, message: string) => new UnknownOntology({ ontologyId, message })
    return OntologyClient.of({
      entityClasses: (ontologyId) =>
        !isValidId(ontologyId)
          ? Effect.fail(unknown(ontologyId, `${JSON.stringify(ontologyId)} is not a valid ontology id`))
          : client.ontologies.get({ path: { ontologyId } }).pipe(
          Effect.timeout("10 seconds"),
          Effect.catchAll((error): Effect.Effect<never, UnknownOntology | OntologyUnavailable> =>
            error._tag === "OntologyNotFound"
              ? Effect.fail(unknown(ontologyId, error.message))
              : error instanceof HttpClientError.ResponseError && permanent(error.response.status)
              ? Effect.flatMap(bodyMessage(error.response), (body) =>
                Effect.fail(unknown(
                  ontologyId,
                  `the ontology app at ${baseUrl} answered ${error.response.status} for ${JSON.stringify(ontologyId)}` +
                    (body ? `: ${body}` : "")
                )))
              : Effect.fail(
                new OntologyUnavailable({ url: baseUrl, message: `ontology app at ${baseUrl}: ${error.message}` })
              )
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
