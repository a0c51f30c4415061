// Turns a Turtle document into the ontology model. It only reads the RDFS/OWL triples the model
// has room for (class and property declarations, subClassOf, domain, range, labels, nerKind) and
// ignores everything else, so real-world ontologies with extra axioms still load.
//
// The result is deterministic: classes, properties and superclasses come out sorted by IRI, so
// the same graph gives the same value whatever the triple order, whitespace or prefix names.
import { Effect } from "effect"
import { Parser, type Quad } from "n3"
import * as Canonical from "./internal/canonical.js"
import * as OntologyError from "./OntologyError.js"
import type * as OntologyModel from "./OntologyModel.js"
import * as Vocabulary from "./Vocabulary.js"

interface Subject {
  readonly types: Set<string>
  readonly superClasses: Set<string>
  readonly domains: Set<string>
  readonly ranges: Set<string>
  readonly labels: Array<{ readonly value: string; readonly language: string }>
  readonly nerKinds: Set<string>
}

/**
 * Parses Turtle into classes and properties.
 *
 * - Classes are named subjects with `rdf:type` `owl:Class` or `rdfs:Class`; their superclasses are
 *   the named objects of `rdfs:subClassOf` (anonymous class expressions such as OWL restrictions
 *   are skipped).
 * - Properties are named subjects typed `owl:ObjectProperty`, `owl:DatatypeProperty` or
 *   `rdf:Property`, with their named `rdfs:domain` / `rdfs:range`.
 * - Labels come from `rdfs:label`; with several, a plain literal wins over `@en`, which wins over
 *   other languages, ties going to the smallest string. `nerKind` likewise takes the smallest value.
 * - Re-stating a declaration is harmless (RDF is a set). A property has one domain and one range,
 *   so a property with several distinct domains or ranges comes out once per combination and
 *   validation reports it as a DuplicateIri instead of one silently winning. An IRI typed both as
 *   class and as property appears in both lists, likewise reported by validation.
 *
 * Fails with InvalidTurtle, carrying n3's message and line, when the document is not valid Turtle.
 */
export const parse = (turtle: string): Effect.Effect<OntologyModel.ParsedOntology, OntologyError.InvalidTurtle> =>
  Effect.try({
    try: () => new Parser({ format: "text/turtle" }).parse(turtle),
    catch: (error) => {
      const line = lineOf(error)
      return new OntologyError.InvalidTurtle({
        message: error instanceof Error ? error.message : String(error),
        ...(line === undefined ? {} : { line })
      })
    }
  }).pipe(Effect.map(fromQuads))

const lineOf = (error: unknown): number | undefined => {
  const line = (error as { readonly context?: { readonly line?: unknown } } | null)?.context?.line
  return typeof line === "number" ? line : undefined
}

const fromQuads = (quads: ReadonlyArray<Quad>): OntologyModel.ParsedOntology => {
  const subjects = new Map<string, Subject>()
  const subjectOf = (iri: string): Subject => {
    let s = subjects.get(iri)
    if (s === undefined) {
      s = { types: new Set(), superClasses: new Set(), domains: new Set(), ranges: new Set(), labels: [], nerKinds: new Set() }
      subjects.set(iri, s)
    }
    return s
  }

  for (const { subject, predicate, object } of quads) {
    if (subject.termType !== "NamedNode") continue
    const s = subjectOf(subject.value)
    const named = object.termType === "NamedNode"
    const literal = object.termType === "Literal"
    switch (predicate.value) {
      case Vocabulary.rdfType:
        if (named) s.types.add(object.value)
        break
      case Vocabulary.rdfsSubClassOf:
        if (named) s.superClasses.add(object.value)
        break
      case Vocabulary.rdfsDomain:
        if (named) s.domains.add(object.value)
        break
      case Vocabulary.rdfsRange:
        if (named) s.ranges.add(object.value)
        break
      case Vocabulary.rdfsLabel:
        if (literal) s.labels.push({ value: object.value, language: object.language })
        break
      case Vocabulary.nerKind:
        if (literal) s.nerKinds.add(object.value)
        break
    }
  }

  const classes: Array<OntologyModel.OntologyClass> = []
  const properties: Array<OntologyModel.OntologyProperty> = []
  for (const iri of [...subjects.keys()].sort(Canonical.compare)) {
    const s = subjects.get(iri)!
    const types = [...s.types]
    const label = preferredLabel(s.labels)
    const labelField = label === undefined ? {} : { label }
    if (types.some((t) => Vocabulary.classTypes.has(t))) {
      const nerKind = [...s.nerKinds].sort(Canonical.compare)[0]
      classes.push({
        iri,
        ...labelField,
        ...(nerKind === undefined ? {} : { nerKind }),
        superClasses: [...s.superClasses].sort(Canonical.compare)
      })
    }
    if (types.some((t) => Vocabulary.propertyTypes.has(t))) {
      for (const domain of orNull(s.domains)) {
        for (const range of orNull(s.ranges)) {
          properties.push({ iri, ...labelField, domain, range })
        }
      }
    }
  }
  return { classes, properties }
}

const orNull = (values: ReadonlySet<string>): ReadonlyArray<string | null> =>
  values.size === 0 ? [null] : [...values].sort(Canonical.compare)

const languageRank = (language: string): number =>
  language === "" ? 0 : language === "en" || language.startsWith("en-") ? 1 : 2

const preferredLabel = (labels: Subject["labels"]): string | undefined =>
  [...labels].sort(
    (a, b) =>
      languageRank(a.language) - languageRank(b.language) ||
      Canonical.compare(a.language, b.language) ||
      Canonical.compare(a.value, b.value)
  )[0]?.value
