/**
 * The `IngestDocument` workflow: type the document's entities with its
 * ontology (fetched over HTTP from the ontology app, retried with backoff while
 * that app is unreachable), then chunk, extract entities, mentions and
 * co-occurrence relations, and store everything in one transaction.
 * Idempotent by document content: the execution id is derived from the
 * document id AND a hash of its inputs (title, text, ontology), so the same
 * document posted again is the same run, while new content for a known
 * document id is a new run that REPLACES the stored document (its chunks,
 * entities, mentions, relations). Indexing is a transactional activity: its
 * rows and its recorded result commit in one transaction.
 */
import { Retry, TransactionalActivity, UpgradeCheck, WorkflowLayer } from "@duraflow/runtime-core"
import { Activity, Workflow } from "@effect/workflow"
import { Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import * as Chunker from "./Chunker.js"
import * as CoOccurrence from "./CoOccurrence.js"
import * as EntityExtractor from "./EntityExtractor.js"
import * as KnowledgeModel from "./KnowledgeModel.js"
import * as Repository from "./KnowledgeRepository.js"
import * as OntologyClient from "./OntologyClient.js"

export const IngestResult = Schema.Struct({
  documentId: Schema.String,
  /** false when this exact content had been stored already (nothing was written). */
  created: Schema.Boolean,
  /** true when it replaced an earlier content of the same document id (absent in results recorded before). */
  replaced: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  chunks: Schema.Number,
  entities: Schema.Number,
  typedEntities: Schema.Number,
  mentions: Schema.Number,
  relations: Schema.Number
})
export interface IngestResult extends Schema.Schema.Type<typeof IngestResult> {}

/**
 * The idempotency key of an ingest: the document id and a sha256 of everything else the run stores (title,
 * text, ontology), so re-posting a document is idempotent and new content is a new run.
 */
export const revisionKey = (document: KnowledgeModel.IngestDocumentPayload): string =>
  `${document.documentId}@${
    createHash("sha256").update(JSON.stringify([document.title, document.text, document.ontologyId ?? null]), "utf8")
      .digest("hex")
  }`

export const IngestDocument = Workflow.make({
  name: "IngestDocument",
  payload: KnowledgeModel.IngestDocumentPayload.fields,
  success: IngestResult,
  error: OntologyClient.UnknownOntology,
  idempotencyKey: (document) => revisionKey(document)
})

/** How long a run waits for an unreachable ontology app before failing. */
export const ontologyRetry = Retry.backoff({ first: "200 millis", max: "5 seconds", total: "10 minutes" })

/** The activities' names and schemas (declared for `UpgradeCheck`, spread into the activities below). */
export const ResolveEntityClasses = UpgradeCheck.activity({
  name: "resolve-entity-classes",
  success: OntologyClient.EntityClasses,
  error: OntologyClient.UnknownOntology
})
export const IndexDocument = UpgradeCheck.activity({ name: "index-document", success: IngestResult })

/** What `duraflow upgrade-check` checks this app's stored runs against. */
export const declaration = UpgradeCheck.workflow(IngestDocument, { activities: [ResolveEntityClasses, IndexDocument] })

const untyped: OntologyClient.EntityClasses["classes"] = { person: null, organization: null, place: null }

export const layer = WorkflowLayer.make(IngestDocument, {
  dependencies: Layer.merge(Repository.layer, OntologyClient.layerConfig),
  execute: (document) =>
    Effect.gen(function*() {
      const classes = document.ontologyId === undefined ? untyped : (yield* Activity.make({
        ...ResolveEntityClasses,
        execute: Effect.flatMap(OntologyClient.OntologyClient, (client) =>
          client.entityClasses(document.ontologyId!).pipe(
            Effect.tapErrorTag("OntologyUnavailable", (e) => Effect.logWarning(`${e.message}; retrying`)),
            Effect.retry({ schedule: ontologyRetry, while: (e) => e._tag === "OntologyUnavailable" }),
            Effect.catchTag("OntologyUnavailable", Effect.die)
          ))
      })).classes

      // writes and recorded result commit together: a replay never indexes twice
      return yield* TransactionalActivity.make({
        ...IndexDocument,
        execute: Effect.gen(function*() {
          const repository = yield* Repository.KnowledgeRepository
          const chunks = Chunker.chunk(document.text)
          const { entities, mentions } = EntityExtractor.extract(chunks)
          const relations = CoOccurrence.relations(mentions)
          const typed = entities.map((e) => ({ ...e, classIri: classes[e.kind] }))
          const { created, replaced } = yield* repository.saveIndexedDocument({
            document,
            chunks,
            entities: typed,
            mentions,
            relations
          })
          return {
            documentId: document.documentId,
            created,
            replaced,
            chunks: chunks.length,
            entities: entities.length,
            typedEntities: typed.filter((e) => e.classIri !== null).length,
            mentions: mentions.length,
            relations: relations.length
          }
        })
      })
    })
})
