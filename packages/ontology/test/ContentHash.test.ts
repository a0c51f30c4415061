import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as ContentHash from "../src/ContentHash.js"
import * as OntologyModel from "../src/OntologyModel.js"
import * as SampleOntology from "../src/SampleOntology.js"
import * as TurtleParser from "../src/TurtleParser.js"

const base = `@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix ex: <http://example.org/onto#> .

ex:Person a owl:Class ; rdfs:label "Person" .
ex:Organization a owl:Class .
ex:Company a owl:Class ; rdfs:subClassOf ex:Organization , owl:Thing .
ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Person ; rdfs:range ex:Organization .
ex:name a owl:DatatypeProperty ; rdfs:range xsd:string .
`

// Same graph: other prefix names, full IRIs, shuffled statements and objects, other whitespace.
const reformatted = `@prefix s: <http://www.w3.org/2000/01/rdf-schema#>.
@prefix o: <http://www.w3.org/2002/07/owl#>.
@prefix org: <http://example.org/onto#>.
org:name a o:DatatypeProperty; s:range <http://www.w3.org/2001/XMLSchema#string>.
org:worksFor s:range org:Organization;s:domain org:Person;a o:ObjectProperty.
   org:Company s:subClassOf o:Thing, org:Organization ;   a o:Class .
<http://example.org/onto#Organization> a o:Class .
org:Person s:label "Person" .   org:Person a o:Class .
`

const hashOf = (turtle: string) => TurtleParser.parse(turtle).pipe(Effect.map(ContentHash.contentHash))

describe("ContentHash.contentHash", () => {
  it.effect("is a lower-case hex sha256 accepted by the view schema", () =>
    Effect.gen(function*() {
      const hash = yield* hashOf(SampleOntology.turtle)
      expect(hash).toMatch(/^[0-9a-f]{64}$/)
      expect(Schema.is(OntologyModel.ContentHashHex)(hash)).toBe(true)
    }))

  it.effect("is stable under reordering, whitespace and prefix names", () =>
    Effect.gen(function*() {
      expect(yield* hashOf(reformatted)).toBe(yield* hashOf(base))
    }))

  it.effect("ignores entry order and repeats in a hand-built ontology", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(base)
      const shuffled: OntologyModel.ParsedOntology = {
        classes: [...parsed.classes].reverse().map((c) => ({ ...c, superClasses: [...c.superClasses].reverse() })),
        properties: [...parsed.properties, ...parsed.properties].reverse()
      }
      expect(ContentHash.contentHash(shuffled)).toBe(ContentHash.contentHash(parsed))
    }))

  it.effect("changes when any part of the content changes", () =>
    Effect.gen(function*() {
      const original = yield* hashOf(base)
      const variants = [
        base + "ex:Place a owl:Class .\n", // new class
        base.replace("rdfs:subClassOf ex:Organization ,", "rdfs:subClassOf"), // superclass removed
        base.replace('rdfs:label "Person"', 'rdfs:label "Human"'), // label changed
        base.replace("rdfs:range ex:Organization", "rdfs:range ex:Company"), // range changed
        base.replace("ex:worksFor a owl:ObjectProperty ; rdfs:domain ex:Person ;", "ex:worksFor a owl:ObjectProperty ;"), // domain dropped
        base + 'ex:Person <https://duraflow.dev/ns#nerKind> "person" .\n', // nerKind added
        base.replaceAll("http://example.org/onto#", "http://example.org/other#") // namespace changed
      ]
      const hashes = yield* Effect.forEach(variants, hashOf)
      expect(new Set([original, ...hashes]).size).toBe(variants.length + 1)
    }))

  it.effect("does not confuse a class with a property of the same IRI", () =>
    Effect.gen(function*() {
      const asClass = ContentHash.contentHash({ classes: [{ iri: "urn:x", superClasses: [] }], properties: [] })
      const asProperty = ContentHash.contentHash({
        classes: [],
        properties: [{ iri: "urn:x", domain: null, range: null }]
      })
      expect(asClass).not.toBe(asProperty)
    }))
})
