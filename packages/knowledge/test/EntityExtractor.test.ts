import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Chunker from "../src/Chunker.js"
import * as EntityExtractor from "../src/EntityExtractor.js"

const entitiesOf = (text: string) =>
  EntityExtractor.extract(Chunker.chunk(text)).entities.map(({ kind, name }) => [name, kind])

describe("EntityExtractor", () => {
  it.effect("finds persons and places", () =>
    Effect.sync(() => {
      expect(entitiesOf("Ada Lovelace worked with Charles Babbage in London.")).toEqual([
        ["Ada Lovelace", "person"],
        ["Charles Babbage", "person"],
        ["London", "place"]
      ])
      expect(entitiesOf("Angela Merkel met Emmanuel Macron in Paris.")).toEqual([
        ["Angela Merkel", "person"],
        ["Emmanuel Macron", "person"],
        ["Paris", "place"]
      ])
    }))

  it.effect("finds organizations and splits a list of places", () =>
    Effect.sync(() => {
      expect(entitiesOf("Microsoft opened an office in Berlin, Germany.")).toEqual([
        ["Microsoft", "organization"],
        ["Berlin", "place"],
        ["Germany", "place"]
      ])
      expect(entitiesOf("Researchers from Harvard University and the University of Oxford met IBM in Toronto, Canada.")).toEqual([
        ["Harvard University", "organization"],
        ["University of Oxford", "organization"],
        ["IBM", "organization"],
        ["Toronto", "place"],
        ["Canada", "place"]
      ])
    }))

  it.effect("handles honorifics, possessives, line breaks and accents", () =>
    Effect.sync(() => {
      const { entities, mentions } = EntityExtractor.extract(
        Chunker.chunk("Dr. Ada\nLovelace's notes reached José García in Madrid.")
      )
      expect(entities).toEqual([
        { name: "Ada Lovelace", kind: "person", normalized: "ada lovelace" },
        { name: "José García", kind: "person", normalized: "jose garcia" },
        { name: "Madrid", kind: "place", normalized: "madrid" }
      ])
      expect(mentions[0]).toEqual({ entity: "ada lovelace", chunkIndex: 0, start: 4, end: 16 })
    }))

  it.effect("de-duplicates entities across chunks with mentions pointing into the original text", () =>
    Effect.sync(() => {
      const text = [
        "Ada Lovelace worked with Charles Babbage in London.",
        "Microsoft opened an office in Berlin, Germany.",
        "Years later, Ada Lovelace was remembered in London and Berlin.",
        "Angela Merkel met Emmanuel Macron in Paris."
      ].join("\n\n")
      const chunks = Chunker.chunk(text, { maxChars: 70 })
      expect(chunks.length).toBe(4)
      const { entities, mentions } = EntityExtractor.extract(chunks)
      expect(entities.map((e) => e.normalized)).toEqual([
        "ada lovelace", "charles babbage", "london", "microsoft", "berlin", "germany",
        "angela merkel", "emmanuel macron", "paris"
      ])
      expect(new Set(entities.map((e) => e.normalized)).size).toBe(entities.length)
      const byEntity = (key: string) => mentions.filter((m) => m.entity === key)
      expect(byEntity("ada lovelace").map((m) => m.chunkIndex)).toEqual([0, 2])
      expect(byEntity("london").map((m) => m.chunkIndex)).toEqual([0, 2])
      expect(byEntity("berlin").map((m) => m.chunkIndex)).toEqual([1, 2])
      expect(byEntity("ada lovelace")[1]!.start).toBe(text.lastIndexOf("Ada Lovelace"))
      const names = new Map(entities.map((e) => [e.normalized, e.name]))
      for (const mention of mentions) {
        expect(text.slice(mention.start, mention.end)).toBe(names.get(mention.entity))
        const chunk = chunks[mention.chunkIndex]!
        expect(mention.start).toBeGreaterThanOrEqual(chunk.start)
        expect(mention.end).toBeLessThanOrEqual(chunk.end)
      }
      expect(EntityExtractor.extract(chunks)).toEqual({ entities, mentions })
    }))

  it.effect("resolves conflicting kinds by majority, ties going to the first mention", () =>
    Effect.sync(() => {
      const kindsOf = (text: string) => EntityExtractor.detect(text).map((span) => span.kind)
      // the tagger reads "Jordan" as a person three times and as a place once
      const majority = "Jordan visited Jordan. Paris Hilton stayed in Paris. Mr. Jordan flew to Jordan."
      expect(kindsOf(majority)).toEqual(["person", "person", "person", "place", "person", "place"])
      const fromMajority = EntityExtractor.extract(Chunker.chunk(majority)).entities
      expect(fromMajority.find((e) => e.normalized === "jordan")?.kind).toBe("person")
      // once as a place, then once as a person
      const tie = "They flew to Jordan. Mr. Jordan waited."
      expect(kindsOf(tie)).toEqual(["place", "person"])
      const fromTie = EntityExtractor.extract(Chunker.chunk(tie, { maxChars: 25 }))
      expect(fromTie.entities).toEqual([{ name: "Jordan", kind: "place", normalized: "jordan" }])
      expect(fromTie.mentions.map((m) => m.chunkIndex)).toEqual([0, 1])
    }))

  it.effect("normalizes names into de-duplication keys", () =>
    Effect.sync(() => {
      expect(EntityExtractor.normalize("  Ada   Lovelace ")).toBe("ada lovelace")
      expect(EntityExtractor.normalize("José García")).toBe("jose garcia")
      expect(EntityExtractor.normalize("Conan O’Brien")).toBe("conan o'brien")
    }))
})
