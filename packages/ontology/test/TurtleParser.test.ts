import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as OntologyError from "../src/OntologyError.js"
import * as SampleOntology from "../src/SampleOntology.js"
import * as TurtleParser from "../src/TurtleParser.js"
import * as Vocabulary from "../src/Vocabulary.js"

const ns = SampleOntology.namespace
const n = (local: string) => `${ns}${local}`
const ex = (local: string) => `http://example.org/onto#${local}`

const prefixes = `@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/onto#> .
`

describe("TurtleParser.parse", () => {
  it.effect("reads classes, superclasses, labels and nerKind from the sample ontology", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(SampleOntology.turtle)
      expect(parsed.classes.map((c) => c.iri)).toEqual(
        ["City", "Company", "Country", "Event", "Organization", "Person", "Place", "Product", "University"].map(n)
      )
      const byIri = new Map(parsed.classes.map((c) => [c.iri, c]))
      expect(byIri.get(n("City"))).toEqual({ iri: n("City"), label: "City", superClasses: [n("Place")] })
      expect(byIri.get(n("Company"))?.superClasses).toEqual([n("Organization")])
      expect(byIri.get(n("Person"))).toEqual({ iri: n("Person"), label: "Person", nerKind: "person", superClasses: [] })
      expect(
        parsed.classes.filter((c) => c.nerKind !== undefined).map((c) => [c.nerKind, c.iri])
      ).toEqual([["organization", n("Organization")], ["person", n("Person")], ["place", n("Place")]])
    }))

  it.effect("reads properties with domain and range, including datatype ranges", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(SampleOntology.turtle)
      const byIri = new Map(parsed.properties.map((p) => [p.iri, p]))
      expect(byIri.get(n("worksFor"))).toEqual({
        iri: n("worksFor"),
        label: "works for",
        domain: n("Person"),
        range: n("Organization")
      })
      expect(byIri.get(n("name"))).toEqual({ iri: n("name"), label: "name", domain: null, range: `${Vocabulary.XSD}string` })
      // df:nerKind is an owl:AnnotationProperty: not part of the model.
      expect(byIri.has(Vocabulary.nerKind)).toBe(false)
      expect(parsed.properties).toHaveLength(9)
    }))

  it.effect("accepts rdfs:Class / rdf:Property and ignores blank nodes, individuals and other axioms", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(`${prefixes}
        ex:Animal a rdfs:Class .
        ex:Dog a rdfs:Class ;
          rdfs:subClassOf ex:Animal , [ a owl:Restriction ; owl:onProperty ex:owner ; owl:someValuesFrom ex:Animal ] .
        ex:owner a rdf:Property ; rdfs:domain ex:Dog .
        ex:rex a ex:Dog ; rdfs:label "Rex" .
        ex:Dog owl:disjointWith ex:Cat .`)
      expect(parsed).toEqual({
        classes: [
          { iri: ex("Animal"), superClasses: [] },
          { iri: ex("Dog"), superClasses: [ex("Animal")] }
        ],
        properties: [{ iri: ex("owner"), domain: ex("Dog"), range: null }]
      })
    }))

  it.effect("prefers a plain label, then English, whatever the triple order", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(`${prefixes}
        ex:A a owl:Class ; rdfs:label "Ding"@de, "Thing"@en .
        ex:B a owl:Class ; rdfs:label "Ding"@de, "Thing"@en, "thing" .
        ex:C a owl:Class ; rdfs:label "Ding"@de .`)
      expect(parsed.classes.map((c) => c.label)).toEqual(["Thing", "thing", "Ding"])
    }))

  it.effect("gives the same result whatever the statement order and prefix names", () =>
    Effect.gen(function*() {
      const a = yield* TurtleParser.parse(`${prefixes}
        ex:Place a owl:Class .
        ex:City a owl:Class ; rdfs:subClassOf ex:Place .
        ex:locatedIn a owl:ObjectProperty ; rdfs:domain ex:City ; rdfs:range ex:Place .`)
      const b = yield* TurtleParser.parse(`@prefix o: <http://www.w3.org/2002/07/owl#> .
        @prefix s: <http://www.w3.org/2000/01/rdf-schema#> .
        @prefix geo: <http://example.org/onto#> .
        geo:locatedIn s:range geo:Place ; s:domain geo:City ; a o:ObjectProperty .
        geo:City s:subClassOf geo:Place .
        geo:City a o:Class .
        <http://example.org/onto#Place> a o:Class .`)
      expect(b).toEqual(a)
    }))

  it.effect("keeps conflicting domains and class/property puns visible for validation", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(`${prefixes}
        ex:A a owl:Class . ex:B a owl:Class .
        ex:p a owl:ObjectProperty ; rdfs:domain ex:A, ex:B ; rdfs:range ex:A .
        ex:A a owl:ObjectProperty .`)
      expect(parsed.properties).toEqual([
        { iri: ex("A"), domain: null, range: null },
        { iri: ex("p"), domain: ex("A"), range: ex("A") },
        { iri: ex("p"), domain: ex("B"), range: ex("A") }
      ])
      expect(parsed.classes.map((c) => c.iri)).toEqual([ex("A"), ex("B")])
    }))

  it.effect("fails with InvalidTurtle carrying n3's message and line on malformed input", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(TurtleParser.parse(`${prefixes}
ex:Person a owl:Class .
ex:City a owl:Class ;
  rdfs:subClassOf .
`))
      expect(error).toBeInstanceOf(OntologyError.InvalidTurtle)
      expect(error._tag).toBe("InvalidTurtle")
      expect(error.line).toBe(9)
      expect(error.message).toMatch(/line 9/)
    }))

  it.effect("fails on undeclared prefixes and on non-Turtle (N3) syntax", () =>
    Effect.gen(function*() {
      const unknownPrefix = yield* Effect.flip(TurtleParser.parse(`nope:A a nope:B .`))
      expect(unknownPrefix.message).toMatch(/nope/)
      expect(unknownPrefix.line).toBe(1)
      const n3Rule = yield* Effect.flip(TurtleParser.parse(`${prefixes} { ?x a ex:A } => { ?x a ex:B } .`))
      expect(n3Rule._tag).toBe("InvalidTurtle")
    }))

  it.effect("parses an empty document to an empty ontology (validation rejects it)", () =>
    Effect.gen(function*() {
      expect(yield* TurtleParser.parse(prefixes)).toEqual({ classes: [], properties: [] })
    }))
})
