import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Chunker from "../src/Chunker.js"
import * as CoOccurrence from "../src/CoOccurrence.js"
import * as EntityExtractor from "../src/EntityExtractor.js"
import type { Mention } from "../src/KnowledgeModel.js"

const mention = (entity: string, chunkIndex: number): Mention => ({ entity, chunkIndex, start: 0, end: 1 })

describe("CoOccurrence", () => {
  it.effect("weights a pair by the number of chunks it shares, counting each chunk once", () =>
    Effect.sync(() => {
      const relations = CoOccurrence.relations([
        mention("london", 0), mention("ada lovelace", 0), mention("london", 0), mention("charles babbage", 0),
        mention("london", 1), mention("charles babbage", 1),
        mention("paris", 2),
        mention("ada lovelace", 3), mention("london", 3), mention("ada lovelace", 3)
      ])
      expect(relations).toEqual([
        { source: "ada lovelace", target: "charles babbage", chunkIndex: 0, weight: 1 },
        { source: "ada lovelace", target: "london", chunkIndex: 0, weight: 2 },
        { source: "charles babbage", target: "london", chunkIndex: 0, weight: 2 }
      ])
    }))

  it.effect("is undirected and independent of mention order", () =>
    Effect.sync(() => {
      const mentions = [mention("b", 4), mention("a", 4), mention("c", 2), mention("a", 2), mention("b", 7), mention("a", 7)]
      const expected = [
        { source: "a", target: "b", chunkIndex: 4, weight: 2 },
        { source: "a", target: "c", chunkIndex: 2, weight: 1 }
      ]
      expect(CoOccurrence.relations(mentions)).toEqual(expected)
      expect(CoOccurrence.relations([...mentions].reverse())).toEqual(expected)
      expect(CoOccurrence.relations([])).toEqual([])
    }))

  it.effect("relates entities extracted from the same chunk", () =>
    Effect.sync(() => {
      const text = "Ada Lovelace worked with Charles Babbage in London.\n\nAngela Merkel met Emmanuel Macron in London."
      const { mentions } = EntityExtractor.extract(Chunker.chunk(text, { maxChars: 60 }))
      const relations = CoOccurrence.relations(mentions)
      expect(relations.map(({ source, target, weight }) => `${source}|${target}|${weight}`)).toEqual([
        "ada lovelace|charles babbage|1",
        "ada lovelace|london|1",
        "angela merkel|emmanuel macron|1",
        "angela merkel|london|1",
        "charles babbage|london|1",
        "emmanuel macron|london|1"
      ])
      for (const { source, target } of relations) expect(source < target).toBe(true)
    }))
})
