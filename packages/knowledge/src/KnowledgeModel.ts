// The typed vocabulary of knowledge ingestion: what a document, chunk, entity, mention and relation look like.
// Workflows, tables and HTTP routes built on top encode/decode these schemas instead of redefining shapes.
import { OntologyModel } from "@duraflow/ontology"
import { Schema } from "effect"

export const MaxDocumentIdLength = 128
export const MaxTitleLength = 500
export const MaxDocumentChars = 200_000

/** The only entity kinds the extractor emits; everything else the NLP library tags is dropped. */
export const EntityKind = Schema.Literal("person", "organization", "place")
export type EntityKind = typeof EntityKind.Type

/** A contiguous slice of a document; `text === document.slice(start, end)` (UTF-16 offsets). */
export const Chunk = Schema.Struct({
  index: Schema.NonNegativeInt,
  text: Schema.String,
  start: Schema.NonNegativeInt,
  end: Schema.NonNegativeInt
})
export interface Chunk extends Schema.Schema.Type<typeof Chunk> {}

/** One de-duplicated entity of a document. `normalized` is its identity (de-duplication key). */
export const ExtractedEntity = Schema.Struct({
  name: Schema.NonEmptyTrimmedString,
  kind: EntityKind,
  normalized: Schema.NonEmptyTrimmedString
})
export interface ExtractedEntity extends Schema.Schema.Type<typeof ExtractedEntity> {}

/** One occurrence of an entity; `start`/`end` index the ORIGINAL document text, for highlighting. */
export const Mention = Schema.Struct({
  entity: Schema.NonEmptyTrimmedString,
  chunkIndex: Schema.NonNegativeInt,
  start: Schema.NonNegativeInt,
  end: Schema.NonNegativeInt
})
export interface Mention extends Schema.Schema.Type<typeof Mention> {}

/**
 * Undirected co-occurrence of two entities (`source < target`): `weight` is the number of chunks
 * they share, `chunkIndex` the first of those chunks (evidence to show).
 */
export const Relation = Schema.Struct({
  source: Schema.NonEmptyTrimmedString,
  target: Schema.NonEmptyTrimmedString,
  chunkIndex: Schema.NonNegativeInt,
  weight: Schema.Int.pipe(Schema.positive())
})
export interface Relation extends Schema.Schema.Type<typeof Relation> {}

/** Stable external id: usable in URLs, file names and idempotency keys. */
export const DocumentId = Schema.String.pipe(
  Schema.maxLength(MaxDocumentIdLength),
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, {
    message: () => "documentId must start with a letter or digit and contain only letters, digits, '.', '_' or '-'"
  })
)

/** Payload of the ingest workflow. */
export const IngestDocumentPayload = Schema.Struct({
  documentId: DocumentId,
  title: Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(MaxTitleLength)),
  text: Schema.NonEmptyString.pipe(
    Schema.maxLength(MaxDocumentChars),
    Schema.pattern(/\S/, { message: () => "text must not be blank" })
  ),
  // the ontology app's own rule: an id it would refuse is a 400 here, not a run that can only fail
  ontologyId: Schema.optionalWith(OntologyModel.OntologyId, { exact: true })
})
export interface IngestDocumentPayload extends Schema.Schema.Type<typeof IngestDocumentPayload> {}

/** An extracted entity with the ontology class the caller assigned to it (`null`: untyped). */
export const TypedEntity = Schema.Struct({
  ...ExtractedEntity.fields,
  classIri: Schema.NullOr(Schema.NonEmptyTrimmedString)
})
export interface TypedEntity extends Schema.Schema.Type<typeof TypedEntity> {}

/** Everything an ingest run stores for one document (input of `KnowledgeRepository.saveIndexedDocument`). */
export const IndexedDocument = Schema.Struct({
  document: IngestDocumentPayload,
  chunks: Schema.Array(Chunk),
  entities: Schema.Array(TypedEntity),
  mentions: Schema.Array(Mention),
  relations: Schema.Array(Relation)
})
export interface IndexedDocument extends Schema.Schema.Type<typeof IndexedDocument> {}

/** Lifecycle of a stored document; a document is only ever stored once fully indexed. */
export const DocumentStatus = Schema.Literal("indexed")
export type DocumentStatus = typeof DocumentStatus.Type

/** One entity of a stored document; `mentions` counts distinct spans in the text (overlapping chunks count once). */
export const DocumentEntityView = Schema.Struct({
  name: Schema.String,
  kind: EntityKind,
  classIri: Schema.NullOr(Schema.String),
  mentions: Schema.NonNegativeInt
})
export interface DocumentEntityView extends Schema.Schema.Type<typeof DocumentEntityView> {}

/** A stored document as the API shows it. Entities are in order of first appearance in the text. */
export const DocumentView = Schema.Struct({
  documentId: Schema.String,
  title: Schema.String,
  ontologyId: Schema.NullOr(Schema.String),
  status: DocumentStatus,
  /** ISO 8601 UTC timestamp with milliseconds, like `Date.prototype.toISOString`. */
  indexedAt: Schema.String,
  chunkCount: Schema.NonNegativeInt,
  entities: Schema.Array(DocumentEntityView)
})
export interface DocumentView extends Schema.Schema.Type<typeof DocumentView> {}

export const DefaultEntityLimit = 50
export const MaxEntityLimit = 500

/**
 * An entity aggregated across documents by (entityKey, kind, classIri). `name` is its most frequent surface
 * name (ties: the alphabetically first), `documents` the ids of the documents naming it (sorted), `mentions`
 * the total number of distinct mention spans in them.
 */
export const EntityView = Schema.Struct({
  name: Schema.String,
  entityKey: Schema.String,
  kind: EntityKind,
  classIri: Schema.NullOr(Schema.String),
  documents: Schema.Array(Schema.String),
  mentions: Schema.NonNegativeInt
})
export interface EntityView extends Schema.Schema.Type<typeof EntityView> {}
