// Named-entity extraction over chunks: finds persons, organizations and places, de-duplicates them per
// document and records every mention with offsets into the original text.
//
// Library choice: `compromise` (rule-based, lexicon + tagger shipped inside the npm package, no model download).
// `wink-nlp` + `wink-eng-lite-web-model` was evaluated on the same news-like sentences ("Ada Lovelace worked with
// Charles Babbage in London.", "Microsoft opened an office in Berlin, Germany.", "Angela Merkel met Emmanuel
// Macron in Paris.") and returned no person/organization/place entities at all: its lite model's NER only covers
// dates, times, money, quantities, e-mails, URLs and the like. compromise found every person, organization and
// place in them, plus universities ("University of Oxford", "Harvard University"). Known limits, which callers
// should expect: less common names the lexicon does not know (e.g. "Satya Nadella") and ambiguous company names
// ("Apple", "Amazon") are often missed, and a possessive ("Lovelace's") hides the name from the tagger, which
// `prepare` works around.
import nlp from "compromise"
import { Schema } from "effect"
import type { Chunk, EntityKind, ExtractedEntity, Mention } from "./KnowledgeModel.js"

export interface Extraction {
  readonly entities: ReadonlyArray<ExtractedEntity>
  readonly mentions: ReadonlyArray<Mention>
}

// The slice of compromise's `.json({ offset: true, terms: { offset: true } })` output we rely on.
const Matches = Schema.Array(
  Schema.Struct({
    terms: Schema.Array(
      Schema.Struct({
        post: Schema.String,
        tags: Schema.Array(Schema.String),
        offset: Schema.Struct({ start: Schema.Number, length: Schema.Number })
      })
    )
  })
)
const decodeMatches = Schema.decodeUnknownSync(Matches)

type Doc = ReturnType<typeof nlp>

// Order also breaks ties between overlapping spans of equal length.
const views: ReadonlyArray<readonly [EntityKind, (doc: Doc) => { json: (options: object) => unknown }]> = [
  ["organization", (doc) => doc.organizations()],
  ["person", (doc) => doc.people()],
  ["place", (doc) => doc.places()]
]

const contractions = new Set(["it", "he", "she", "that", "there", "here", "what", "who", "where", "when", "why", "how", "let"])

/**
 * Length-preserving clean-up so compromise's offsets stay valid for the original text: blank out the "'s" of
 * capitalised possessives ("Lovelace's" → "Lovelace  ") and turn single line breaks inside a paragraph into
 * spaces (hard-wrapped text would otherwise split "Ada\nLovelace").
 */
const prepare = (text: string): string =>
  text
    .replace(/(?<![\p{L}\p{M}])(\p{Lu}[\p{L}\p{M}]*)['’]s(?![\p{L}\p{M}\p{N}])/gu, (match, word: string) =>
      contractions.has(word.toLowerCase()) ? match : `${word}  `)
    .replace(/(?<=\S[^\S\n]*)\n(?=[^\S\n]*\S)/g, " ")

/** The de-duplication key: Unicode-folded, accent-free, lowercase, single-spaced. */
export const normalize = (name: string): string =>
  name
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .replace(/[‘’]/g, "'")
    .toLowerCase()
    .replace(/\s+/g, " ")
    .trim()

export interface Span {
  readonly kind: EntityKind
  readonly start: number
  readonly end: number
}

// compromise groups lists ("Berlin, Germany", "Toyota Motor Corporation, Sony Group") into one match:
// split at separating punctuation, and drop honorifics so "Dr. John Smith" and "John Smith" are one person.
const spansOf = (kind: EntityKind, matches: typeof Matches.Type): Array<Span> =>
  matches.flatMap(({ terms }) => {
    const spans: Array<Span> = []
    let current: { start: number; end: number } | undefined
    for (const term of terms) {
      if (current === undefined && term.tags.includes("Honorific")) continue
      const end = term.offset.start + term.offset.length
      current = current === undefined ? { start: term.offset.start, end } : { start: current.start, end }
      if (/[,;:()[\]"“”]/.test(term.post)) {
        spans.push({ kind, ...current })
        current = undefined
      }
    }
    if (current !== undefined) spans.push({ kind, ...current })
    return spans
  })

/** Entity spans of one text, chunk-relative, ordered, without overlaps (longest span wins). */
export const detect = (text: string): ReadonlyArray<Span> => {
  const doc = nlp(prepare(text))
  const candidates = views
    .flatMap(([kind, view]) => spansOf(kind, decodeMatches(view(doc).json({ offset: true, terms: { offset: true } }))))
    .filter((span) => span.end > span.start && /\p{L}/u.test(text.slice(span.start, span.end)))
    // Stable sort: equal spans keep the `views` order.
    .sort((a, b) => a.start - b.start || b.end - a.end)
  const kept: Array<Span> = []
  for (const span of candidates) {
    const last = kept[kept.length - 1]
    if (last === undefined || span.start >= last.end) kept.push(span)
  }
  return kept
}

/**
 * Run NER on every chunk and merge the results per document.
 *
 * - Entities are de-duplicated by `normalize(name)`; one entity per key, ordered by first appearance in the
 *   document. Its `name` is the whitespace-normalised surface text of its first mention.
 * - If the tagger gives one key different kinds in different places, the most frequent kind wins; a tie goes to
 *   the kind of the first mention.
 * - Mentions are ordered by chunk then offset, with `start`/`end` into the original document (chunk offsets
 *   added back). With overlapping chunks a name inside the overlap is mentioned once per chunk containing it,
 *   which is what co-occurrence per chunk needs.
 */
export const extract = (chunks: ReadonlyArray<Chunk>): Extraction => {
  const found: Array<Mention & { readonly kind: EntityKind; readonly name: string }> = []
  for (const chunk of chunks) {
    for (const span of detect(chunk.text)) {
      const name = chunk.text.slice(span.start, span.end).replace(/\s+/g, " ")
      found.push({
        entity: normalize(name),
        kind: span.kind,
        name,
        chunkIndex: chunk.index,
        start: chunk.start + span.start,
        end: chunk.start + span.end
      })
    }
  }
  const byKey = new Map<string, Array<(typeof found)[number]>>()
  for (const mention of [...found].sort((a, b) => a.start - b.start || a.chunkIndex - b.chunkIndex)) {
    const group = byKey.get(mention.entity)
    if (group === undefined) byKey.set(mention.entity, [mention])
    else group.push(mention)
  }
  const entities = Array.from(byKey, ([normalized, group]): ExtractedEntity => {
    const counts = new Map<EntityKind, number>()
    for (const { kind } of group) counts.set(kind, (counts.get(kind) ?? 0) + 1)
    const top = Math.max(...counts.values())
    const first = group.find(({ kind }) => counts.get(kind) === top)!
    return { name: first.name, kind: first.kind, normalized }
  })
  const mentions = found.map(({ entity, chunkIndex, start, end }): Mention => ({ entity, chunkIndex, start, end }))
  return { entities, mentions }
}
