import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as ContentHash from "../src/ContentHash.js"
import * as OntologyModel from "../src/OntologyModel.js"
import * as SampleOntology from "../src/SampleOntology.js"
import * as TurtleParser from "../src/TurtleParser.js"

const decodePayload = Schema.decodeUnknownEither(OntologyModel.PublishOntologyPayload)

describe("OntologyModel.PublishOntologyPayload", () => {
  it("accepts a well-formed payload", () => {
    expect(decodePayload({ ontologyId: "news.v2_en-GB", turtle: SampleOntology.turtle })).toEqual(
      Either.right({ ontologyId: "news.v2_en-GB", turtle: SampleOntology.turtle })
    )
  })

  it("rejects ontology ids that are empty, padded, oddly shaped or too long", () => {
    for (const ontologyId of ["", " news", "news ", "-news", ".news", "news/v1", "news v1", "a".repeat(129)]) {
      expect(Either.isLeft(decodePayload({ ontologyId, turtle: "x" })), ontologyId).toBe(true)
    }
    expect(Either.isRight(decodePayload({ ontologyId: "a".repeat(128), turtle: "x" }))).toBe(true)
  })

  it("rejects empty Turtle and Turtle over 1 MiB of UTF-8", () => {
    expect(Either.isLeft(decodePayload({ ontologyId: "news", turtle: "" }))).toBe(true)
    const limit = OntologyModel.MaxTurtleBytes
    expect(Either.isRight(decodePayload({ ontologyId: "news", turtle: "a".repeat(limit) }))).toBe(true)
    expect(Either.isLeft(decodePayload({ ontologyId: "news", turtle: "a".repeat(limit + 1) }))).toBe(true)
    // Measured in bytes, not characters: 'é' is two bytes.
    expect(Either.isLeft(decodePayload({ ontologyId: "news", turtle: "é".repeat(limit / 2 + 1) }))).toBe(true)
  })
})

describe("OntologyModel.OntologyView", () => {
  it.effect("round-trips a parsed ontology through JSON", () =>
    Effect.gen(function*() {
      const parsed = yield* TurtleParser.parse(SampleOntology.turtle)
      const view: OntologyModel.OntologyView = {
        ontologyId: "news",
        version: 1,
        contentHash: ContentHash.contentHash(parsed),
        ...parsed
      }
      const json = JSON.parse(JSON.stringify(yield* Schema.encode(OntologyModel.OntologyView)(view)))
      expect(yield* Schema.decodeUnknown(OntologyModel.OntologyView)(json)).toEqual(view)
    }))

  it("rejects a non-positive version and a malformed hash", () => {
    const decode = Schema.decodeUnknownEither(OntologyModel.OntologyView)
    const view = { ontologyId: "news", version: 1, contentHash: "a".repeat(64), classes: [], properties: [] }
    expect(Either.isRight(decode(view))).toBe(true)
    expect(Either.isLeft(decode({ ...view, version: 0 }))).toBe(true)
    expect(Either.isLeft(decode({ ...view, version: 1.5 }))).toBe(true)
    expect(Either.isLeft(decode({ ...view, contentHash: "ABC" }))).toBe(true)
  })
})
