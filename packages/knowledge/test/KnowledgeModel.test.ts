import { describe, expect, it } from "@effect/vitest"
import { OntologyModel } from "@duraflow/ontology"
import { Effect, Either, Schema } from "effect"
import * as Chunker from "../src/Chunker.js"
import * as EntityExtractor from "../src/EntityExtractor.js"
import { IngestDocumentPayload } from "../src/KnowledgeModel.js"
import * as SampleDocuments from "../src/SampleDocuments.js"

const decode = Schema.decodeUnknownEither(IngestDocumentPayload)
const valid = { documentId: "doc-1.v2_final", title: "A title", text: "Some text." }

describe("KnowledgeModel", () => {
  it.effect("accepts a valid ingest payload, with or without ontologyId", () =>
    Effect.sync(() => {
      expect(decode(valid)).toEqual(Either.right(valid))
      expect(decode({ ...valid, ontologyId: "news" })).toEqual(Either.right({ ...valid, ontologyId: "news" }))
    }))

  it.effect("ontologyId follows the ontology app's own OntologyId rule: what it refuses is refused here", () =>
    Effect.sync(() => {
      const ids = ["news", "News_2.v1-x", "bad id", "-lead", ".hidden", "a/b", "ü", "x".repeat(128), "x".repeat(129)]
      for (const ontologyId of ids) {
        const ontologyAccepts = Schema.is(OntologyModel.OntologyId)(ontologyId)
        expect({ ontologyId, accepted: Either.isRight(decode({ ...valid, ontologyId })) }).toEqual({
          ontologyId,
          accepted: ontologyAccepts
        })
      }
      // and the rule is not vacuous
      expect(ids.filter((id) => Either.isRight(decode({ ...valid, ontologyId: id })))).toEqual([
        "news",
        "News_2.v1-x",
        "x".repeat(128)
      ])
    }))

  it.effect("rejects invalid ingest payloads", () =>
    Effect.sync(() => {
      for (
        const invalid of [
          { ...valid, documentId: "" },
          { ...valid, documentId: " doc" },
          { ...valid, documentId: "-doc" },
          { ...valid, documentId: "doc/1" },
          { ...valid, documentId: "d".repeat(129) },
          { ...valid, title: "" },
          { ...valid, title: "   " },
          { ...valid, title: "t".repeat(501) },
          { ...valid, text: "" },
          { ...valid, text: " \n " },
          { ...valid, text: "x".repeat(200_001) },
          { ...valid, ontologyId: "" },
          { ...valid, ontologyId: undefined },
          { documentId: "doc", title: "t" }
        ]
      ) expect(Either.isLeft(decode(invalid))).toBe(true)
    }))

  it.effect("ships valid sample documents in which every entity kind is found several times", () =>
    Effect.sync(() => {
      const documents = SampleDocuments.documents
      expect(documents.length).toBe(8)
      expect(new Set(documents.map((d) => d.documentId)).size).toBe(documents.length)
      const found = { person: new Set<string>(), organization: new Set<string>(), place: new Set<string>() }
      for (const document of documents) {
        expect(Either.isRight(decode(document))).toBe(true)
        const { entities } = EntityExtractor.extract(Chunker.chunk(document.text))
        expect(new Set(entities.map((e) => e.kind)).size).toBe(3)
        for (const entity of entities) found[entity.kind].add(entity.normalized)
      }
      expect(found.person.size).toBeGreaterThanOrEqual(10)
      expect(found.organization.size).toBeGreaterThanOrEqual(10)
      expect(found.place.size).toBeGreaterThanOrEqual(10)
      expect([...found.person]).toEqual(expect.arrayContaining(["ada lovelace", "angela merkel", "marie curie"]))
      expect([...found.organization]).toEqual(expect.arrayContaining(["microsoft", "stanford university", "university of oxford"]))
      expect([...found.place]).toEqual(expect.arrayContaining(["london", "germany", "tokyo"]))
    }))
})
