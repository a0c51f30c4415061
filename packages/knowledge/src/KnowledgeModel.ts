// The typed vocabulary of knowledge ingestion: what a document, chunk, entity, mention and relation look like.
// Workflows, tables and HTTP routes built on top encode/decode these schemas instead of redefining shapes.
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
  ontologyId: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true })
})
export interface IngestDocumentPayload extends Schema.Schema.Type<typeof IngestDocumentPayload> {}
