// The individual structural problems validation can find in an ontology. They are data (tagged
// schemas) rather than errors so that validation can report all of them at once, inside a single
// OntologyError.InvalidOntology, and callers can match on them by tag.
import { Match, Schema } from "effect"

/** The ontology declares no class at all. */
export const EmptyOntology = Schema.TaggedStruct("EmptyOntology", {})

/** An IRI with more than one distinct definition: both class and property, or conflicting definitions. */
export const DuplicateIri = Schema.TaggedStruct("DuplicateIri", { iri: Schema.String })

/** Class `iri` names a superclass that is not declared in the ontology. */
export const UnknownSuperclass = Schema.TaggedStruct("UnknownSuperclass", {
  iri: Schema.String,
  superClass: Schema.String
})

/**
 * `rdfs:subClassOf` loops back on itself. `iri` is the smallest IRI on the loop and `cycle` the
 * loop starting there, in subClassOf order, without repeating `iri` at the end.
 */
export const SubclassCycle = Schema.TaggedStruct("SubclassCycle", {
  iri: Schema.String,
  cycle: Schema.Array(Schema.String)
})

/** Property `iri` has a domain that is not a declared class. */
export const UnknownDomain = Schema.TaggedStruct("UnknownDomain", { iri: Schema.String, domain: Schema.String })

/** Property `iri` has a range that is neither a declared class nor a datatype. */
export const UnknownRange = Schema.TaggedStruct("UnknownRange", { iri: Schema.String, range: Schema.String })

/** Several classes claim the same NER entity kind, so the kind cannot be mapped to one class. */
export const AmbiguousNerKind = Schema.TaggedStruct("AmbiguousNerKind", {
  nerKind: Schema.String,
  classes: Schema.Array(Schema.String)
})

export const Problem = Schema.Union(
  EmptyOntology,
  DuplicateIri,
  UnknownSuperclass,
  SubclassCycle,
  UnknownDomain,
  UnknownRange,
  AmbiguousNerKind
).annotations({ identifier: "OntologyProblem" })
export type Problem = Schema.Schema.Type<typeof Problem>

/** One human-readable line per problem. */
export const format: (problem: Problem) => string = Match.type<Problem>().pipe(
  Match.tagsExhaustive({
    EmptyOntology: () => "the ontology declares no classes",
    DuplicateIri: (p) => `<${p.iri}> is declared more than once with different definitions`,
    UnknownSuperclass: (p) => `class <${p.iri}> has undeclared superclass <${p.superClass}>`,
    SubclassCycle: (p) => `subclass cycle: ${[...p.cycle, p.iri].map((iri) => `<${iri}>`).join(" -> ")}`,
    UnknownDomain: (p) => `property <${p.iri}> has undeclared domain class <${p.domain}>`,
    UnknownRange: (p) => `property <${p.iri}> has range <${p.range}>, which is neither a declared class nor a datatype`,
    AmbiguousNerKind: (p) =>
      `NER kind "${p.nerKind}" is claimed by several classes: ${p.classes.map((iri) => `<${iri}>`).join(", ")}`
  })
)
