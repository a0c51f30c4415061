// The knowledge domain's footprint in the shared Postgres: its table prefix and the migrations that create its
// tables. Every relation is named `knowledge_*`; the domain never reads or writes another domain's tables
// (ontology typing arrives as plain class IRIs from the caller).
import type { SqlClient } from "@effect/sql"
import { Migrations, type RuntimeError, TablePrefix } from "@duraflow/runtime-core"
import { Effect } from "effect"

export const prefix = TablePrefix.unsafeMake("knowledge")

/** Fully prefixed table names, for queries. */
export const tables = {
  documents: TablePrefix.table(prefix, "documents"),
  chunks: TablePrefix.table(prefix, "chunks"),
  entities: TablePrefix.table(prefix, "entities"),
  mentions: TablePrefix.table(prefix, "mentions"),
  relations: TablePrefix.table(prefix, "relations")
} as const

/**
 * Applied in order, never edited once released (add a new migration instead).
 *
 * Notes on the schema:
 * - `entities.class_local_name` is generated: the lower-cased part of `class_iri` after its last `#` or `/`,
 *   so `findEntities({ type: "person" })` can use an index.
 * - `mentions` keys on (document, span, entity, chunk): with overlapping chunks the extractor reports a span
 *   inside the overlap once per chunk, so the span alone is not unique.
 * - Child rows reference their document (and mentions/relations their entity and chunk) with ON DELETE CASCADE,
 *   so deleting a document row removes everything indexed for it.
 */
export const migrations: ReadonlyArray<Migrations.Migration> = [
  {
    id: 1,
    name: "create documents, chunks, entities, mentions, relations",
    sql: (t) => `
CREATE TABLE ${t("documents")} (
  id text PRIMARY KEY,
  title text NOT NULL,
  text text NOT NULL,
  ontology_id text NULL,
  content_hash text NOT NULL,
  status text NOT NULL CHECK (status IN ('indexed')),
  indexed_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ${t("documents_ontology_id_idx")} ON ${t("documents")} (ontology_id);

CREATE TABLE ${t("chunks")} (
  document_id text NOT NULL REFERENCES ${t("documents")} (id) ON DELETE CASCADE,
  index integer NOT NULL CHECK (index >= 0),
  start_offset integer NOT NULL CHECK (start_offset >= 0),
  end_offset integer NOT NULL CHECK (end_offset >= start_offset),
  text text NOT NULL,
  PRIMARY KEY (document_id, index)
);

CREATE TABLE ${t("entities")} (
  document_id text NOT NULL REFERENCES ${t("documents")} (id) ON DELETE CASCADE,
  entity_key text NOT NULL,
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('person', 'organization', 'place')),
  class_iri text NULL,
  class_local_name text GENERATED ALWAYS AS (lower(regexp_replace(class_iri, '^.*[#/]', ''))) STORED,
  PRIMARY KEY (document_id, entity_key)
);
CREATE INDEX ${t("entities_class_iri_idx")} ON ${t("entities")} (class_iri);
CREATE INDEX ${t("entities_class_local_name_idx")} ON ${t("entities")} (class_local_name);
CREATE INDEX ${t("entities_kind_idx")} ON ${t("entities")} (kind);
CREATE INDEX ${t("entities_entity_key_idx")} ON ${t("entities")} (entity_key);
CREATE INDEX ${t("entities_lower_name_idx")} ON ${t("entities")} (lower(name));

CREATE TABLE ${t("mentions")} (
  document_id text NOT NULL,
  entity_key text NOT NULL,
  chunk_index integer NOT NULL,
  start_offset integer NOT NULL CHECK (start_offset >= 0),
  end_offset integer NOT NULL CHECK (end_offset > start_offset),
  PRIMARY KEY (document_id, start_offset, end_offset, entity_key, chunk_index),
  FOREIGN KEY (document_id, entity_key) REFERENCES ${t("entities")} (document_id, entity_key) ON DELETE CASCADE,
  FOREIGN KEY (document_id, chunk_index) REFERENCES ${t("chunks")} (document_id, index) ON DELETE CASCADE
);
CREATE INDEX ${t("mentions_entity_idx")} ON ${t("mentions")} (document_id, entity_key);

CREATE TABLE ${t("relations")} (
  document_id text NOT NULL,
  source_key text NOT NULL,
  target_key text NOT NULL,
  weight integer NOT NULL CHECK (weight > 0),
  first_chunk integer NOT NULL,
  PRIMARY KEY (document_id, source_key, target_key),
  FOREIGN KEY (document_id, source_key) REFERENCES ${t("entities")} (document_id, entity_key) ON DELETE CASCADE,
  FOREIGN KEY (document_id, target_key) REFERENCES ${t("entities")} (document_id, entity_key) ON DELETE CASCADE,
  FOREIGN KEY (document_id, first_chunk) REFERENCES ${t("chunks")} (document_id, index) ON DELETE CASCADE
);
CREATE INDEX ${t("relations_target_idx")} ON ${t("relations")} (document_id, target_key);
`
  }
]

/** Validates and applies the pending knowledge migrations (safe to call from every process at startup). */
export const migrate: Effect.Effect<
  ReadonlyArray<Migrations.Applied>,
  RuntimeError.MigrationError,
  SqlClient.SqlClient
> = Effect.flatMap(Migrations.make(prefix, migrations), Migrations.run)
