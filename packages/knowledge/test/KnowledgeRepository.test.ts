import { SqlClient } from "@effect/sql"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as Chunker from "../src/Chunker.js"
import * as CoOccurrence from "../src/CoOccurrence.js"
import * as EntityExtractor from "../src/EntityExtractor.js"
import * as KnowledgeDomain from "../src/KnowledgeDomain.js"
import type { EntityKind, IndexedDocument, IngestDocumentPayload } from "../src/KnowledgeModel.js"
import * as KnowledgeRepository from "../src/KnowledgeRepository.js"
import * as SampleDocuments from "../src/SampleDocuments.js"

// Fake ontology classes: organizations and places get local names that differ from their kind, so matching
// by local name and by kind can be told apart; places use a "/"-style IRI.
const classIris: Record<EntityKind, string> = {
  person: "https://example.org/onto#Person",
  organization: "https://example.org/onto#Company",
  place: "https://example.org/geo/Location"
}

const indexed = (
  document: IngestDocumentPayload,
  options: Chunker.ChunkOptions = { maxChars: 120 },
  classIri: (kind: EntityKind) => string | null = (kind) => classIris[kind]
): IndexedDocument => {
  const chunks = Chunker.chunk(document.text, options)
  const { entities, mentions } = EntityExtractor.extract(chunks)
  return {
    document,
    chunks,
    entities: entities.map((e) => ({ ...e, classIri: classIri(e.kind) })),
    mentions,
    relations: CoOccurrence.relations(mentions)
  }
}

const { tables } = KnowledgeDomain

const counts = (documentId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const count = (table: string, column = "document_id") =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(table)} WHERE ${sql(column)} = ${documentId}`.pipe(
        Effect.map((rows) => rows[0]!.n)
      )
    return {
      documents: yield* count(tables.documents, "id"),
      chunks: yield* count(tables.chunks),
      entities: yield* count(tables.entities),
      mentions: yield* count(tables.mentions),
      relations: yield* count(tables.relations)
    }
  })

const relationNames = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ relname: string; relkind: string }>`SELECT c.relname, c.relkind::text AS relkind FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' ORDER BY c.relname`)

const TestLayer = Layer.provideMerge(KnowledgeRepository.layer, TestDatabase.layer("knowledge_repository"))

describe("KnowledgeRepository", () => {
  layer(TestLayer, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("migrations create only knowledge_* relations", () =>
      Effect.gen(function*() {
        const applied = yield* KnowledgeDomain.migrate
        expect(applied.map((m) => m.id)).toEqual([1])
        expect(yield* KnowledgeDomain.migrate).toEqual([])
        const relations = yield* relationNames
        expect(relations.filter((r) => r.relkind === "r").map((r) => r.relname)).toEqual([
          "knowledge_chunks",
          "knowledge_documents",
          "knowledge_entities",
          "knowledge_mentions",
          "knowledge_migrations",
          "knowledge_relations"
        ])
        // tables, indexes (including primary keys) and anything else the migration created
        expect(relations.length).toBeGreaterThan(6)
        for (const { relname } of relations) expect(relname).toMatch(/^knowledge_/)
      }))

    it.effect("stores a sample document in every table and reads it back", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const input = indexed(SampleDocuments.documents[0]!)
        const id = input.document.documentId
        expect(input.chunks.length).toBeGreaterThan(1)
        expect(input.relations.length).toBeGreaterThan(0)

        const sql = yield* SqlClient.SqlClient
        // the database's clock, in the view's format: indexedAt must fall between these two readings
        const dbNow = sql<{ now: string }>`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS now`.pipe(Effect.map((rows) => rows[0]!.now))
        const before = yield* dbNow
        expect(yield* repo.saveIndexedDocument(input)).toEqual({ created: true, replaced: false })
        const after = yield* dbNow
        expect(yield* counts(id)).toEqual({
          documents: 1,
          chunks: input.chunks.length,
          entities: input.entities.length,
          mentions: input.mentions.length,
          relations: input.relations.length
        })

        const [row] = yield* sql<{ content_hash: string; status: string; text: string }>`
          SELECT content_hash, status, text FROM ${sql(tables.documents)} WHERE id = ${id}`
        expect(row).toEqual({
          content_hash: KnowledgeRepository.contentHash(input.document.text),
          status: "indexed",
          text: input.document.text
        })
        const chunks = yield* sql<{ index: number; start_offset: number; end_offset: number; text: string }>`
          SELECT index, start_offset, end_offset, text FROM ${sql(tables.chunks)} WHERE document_id = ${id} ORDER BY index`
        expect(chunks.map((c) => ({ index: c.index, start: c.start_offset, end: c.end_offset, text: c.text })))
          .toEqual(input.chunks)

        const view = Option.getOrThrow(yield* repo.getDocument(id))
        const mentionsOf = (key: string) => input.mentions.filter((m) => m.entity === key).length
        expect(view).toEqual({
          documentId: id,
          title: input.document.title,
          ontologyId: null,
          status: "indexed",
          indexedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
          chunkCount: input.chunks.length,
          // extractor order is first appearance, as is the view's
          entities: input.entities.map((e) => ({
            name: e.name,
            kind: e.kind,
            classIri: classIris[e.kind],
            mentions: mentionsOf(e.normalized)
          }))
        })
        // same fixed-width ISO format, so string order is time order
        expect(view.indexedAt >= before && view.indexedAt <= after, `${before} <= ${view.indexedAt} <= ${after}`).toBe(true)
        expect(view.entities.map((e) => e.name)).toEqual(
          expect.arrayContaining(["Ada Lovelace", "Charles Babbage", "London", "University of Oxford"])
        )
      }))

    it.effect("saving the same document again writes nothing", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const input = indexed(SampleDocuments.documents[0]!)
        const id = input.document.documentId
        yield* repo.saveIndexedDocument(input)
        const before = yield* counts(id)
        const viewBefore = yield* repo.getDocument(id)

        expect(yield* repo.saveIndexedDocument(input)).toEqual({ created: false, replaced: false })
        expect(yield* counts(id)).toEqual(before)
        expect(yield* repo.getDocument(id)).toEqual(viewBefore)
      }))

    it.effect("new content for a known document id replaces its whole index: no stale chunk, entity or mention", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const sql = yield* SqlClient.SqlClient
        const [first, second] = [SampleDocuments.documents[0]!, SampleDocuments.documents[2]!]
        const original = indexed({ ...first, documentId: "replaced-doc" })
        const revised = indexed({ ...second, documentId: "replaced-doc", title: "Revised", ontologyId: "news" }, {
          maxChars: 60
        })
        const keys = (input: IndexedDocument) => new Set(input.entities.map((e) => e.normalized))
        const gone = [...keys(original)].filter((k) => !keys(revised).has(k))
        expect(gone.length).toBeGreaterThan(0) // the texts name different entities: staleness would show

        expect(yield* repo.saveIndexedDocument(original)).toEqual({ created: true, replaced: false })
        expect(yield* repo.saveIndexedDocument(revised)).toEqual({ created: true, replaced: true })
        expect(yield* counts("replaced-doc")).toEqual({
          documents: 1,
          chunks: revised.chunks.length,
          entities: revised.entities.length,
          mentions: revised.mentions.length,
          relations: revised.relations.length
        })
        const view = Option.getOrThrow(yield* repo.getDocument("replaced-doc"))
        expect(view).toMatchObject({ title: "Revised", ontologyId: "news", chunkCount: revised.chunks.length })
        expect(view.entities.map((e) => e.name)).toEqual(revised.entities.map((e) => e.name))
        const [row] = yield* sql<{ text: string; content_hash: string }>`
          SELECT text, content_hash FROM ${sql(tables.documents)} WHERE id = 'replaced-doc'`
        expect(row).toEqual({ text: second.text, content_hash: KnowledgeRepository.contentHash(second.text) })
        const stale = yield* sql<{ entity_key: string }>`SELECT entity_key FROM ${sql(tables.entities)}
          WHERE document_id = 'replaced-doc' AND entity_key IN ${sql.in(gone)}`
        expect(stale).toEqual([])

        // the revised content again is idempotent; a change of title alone is new content too
        expect(yield* repo.saveIndexedDocument(revised)).toEqual({ created: false, replaced: false })
        const retitled = { ...revised, document: { ...revised.document, title: "Retitled" } }
        expect(yield* repo.saveIndexedDocument(retitled)).toEqual({ created: true, replaced: true })
        expect(Option.map(yield* repo.getDocument("replaced-doc"), (d) => d.title)).toEqual(Option.some("Retitled"))
        // later tests count entities across all documents: leave none behind
        yield* sql`DELETE FROM ${sql(tables.documents)} WHERE id = 'replaced-doc'`
      }))

    it.effect("concurrent saves of a new document store exactly one copy", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const input = indexed({ ...SampleDocuments.documents[1]!, ontologyId: "news" })
        const id = input.document.documentId
        const results = yield* Effect.all(
          Array.from({ length: 4 }, () => repo.saveIndexedDocument(input)),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r.created)).toHaveLength(1)
        expect(yield* counts(id)).toEqual({
          documents: 1,
          chunks: input.chunks.length,
          entities: input.entities.length,
          mentions: input.mentions.length,
          relations: input.relations.length
        })
        const view = Option.getOrThrow(yield* repo.getDocument(id))
        expect(view.ontologyId).toBe("news")
        expect(view.entities).toHaveLength(input.entities.length)
      }))

    it.effect("finds entities by class IRI, local name, kind and name substring", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const first = indexed(SampleDocuments.documents[0]!)
        const second = indexed(SampleDocuments.documents[1]!)
        yield* repo.saveIndexedDocument(first)
        yield* repo.saveIndexedDocument(second)
        const all = [...first.entities, ...second.entities]
        const keysOf = (kind: EntityKind) => all.filter((e) => e.kind === kind).map((e) => e.normalized).sort()
        const keys = (views: ReadonlyArray<{ entityKey: string }>) => views.map((v) => v.entityKey).sort()

        const persons = yield* repo.findEntities({ type: "https://example.org/onto#Person" })
        expect(keys(persons)).toEqual(keysOf("person"))
        expect(persons.every((p) => p.kind === "person" && p.classIri === classIris.person)).toBe(true)
        expect(keys(yield* repo.findEntities({ type: "person" }))).toEqual(keysOf("person"))
        expect(keys(yield* repo.findEntities({ type: "PERSON" }))).toEqual(keysOf("person"))

        // organizations: by kind, by local name "Company" (any case), by full IRI
        expect(keys(yield* repo.findEntities({ type: "organization" }))).toEqual(keysOf("organization"))
        expect(keys(yield* repo.findEntities({ type: "company" }))).toEqual(keysOf("organization"))
        expect(keys(yield* repo.findEntities({ type: classIris.organization }))).toEqual(keysOf("organization"))
        // places: local name after the last "/"
        expect(keys(yield* repo.findEntities({ type: "location" }))).toEqual(keysOf("place"))
        expect(yield* repo.findEntities({ type: "https://example.org/onto#Nothing" })).toEqual([])
        expect(yield* repo.findEntities({ type: "example.org" })).toEqual([])

        const byName = yield* repo.findEntities({ q: "LOVE" })
        expect(byName).toEqual([{
          name: "Ada Lovelace",
          entityKey: "ada lovelace",
          kind: "person",
          classIri: classIris.person,
          documents: [first.document.documentId],
          mentions: 1
        }])
        const universities = all.filter((e) => /university/i.test(e.name)).map((e) => e.normalized).sort()
        expect(universities).toEqual(expect.arrayContaining(["harvard university", "university of oxford"]))
        expect(keys(yield* repo.findEntities({ q: "university" }))).toEqual(universities)
        expect(keys(yield* repo.findEntities({ q: "university", type: "company" }))).toEqual(universities)
        expect(yield* repo.findEntities({ q: "university", type: "person" })).toEqual([])
        // LIKE wildcards in q are literal
        expect(yield* repo.findEntities({ q: "%" })).toEqual([])
        expect(yield* repo.findEntities({ q: "_" })).toEqual([])

        const everything = yield* repo.findEntities({ q: "  ", type: "" })
        expect(keys(everything)).toEqual([...new Set(all.map((e) => e.normalized))].sort())
        expect(yield* repo.findEntities({ limit: 3 })).toEqual(everything.slice(0, 3))
        expect(yield* repo.findEntities({ limit: 0 })).toHaveLength(1)
        // ordered by mentions, descending
        const mentions = everything.map((e) => e.mentions)
        expect(mentions).toEqual([...mentions].sort((a, b) => b - a))
      }))

    it.effect("aggregates an entity across documents", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const text = "Ada Lovelace met Charles Babbage in London. Later Ada Lovelace wrote to him."
        yield* repo.saveIndexedDocument(indexed({ documentId: "agg-1", title: "One", text }))
        yield* repo.saveIndexedDocument(indexed({ documentId: "agg-2", title: "Two", text: "Ada Lovelace lived in London." }))
        // same key, but untyped: a separate group
        yield* repo.saveIndexedDocument(
          indexed({ documentId: "agg-3", title: "Three", text: "Ada Lovelace was born in London." }, undefined, () => null)
        )
        const found = yield* repo.findEntities({ q: "ada lovelace" })
        expect(found).toEqual([
          {
            name: "Ada Lovelace",
            entityKey: "ada lovelace",
            kind: "person",
            classIri: classIris.person,
            documents: ["agg-1", "agg-2", "analytical-engine"],
            mentions: 4
          },
          {
            name: "Ada Lovelace",
            entityKey: "ada lovelace",
            kind: "person",
            classIri: null,
            documents: ["agg-3"],
            mentions: 1
          }
        ])
        const untyped = yield* repo.getDocument("agg-3")
        expect(Option.getOrThrow(untyped).entities.every((e) => e.classIri === null)).toBe(true)
      }))

    it.effect("overlapping chunks: a span mentioned from two chunks is stored per chunk, counted once", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const input = indexed(
          { ...SampleDocuments.documents[0]!, documentId: "overlapping" },
          { maxChars: 80, overlap: 40 }
        )
        const spans = new Set(input.mentions.map((m) => `${m.entity}@${m.start}-${m.end}`))
        expect(spans.size).toBeLessThan(input.mentions.length)
        expect(yield* repo.saveIndexedDocument(input)).toEqual({ created: true, replaced: false })
        expect((yield* counts("overlapping")).mentions).toBe(input.mentions.length)
        const view = Option.getOrThrow(yield* repo.getDocument("overlapping"))
        expect(view.entities.reduce((n, e) => n + e.mentions, 0)).toBe(spans.size)
      }))

    it.effect("bulk inserts stay under Postgres' parameter limit for large documents", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        // 14,000 one-word chunks × 5 columns = 70,000 values: more than one statement can bind
        const text = Array.from({ length: 14_000 }, (_, i) => `w${i % 10}`).join(" ")
        const document = { documentId: "large", title: "Large", text }
        const chunks = Chunker.chunk(text, { maxChars: 2 })
        expect(chunks).toHaveLength(14_000)
        const result = yield* repo.saveIndexedDocument({ document, chunks, entities: [], mentions: [], relations: [] })
        expect(result).toEqual({ created: true, replaced: false })
        expect(yield* counts("large")).toEqual({ documents: 1, chunks: 14_000, entities: 0, mentions: 0, relations: 0 })
        expect(Option.getOrThrow(yield* repo.getDocument("large"))).toMatchObject({ chunkCount: 14_000, entities: [] })
      }))

    it.effect("a failed save rolls back completely", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        const input = indexed({ ...SampleDocuments.documents[2]!, documentId: "broken" })
        // a mention of an entity that was not saved violates the foreign key
        const error = yield* Effect.flip(repo.saveIndexedDocument({
          ...input,
          mentions: [...input.mentions, { entity: "nobody", chunkIndex: 0, start: 0, end: 1 }]
        }))
        expect(error._tag).toBe("SqlError")
        expect(yield* counts("broken")).toEqual({ documents: 0, chunks: 0, entities: 0, mentions: 0, relations: 0 })
        expect(yield* repo.getDocument("broken")).toEqual(Option.none())
        // and the id is still free
        expect(yield* repo.saveIndexedDocument(input)).toEqual({ created: true, replaced: false })
      }))

    it.effect("an unknown document is None", () =>
      Effect.gen(function*() {
        yield* KnowledgeDomain.migrate
        const repo = yield* KnowledgeRepository.KnowledgeRepository
        expect(yield* repo.getDocument("no-such-document")).toEqual(Option.none())
      }))
  })
})
