// Schemas for an ontology as this system understands it (classes with superclasses, properties
// with a domain and range) and for the payloads that publish and expose one. Everything is plain
// data, so the same values travel through workflows, HTTP and storage unchanged.
import { Schema } from "effect"

/** An absolute IRI, as produced by the Turtle parser (prefixes already expanded). */
export const Iri = Schema.NonEmptyTrimmedString.annotations({ identifier: "Iri" })

export const OntologyClass = Schema.Struct({
  iri: Iri,
  label: Schema.optional(Schema.String),
  /** The NER entity kind this class stands for, from the `df:nerKind` annotation (see Vocabulary.nerKind). */
  nerKind: Schema.optional(Schema.String),
  superClasses: Schema.Array(Iri)
}).annotations({ identifier: "OntologyClass" })
export interface OntologyClass extends Schema.Schema.Type<typeof OntologyClass> {}

export const OntologyProperty = Schema.Struct({
  iri: Iri,
  label: Schema.optional(Schema.String),
  /** Class IRI, or null when the property has no declared domain. */
  domain: Schema.NullOr(Iri),
  /** Class IRI or datatype IRI (XSD namespace, rdfs:Literal, rdf:langString), or null when undeclared. */
  range: Schema.NullOr(Iri)
}).annotations({ identifier: "OntologyProperty" })
export interface OntologyProperty extends Schema.Schema.Type<typeof OntologyProperty> {}

export const ParsedOntology = Schema.Struct({
  classes: Schema.Array(OntologyClass),
  properties: Schema.Array(OntologyProperty)
}).annotations({ identifier: "ParsedOntology" })
export interface ParsedOntology extends Schema.Schema.Type<typeof ParsedOntology> {}

export const OntologyIdMaxLength = 128

/** Caller-chosen ontology name: safe in URLs, keys and logs. */
export const OntologyId = Schema.NonEmptyTrimmedString.pipe(
  Schema.maxLength(OntologyIdMaxLength),
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, {
    message: () => "ontologyId must start with a letter or digit and contain only letters, digits, '.', '_' or '-'"
  })
).annotations({ identifier: "OntologyId" })

/** Upper bound on the UTF-8 size of a submitted Turtle document (1 MiB). */
export const MaxTurtleBytes = 1024 * 1024

export const TurtleSource = Schema.NonEmptyString.pipe(
  Schema.filter((s) => Buffer.byteLength(s, "utf8") <= MaxTurtleBytes, {
    message: () => `turtle must be at most ${MaxTurtleBytes} bytes of UTF-8`
  })
).annotations({ identifier: "TurtleSource" })

export const PublishOntologyPayload = Schema.Struct({
  ontologyId: OntologyId,
  turtle: TurtleSource
}).annotations({ identifier: "PublishOntologyPayload" })
export interface PublishOntologyPayload extends Schema.Schema.Type<typeof PublishOntologyPayload> {}

/** Lower-case hex sha256, as produced by ContentHash.contentHash. */
export const ContentHashHex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)).annotations({
  identifier: "ContentHash"
})

export const OntologyView = Schema.Struct({
  ontologyId: OntologyId,
  version: Schema.Int.pipe(Schema.positive()),
  contentHash: ContentHashHex,
  classes: Schema.Array(OntologyClass),
  properties: Schema.Array(OntologyProperty)
}).annotations({ identifier: "OntologyView" })
export interface OntologyView extends Schema.Schema.Type<typeof OntologyView> {}

/** A published version number: 1 for an ontology's first version, then consecutive. */
export const VersionNumber = Schema.Int.pipe(Schema.positive()).annotations({ identifier: "OntologyVersionNumber" })

/** The outcome of publishing: the version holding the content, and whether this call created it. */
export const PublishedVersion = Schema.Struct({
  ontologyId: OntologyId,
  version: VersionNumber,
  contentHash: ContentHashHex,
  /** false when a version with the same content hash already existed (nothing was written). */
  created: Schema.Boolean
}).annotations({ identifier: "PublishedVersion" })
export interface PublishedVersion extends Schema.Schema.Type<typeof PublishedVersion> {}

/** One entry of an ontology's version history. `publishedAt` is encoded as an ISO string. */
export const OntologyVersion = Schema.Struct({
  version: VersionNumber,
  contentHash: ContentHashHex,
  publishedAt: Schema.Date
}).annotations({ identifier: "OntologyVersion" })
export interface OntologyVersion extends Schema.Schema.Type<typeof OntologyVersion> {}
