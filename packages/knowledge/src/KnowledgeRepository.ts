// Persistence of indexed documents: stores an ingest run's chunks, typed entities, mentions and relations in
// one transaction (the same content again writes nothing; new content replaces the document's old index) and
// answers the read queries the API needs. Only `knowledge_*`
// tables are touched; entity typing (ontology class IRIs) is whatever the caller passed in.
import { SqlClient, type SqlError } from "@effect/sql"
import { createHash } from "node:crypto"
import { Array as Arr, Effect, Option } from "effect"
import { tables } from "./KnowledgeDomain.js"
import {
  DefaultEntityLimit,
  type DocumentView,
  type EntityKind,
  type EntityView,
  type IndexedDocument,
  MaxEntityLimit
} from "./KnowledgeModel.js"

/** Rows per INSERT: 1000 rows × at most 5 columns stays far below Postgres' 65535 bind parameters. */
export const BatchSize = 1000

export interface FindEntitiesQuery {
  /** Exact class IRI, or its local name (after the last `#` or `/`, case-insensitive), or an entity kind. */
  readonly type?: string | undefined
  /** Case-insensitive substring of the entity's name. */
  readonly q?: string | undefined
  /** Default `DefaultEntityLimit` (50); clamped to [1, `MaxEntityLimit` (500)]. */
  readonly limit?: number | undefined
}

/** Lower-case hex sha256 of the document text (UTF-8), stored as `content_hash`. */
export const contentHash = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex")

/** `limit` as used by `findEntities`: an integer in [1, MaxEntityLimit], DefaultEntityLimit when absent or NaN. */
export const clampLimit = (limit: number | undefined): number =>
  limit === undefined || Number.isNaN(limit)
    ? DefaultEntityLimit
    : Math.min(MaxEntityLimit, Math.max(1, Math.trunc(limit)))

/** Escapes LIKE wildcards so user input is matched literally (Postgres' default escape is `\`). */
const likeContains = (q: string): string => `%${q.replace(/[\\%_]/g, "\\$&")}%`

// ISO 8601 UTC with milliseconds, identical to Date.prototype.toISOString, independent of the pg type parsers.
const isoUtc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

interface DocumentRow {
  readonly id: string
  readonly title: string
  readonly ontology_id: string | null
  readonly status: "indexed"
  readonly indexed_at: string
  readonly chunk_count: number
}

interface DocumentEntityRow {
  readonly name: string
  readonly kind: EntityKind
  readonly class_iri: string | null
  readonly mentions: number
}

interface EntityRow {
  readonly name: string
  readonly entity_key: string
  readonly kind: EntityKind
  readonly class_iri: string | null
  readonly documents: ReadonlyArray<string>
  readonly mentions: number
}

export const make = Effect.gen(function*() {
  // Column names are snake_case in SQL and mapped by hand, so a client configured with name transforms
  // must not rewrite them.
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()

  const insertAll = (table: string, rows: ReadonlyArray<Record<string, unknown>>) =>
    Effect.forEach(
      Arr.chunksOf(rows, BatchSize),
      (batch) => sql`INSERT INTO ${sql(table)} ${sql.insert(batch)}`,
      { discard: true }
    )

  /**
   * Stores a fully indexed document in ONE transaction. The same content (text, title, ontology) as the stored
   * copy writes nothing (`created` false). New content for a known document id REPLACES it: its old chunks,
   * entities, mentions and relations are deleted and the new ones written (`replaced` true), so no stale entity
   * survives. Concurrent saves of one id are serialized by the document row's lock; the last to commit wins.
   */
  const saveIndexedDocument = (
    input: IndexedDocument
  ): Effect.Effect<{ readonly created: boolean; readonly replaced: boolean }, SqlError.SqlError> =>
    sql.withTransaction(Effect.gen(function*() {
      const { document } = input
      const documentId = document.documentId
      const hash = contentHash(document.text)
      const ontologyId = document.ontologyId ?? null
      // ON CONFLICT waits for a concurrent transaction inserting the same id; the row is then ours to lock
      const inserted = yield* sql<{ id: string }>`INSERT INTO ${sql(tables.documents)} ${
        sql.insert({
          id: documentId,
          title: document.title,
          text: document.text,
          ontology_id: ontologyId,
          content_hash: hash,
          status: "indexed"
        })
      } ON CONFLICT (id) DO NOTHING RETURNING id`
      let replaced = false
      if (inserted.length === 0) {
        const [stored] = yield* sql<{ content_hash: string; title: string; ontology_id: string | null }>`
          SELECT content_hash, title, ontology_id FROM ${sql(tables.documents)} WHERE id = ${documentId} FOR UPDATE`
        if (stored?.content_hash === hash && stored.title === document.title && stored.ontology_id === ontologyId) {
          return { created: false, replaced: false }
        }
        // the old index goes entirely: mentions and relations cascade from entities and chunks
        yield* sql`DELETE FROM ${sql(tables.entities)} WHERE document_id = ${documentId}`
        yield* sql`DELETE FROM ${sql(tables.chunks)} WHERE document_id = ${documentId}`
        yield* sql`UPDATE ${sql(tables.documents)} SET title = ${document.title}, text = ${document.text},
          ontology_id = ${ontologyId}, content_hash = ${hash}, indexed_at = now() WHERE id = ${documentId}`
        replaced = true
      }

      yield* insertAll(
        tables.chunks,
        input.chunks.map((c) => ({
          document_id: documentId,
          index: c.index,
          start_offset: c.start,
          end_offset: c.end,
          text: c.text
        }))
      )
      yield* insertAll(
        tables.entities,
        input.entities.map((e) => ({
          document_id: documentId,
          entity_key: e.normalized,
          name: e.name,
          kind: e.kind,
          class_iri: e.classIri
        }))
      )
      yield* insertAll(
        tables.mentions,
        input.mentions.map((m) => ({
          document_id: documentId,
          entity_key: m.entity,
          chunk_index: m.chunkIndex,
          start_offset: m.start,
          end_offset: m.end
        }))
      )
      yield* insertAll(
        tables.relations,
        input.relations.map((r) => ({
          document_id: documentId,
          source_key: r.source,
          target_key: r.target,
          weight: r.weight,
          first_chunk: r.chunkIndex
        }))
      )
      return { created: true, replaced }
    }))

  /** The stored document with its entities (in order of first appearance), or None. */
  const getDocument = (id: string): Effect.Effect<Option.Option<DocumentView>, SqlError.SqlError> =>
    Effect.gen(function*() {
      const rows = yield* sql<DocumentRow>`
        SELECT d.id, d.title, d.ontology_id, d.status, ${sql.literal(isoUtc("d.indexed_at"))} AS indexed_at,
          (SELECT count(*)::int FROM ${sql(tables.chunks)} c WHERE c.document_id = d.id) AS chunk_count
        FROM ${sql(tables.documents)} d
        WHERE d.id = ${id}`
      const row = rows[0]
      if (row === undefined) return Option.none()
      const entities = yield* sql<DocumentEntityRow>`
        SELECT e.name, e.kind, e.class_iri,
          count(DISTINCT (m.start_offset, m.end_offset))::int AS mentions
        FROM ${sql(tables.entities)} e
        LEFT JOIN ${sql(tables.mentions)} m ON m.document_id = e.document_id AND m.entity_key = e.entity_key
        WHERE e.document_id = ${id}
        GROUP BY e.entity_key, e.name, e.kind, e.class_iri
        ORDER BY min(m.start_offset) NULLS LAST, e.entity_key`
      return Option.some<DocumentView>({
        documentId: row.id,
        title: row.title,
        ontologyId: row.ontology_id,
        status: row.status,
        indexedAt: row.indexed_at,
        chunkCount: row.chunk_count,
        entities: entities.map((e) => ({ name: e.name, kind: e.kind, classIri: e.class_iri, mentions: e.mentions }))
      })
    })

  /**
   * Entities across all documents, aggregated by (entity key, kind, class IRI), ordered by total mentions
   * (descending), then entity key, kind and class IRI (ascending, untyped first) so pages are stable.
   * Empty or blank `type` / `q` are ignored.
   */
  const findEntities = (query: FindEntitiesQuery = {}): Effect.Effect<ReadonlyArray<EntityView>, SqlError.SqlError> =>
    Effect.gen(function*() {
      const type = query.type?.trim() ?? ""
      const q = query.q?.trim() ?? ""
      const conditions = [
        ...(type === ""
          ? []
          : [sql`(e.class_iri = ${type} OR e.class_local_name = lower(${type}) OR e.kind = lower(${type}))`]),
        ...(q === "" ? [] : [sql`e.name ILIKE ${likeContains(q)}`])
      ]
      const rows = yield* sql<EntityRow>`
        WITH matched AS (
          SELECT e.document_id, e.entity_key, e.name, e.kind, e.class_iri,
            (SELECT count(DISTINCT (m.start_offset, m.end_offset)) FROM ${sql(tables.mentions)} m
              WHERE m.document_id = e.document_id AND m.entity_key = e.entity_key) AS mentions
          FROM ${sql(tables.entities)} e
          WHERE ${sql.and(conditions)}
        )
        SELECT mode() WITHIN GROUP (ORDER BY name) AS name, entity_key, kind, class_iri,
          array_agg(document_id ORDER BY document_id) AS documents, sum(mentions)::int AS mentions
        FROM matched
        GROUP BY entity_key, kind, class_iri
        ORDER BY mentions DESC, entity_key, kind, class_iri NULLS FIRST
        LIMIT ${clampLimit(query.limit)}`
      return rows.map((r): EntityView => ({
        name: r.name,
        entityKey: r.entity_key,
        kind: r.kind,
        classIri: r.class_iri,
        documents: r.documents,
        mentions: r.mentions
      }))
    })

  return { saveIndexedDocument, getDocument, findEntities } as const
})

/** Stores and reads indexed knowledge documents; needs a `SqlClient` with the knowledge migrations applied. */
export class KnowledgeRepository extends Effect.Service<KnowledgeRepository>()(
  "@duraflow/knowledge/KnowledgeRepository",
  { effect: make }
) {}

/** `KnowledgeRepository` backed by the ambient `SqlClient`. */
export const layer = KnowledgeRepository.Default
