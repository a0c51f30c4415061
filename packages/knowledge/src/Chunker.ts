// Splits a document into bounded, ordered chunks for NER and co-occurrence, keeping exact offsets
// into the original text so every later result can point back at the source.
import type { Chunk } from "./KnowledgeModel.js"
import { InvalidChunkOptions } from "./KnowledgeError.js"

export interface ChunkOptions {
  /** Soft upper bound on a chunk's length in UTF-16 code units; only a single word longer than this exceeds it. */
  readonly maxChars?: number
  /** How many characters of the previous chunk (rounded to whole words) the next chunk repeats. */
  readonly overlap?: number
}

const Paragraph = 3
const Sentence = 2
const Word = 1

// Words ending in "." that rarely end a sentence; a cut after them would split "Dr. Ada Lovelace".
const abbreviations = new Set(["mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "inc", "ltd", "co", "corp", "vs", "etc", "e.g", "i.e", "no", "gen", "sen", "rep", "gov"])

const sentenceEnd = /(?:^|[^\p{L}\p{N}.])([\p{L}\p{N}.]*)[.!?…]["'”’)\]]*$/u

// Rank of cutting at `at` (the first whitespace character of a run that ends at `runEnd`).
const rank = (text: string, at: number, runEnd: number): number => {
  const run = text.slice(at, runEnd)
  if (run.indexOf("\n") !== run.lastIndexOf("\n")) return Paragraph
  const tail = sentenceEnd.exec(text.slice(Math.max(0, at - 24), at))
  if (tail === null) return Word
  const word = tail[1]
  return abbreviations.has(word.toLowerCase()) || /^\p{Lu}$/u.test(word) ? Word : Sentence
}

const nextNonSpace = (text: string, from: number): number => {
  const m = /\S/g
  m.lastIndex = from
  return m.exec(text)?.index ?? text.length
}

// A word longer than maxChars: extend the chunk to its end rather than cut it.
const nextWordEnd = (text: string, from: number): number => {
  const m = /\s/g
  m.lastIndex = from
  return m.exec(text)?.index ?? text.trimEnd().length
}

// First word start inside the last `overlap` characters of [start, end), or the next word after `end`.
const overlapStart = (text: string, start: number, end: number, overlap: number): number => {
  const m = /(?<=\s)\S/g
  m.lastIndex = Math.max(start + 1, end - overlap)
  const found = m.exec(text)
  return found !== null && found.index < end ? found.index : nextNonSpace(text, end)
}

const validate = (maxChars: number, overlap: number): void => {
  const fail = (reason: string) => {
    throw new InvalidChunkOptions({ maxChars, overlap, reason })
  }
  if (!Number.isSafeInteger(maxChars) || maxChars < 1) fail("maxChars must be a positive integer")
  if (!Number.isSafeInteger(overlap) || overlap < 0) fail("overlap must be a non-negative integer")
  if (overlap >= maxChars) fail("overlap must be smaller than maxChars")
}

/**
 * Chunk `text` greedily: each chunk is as long as possible up to `maxChars`, cut preferably at a paragraph
 * break, else a sentence end, else between words, as long as the cut keeps at least half of `maxChars`
 * (otherwise the latest cut of any kind wins). Chunks never start or end with whitespace, never cut a word,
 * are ordered, satisfy `text.slice(start, end) === chunk.text`, and together cover every non-whitespace
 * character. The same input always yields the same chunks.
 *
 * @throws InvalidChunkOptions when `maxChars` is not a positive integer or `overlap` is not in `[0, maxChars)`.
 */
export const chunk = (text: string, options: ChunkOptions = {}): ReadonlyArray<Chunk> => {
  const { maxChars = 1000, overlap = 0 } = options
  validate(maxChars, overlap)
  const textEnd = text.trimEnd().length
  const chunks: Array<Chunk> = []
  let start = nextNonSpace(text, 0)
  let previousEnd = start
  while (start < textEnd) {
    const limit = start + maxChars
    let end: number
    if (textEnd <= limit) {
      end = textEnd
    } else {
      // Latest cut per rank; a cut is the first whitespace of a run, so text[start, cut) ends on a word.
      const best = [0, 0, 0, 0]
      const runs = /\s+/g
      runs.lastIndex = start
      for (let m = runs.exec(text); m !== null && m.index <= limit; m = runs.exec(text)) {
        if (m.index > previousEnd) best[rank(text, m.index, runs.lastIndex)] = m.index
      }
      const half = start + Math.ceil(maxChars / 2)
      const cut = [best[Paragraph], best[Sentence], best[Word]].find((at) => at >= half) ?? Math.max(...best)
      if (cut > 0) {
        end = cut
      } else {
        // No cut after the previous chunk fits, so the first word after it runs past `limit`. That word
        // must become a chunk of its own: drop any overlap (repeated words would put whitespace into a
        // chunk longer than maxChars) and extend the chunk to the word's end rather than cut it.
        start = nextNonSpace(text, previousEnd)
        end = nextWordEnd(text, start)
      }
    }
    chunks.push({ index: chunks.length, text: text.slice(start, end), start, end })
    if (end >= textEnd) break
    previousEnd = end
    start = overlap === 0 ? nextNonSpace(text, end) : overlapStart(text, start, end, overlap)
  }
  return chunks
}
