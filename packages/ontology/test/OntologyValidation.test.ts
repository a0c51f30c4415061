import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as OntologyError from "../src/OntologyError.js"
import type * as OntologyModel from "../src/OntologyModel.js"
import * as OntologyValidation from "../src/OntologyValidation.js"
import * as SampleOntology from "../src/SampleOntology.js"
import * as TurtleParser from "../src/TurtleParser.js"

const ex = (local: string) => `http://example.org/onto#${local}`
const prefixes = `@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/onto#> .
`

const problemsOf = (turtle: string) =>
  TurtleParser.parse(`${prefixes}${turtle}`).pipe(
    Effect.flatMap(OntologyValidation.validate),
    Effect.flip,
    Effect.map((error) => {
      if (!(error instanceof OntologyError.InvalidOntology)) throw new Error(`unexpected ${error._tag}`)
      return error.problems
    })
  )

describe("OntologyValidation.validate", () => {
  it.effect("accepts the sample ontology unchanged", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(SampleOntology.turtle)
      expect(yield* OntologyValidation.validate(parsed)).toBe(parsed)
    }))

  it.effect("accepts datatype ranges, owl:Thing as superclass and re-stated declarations", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(`${prefixes}
        ex:Person a owl:Class ; rdfs:subClassOf owl:Thing .
        ex:Person a owl:Class ; rdfs:label "Person" .
        ex:Person a rdfs:Class .
        ex:name a owl:DatatypeProperty ; rdfs:domain ex:Person ; rdfs:range xsd:string .
        ex:bio a owl:DatatypeProperty ; rdfs:range rdfs:Literal .
        ex:born a owl:DatatypeProperty ; rdfs:range xsd:dateTime .`)
      yield* OntologyValidation.validate(parsed)
      // The same entry repeated in a hand-built ontology is not a conflict either.
      yield* OntologyValidation.validate({ classes: [...parsed.classes, ...parsed.classes], properties: parsed.properties })
    }))

  it.effect("rejects an ontology without classes", () =>
    Effect.gen(function*() {
      expect(yield* problemsOf(`ex:p a owl:ObjectProperty .`)).toEqual([{ _tag: "EmptyOntology" }])
    }))

  it.effect("reports an undeclared superclass with the class IRI", () =>
    Effect.gen(function*() {
      expect(yield* problemsOf(`ex:City a owl:Class ; rdfs:subClassOf ex:Place .`)).toEqual([
        { _tag: "UnknownSuperclass", iri: ex("City"), superClass: ex("Place") }
      ])
    }))

  it.effect("reports undeclared domain and range, but not XSD ranges", () =>
    Effect.gen(function*() {
      expect(
        yield* problemsOf(`
          ex:Person a owl:Class .
          ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Human ; rdfs:range ex:Organization .
          ex:name a owl:DatatypeProperty ; rdfs:domain ex:Person ; rdfs:range xsd:string .
          ex:age a owl:DatatypeProperty ; rdfs:range ex:integer .`)
      ).toEqual([
        { _tag: "UnknownDomain", iri: ex("worksFor"), domain: ex("Human") },
        { _tag: "UnknownRange", iri: ex("age"), range: ex("integer") },
        { _tag: "UnknownRange", iri: ex("worksFor"), range: ex("Organization") }
      ])
    }))

  it.effect("reports an IRI that is both a class and a property, and a property with two domains", () =>
    Effect.gen(function*() {
      expect(
        yield* problemsOf(`
          ex:Person a owl:Class . ex:Robot a owl:Class .
          ex:name a owl:Class , owl:DatatypeProperty .
          ex:owner a owl:ObjectProperty ; rdfs:domain ex:Person, ex:Robot .`)
      ).toEqual([
        { _tag: "DuplicateIri", iri: ex("name") },
        { _tag: "DuplicateIri", iri: ex("owner") }
      ])
    }))

  it.effect("reports a hand-built ontology with two different definitions of one class", () =>
    Effect.gen(function*() {
      const ontology: OntologyModel.ParsedOntology = {
        classes: [
          { iri: ex("A"), superClasses: [] },
          { iri: ex("A"), label: "A", superClasses: [] }
        ],
        properties: []
      }
      const error = yield* Effect.flip(OntologyValidation.validate(ontology))
      expect(error.problems).toEqual([{ _tag: "DuplicateIri", iri: ex("A") }])
    }))

  it.effect("detects a self-loop", () =>
    Effect.gen(function*() {
      expect(yield* problemsOf(`ex:A a owl:Class ; rdfs:subClassOf ex:A .`)).toEqual([
        { _tag: "SubclassCycle", iri: ex("A"), cycle: [ex("A")] }
      ])
    }))

  it.effect("detects a 3-cycle once, in subClassOf order from its smallest IRI", () =>
    Effect.gen(function*() {
      expect(
        yield* problemsOf(`
          ex:Root a owl:Class .
          ex:C a owl:Class ; rdfs:subClassOf ex:A .
          ex:B a owl:Class ; rdfs:subClassOf ex:C , ex:Root .
          ex:A a owl:Class ; rdfs:subClassOf ex:B .
          ex:Leaf a owl:Class ; rdfs:subClassOf ex:B .`)
      ).toEqual([{ _tag: "SubclassCycle", iri: ex("A"), cycle: [ex("A"), ex("B"), ex("C")] }])
    }))

  it.effect("reports separate cycles separately", () =>
    Effect.gen(function*() {
      expect(
        yield* problemsOf(`
          ex:A a owl:Class ; rdfs:subClassOf ex:B .
          ex:B a owl:Class ; rdfs:subClassOf ex:A .
          ex:X a owl:Class ; rdfs:subClassOf ex:Y .
          ex:Y a owl:Class ; rdfs:subClassOf ex:Z .
          ex:Z a owl:Class ; rdfs:subClassOf ex:X , ex:Z .`)
      ).toEqual([
        { _tag: "SubclassCycle", iri: ex("A"), cycle: [ex("A"), ex("B")] },
        { _tag: "SubclassCycle", iri: ex("X"), cycle: [ex("X"), ex("Y"), ex("Z")] }
      ])
    }))

  it.effect("handles a deep hierarchy without overflowing the stack", () =>
    Effect.gen(function*() {
      const depth = 20_000
      const classes = Array.from({ length: depth }, (_, i) => ({
        iri: ex(`C${i}`),
        superClasses: [ex(`C${(i + 1) % depth}`)]
      }))
      const error = yield* Effect.flip(OntologyValidation.validate({ classes, properties: [] }))
      expect(error.problems).toHaveLength(1)
      expect(error.problems[0]).toMatchObject({ _tag: "SubclassCycle", iri: ex("C0") })
    }))

  it.effect("reports a NER kind claimed by several classes", () =>
    Effect.gen(function*() {
      expect(
        yield* problemsOf(`
          @prefix df: <https://duraflow.dev/ns#> .
          ex:Person a owl:Class ; df:nerKind "person" .
          ex:Human a owl:Class ; df:nerKind "person" .
          ex:Place a owl:Class ; df:nerKind "place" .`)
      ).toEqual([{ _tag: "AmbiguousNerKind", nerKind: "person", classes: [ex("Human"), ex("Person")] }])
    }))

  it.effect("collects every problem at once, with a readable message", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(`${prefixes}
        ex:City a owl:Class ; rdfs:subClassOf ex:Place .
        ex:A a owl:Class ; rdfs:subClassOf ex:A .
        ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Person ; rdfs:range ex:Company .
        ex:City a owl:ObjectProperty .`)
      const error = yield* Effect.flip(OntologyValidation.validate(parsed))
      expect(error.problems.map((p) => p._tag)).toEqual([
        "DuplicateIri",
        "UnknownSuperclass",
        "SubclassCycle",
        "UnknownDomain",
        "UnknownRange"
      ])
      expect(error.message).toBe(
        [
          "invalid ontology (5 problems):",
          `  - <${ex("City")}> is declared more than once with different definitions`,
          `  - class <${ex("City")}> has undeclared superclass <${ex("Place")}>`,
          `  - subclass cycle: <${ex("A")}> -> <${ex("A")}>`,
          `  - property <${ex("worksFor")}> has undeclared domain class <${ex("Person")}>`,
          `  - property <${ex("worksFor")}> has range <${ex("Company")}>, which is neither a declared class nor a datatype`
        ].join("\n")
      )
    }))

  it.effect("InvalidOntology survives a JSON round trip through its schema", () =>
    Effect.gen(function*() {
      const error = new OntologyError.InvalidOntology({
        problems: [{ _tag: "SubclassCycle", iri: ex("A"), cycle: [ex("A"), ex("B")] }, { _tag: "EmptyOntology" }]
      })
      const json = JSON.parse(JSON.stringify(yield* Schema.encode(OntologyError.InvalidOntology)(error)))
      const decoded = yield* Schema.decodeUnknown(OntologyError.InvalidOntology)(json)
      expect(decoded).toBeInstanceOf(OntologyError.InvalidOntology)
      expect(decoded.problems).toEqual(error.problems)
      expect(decoded.message).toBe(error.message)
    }))
})
