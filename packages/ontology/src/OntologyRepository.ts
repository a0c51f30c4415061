// Stores published ontology versions in Postgres (the tables of OntologyDomain) and reads them
// back. Publishing is idempotent by content hash and safe under concurrency, so workflows may
// retry it freely and two clients publishing the same ontology at once get one version, not two.
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Array as Arr, Context, Effect, Layer, Option } from "effect"
import * as Canonical from "./internal/canonical.js"
import * as OntologyDomain from "./OntologyDomain.js"
import type * as OntologyModel from "./OntologyModel.js"

export interface PublishInput {
  readonly ontologyId: string
  /** The submitted document, stored as is with the version it creates. */
  readonly turtle: string
  /** The parsed ontology; it should have passed OntologyValidation.validate. */
  readonly parsed: OntologyModel.ParsedOntology
  /** ContentHash.contentHash(parsed). */
  readonly contentHash: string
}

export class OntologyRepository extends Context.Tag("@duraflow/ontology/OntologyRepository")<OntologyRepository, {
  /**
   * Publishes `input` as the ontology's next version, in one transaction. When a version of this
   * ontology already has the same content hash, returns that version with `created: false` and
   * writes nothing; this holds for any earlier version, not just the latest one (re-publishing
   * older content does not make it the latest again). Otherwise creates the ontology if new and
   * stores version max+1 with its classes, subclass links and properties (`created: true`).
   *
   * Concurrent publishes of one ontology are serialised on its row, so two calls with the same
   * new content create one version and both return its number. Relies on READ COMMITTED (the
   * Postgres default) when called inside a caller's transaction.
   *
   * Fails with SqlError on database errors, including input that breaks a constraint: an invalid
   * ontology (e.g. one IRI with two definitions) or a malformed content hash.
   */
  readonly publish: (input: PublishInput) => Effect.Effect<OntologyModel.PublishedVersion, SqlError>
  /** The newest version of the ontology, or None when it was never published. */
  readonly latest: (ontologyId: string) => Effect.Effect<Option.Option<OntologyModel.OntologyView>, SqlError>
  /** One specific version, or None when it does not exist. */
  readonly get: (
    ontologyId: string,
    version: number
  ) => Effect.Effect<Option.Option<OntologyModel.OntologyView>, SqlError>
  /** The ontology's version history, oldest first; empty when it was never published. */
  readonly versions: (ontologyId: string) => Effect.Effect<ReadonlyArray<OntologyModel.OntologyVersion>, SqlError>
}>() {}

/**
 * Rows per INSERT statement. Postgres allows at most 65535 bind parameters per statement and the
 * widest row has 6 columns, so a large ontology is written in a few bulk statements.
 */
export const INSERT_CHUNK_ROWS = 2000

interface VersionRow {
  readonly version: number
  readonly content_hash: string
}

export const make: Effect.Effect<Context.Tag.Service<OntologyRepository>, never, SqlClient.SqlClient> = Effect.gen(
  function*() {
    // Column names are written and read as in the schema, whatever transforms the app configured.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const ontologies = sql(OntologyDomain.table("ontologies"))
    const versions = sql(OntologyDomain.table("versions"))
    const classes = sql(OntologyDomain.table("classes"))
    const subclassLinks = sql(OntologyDomain.table("subclass_links"))
    const properties = sql(OntologyDomain.table("properties"))

    const insertAll = (name: string, rows: ReadonlyArray<Record<string, unknown>>) =>
      Effect.forEach(
        Arr.chunksOf(rows, INSERT_CHUNK_ROWS),
        (chunk) => sql`INSERT INTO ${sql(OntologyDomain.table(name))} ${sql.insert(chunk)}`,
        { discard: true }
      )

    const publish = (input: PublishInput) =>
      sql.withTransaction(Effect.gen(function*() {
        const { contentHash, ontologyId } = input
        yield* sql`INSERT INTO ${ontologies} (id) VALUES (${ontologyId}) ON CONFLICT (id) DO NOTHING`
        // Holds every other publish of this ontology here until we commit. Under READ COMMITTED
        // each later statement then sees what the previous holder committed, so the hash lookup
        // and max(version) below cannot race.
        yield* sql`SELECT id FROM ${ontologies} WHERE id = ${ontologyId} FOR UPDATE`

        const existing = yield* sql<VersionRow>`SELECT version, content_hash FROM ${versions}
          WHERE ontology_id = ${ontologyId} AND content_hash = ${contentHash}`
        if (existing[0] !== undefined) {
          return { ontologyId, version: existing[0].version, contentHash, created: false }
        }

        const [{ version }] = yield* sql<{ version: number }>`SELECT coalesce(max(version), 0) + 1 AS version
          FROM ${versions} WHERE ontology_id = ${ontologyId}`
        yield* sql`INSERT INTO ${versions} ${
          sql.insert({ ontology_id: ontologyId, version, content_hash: contentHash, turtle: input.turtle })
        }`
        const rows = toRows(input.parsed)
        const key = { ontology_id: ontologyId, version }
        yield* insertAll("classes", rows.classes.map((c) => ({ ...key, ...c })))
        yield* insertAll("subclass_links", rows.subclassLinks.map((l) => ({ ...key, ...l })))
        yield* insertAll("properties", rows.properties.map((p) => ({ ...key, ...p })))
        return { ontologyId, version, contentHash, created: true }
      }))

    const load = (ontologyId: string, row: VersionRow) =>
      Effect.gen(function*() {
        const where = sql`ontology_id = ${ontologyId} AND version = ${row.version}`
        const classRows = yield* sql<ClassRow>`SELECT iri, label, ner_kind FROM ${classes} WHERE ${where}`
        const linkRows = yield* sql<LinkRow>`SELECT class_iri, superclass_iri FROM ${subclassLinks} WHERE ${where}`
        const propertyRows = yield* sql<PropertyRow>`SELECT iri, label, domain_iri, range_iri
          FROM ${properties} WHERE ${where}`
        return {
          ontologyId,
          version: row.version,
          contentHash: row.content_hash,
          ...fromRows(classRows, linkRows, propertyRows)
        }
      })

    // A stored version never changes, so once its row is found its parts can be read without a
    // transaction: a concurrent publish only adds other versions.
    const loadFirst = (ontologyId: string) => (rows: ReadonlyArray<VersionRow>) =>
      rows[0] === undefined ? Effect.succeedNone : Effect.asSome(load(ontologyId, rows[0]))

    return OntologyRepository.of({
      publish,
      latest: (ontologyId) =>
        sql<VersionRow>`SELECT version, content_hash FROM ${versions} WHERE ontology_id = ${ontologyId}
          ORDER BY version DESC LIMIT 1`.pipe(Effect.flatMap(loadFirst(ontologyId))),
      get: (ontologyId, version) =>
        Number.isSafeInteger(version) && version > 0 && version <= 2_147_483_647
          ? sql<VersionRow>`SELECT version, content_hash FROM ${versions}
              WHERE ontology_id = ${ontologyId} AND version = ${version}`.pipe(Effect.flatMap(loadFirst(ontologyId)))
          : Effect.succeedNone,
      versions: (ontologyId) =>
        sql<VersionRow & { readonly published_at: Date }>`SELECT version, content_hash, published_at
          FROM ${versions} WHERE ontology_id = ${ontologyId} ORDER BY version`.pipe(
          Effect.map((rows) =>
            rows.map((r) => ({ version: r.version, contentHash: r.content_hash, publishedAt: r.published_at }))
          )
        )
    })
  }
)

/** The repository, given a SqlClient. Run `OntologyDomain.migrations` before using it. */
export const layer: Layer.Layer<OntologyRepository, never, SqlClient.SqlClient> = Layer.effect(OntologyRepository, make)

interface ClassRow {
  readonly iri: string
  readonly label: string | null
  readonly ner_kind: string | null
}

interface LinkRow {
  readonly class_iri: string
  readonly superclass_iri: string
}

interface PropertyRow {
  readonly iri: string
  readonly label: string | null
  readonly domain_iri: string | null
  readonly range_iri: string | null
}

/**
 * Table rows (without ontology_id and version) for a parsed ontology. Entries repeated verbatim
 * are stored once, as validation allows; conflicting entries for one IRI are kept and rejected by
 * the primary key.
 */
const toRows = (parsed: OntologyModel.ParsedOntology) => {
  const classEntries = uniqueBy(parsed.classes, Canonical.classEntry)
  return {
    classes: classEntries.map((c) => ({ iri: c.iri, label: c.label ?? null, ner_kind: c.nerKind ?? null })),
    subclassLinks: classEntries.flatMap((c) =>
      Canonical.sortedUnique(c.superClasses).map((superclass) => ({ class_iri: c.iri, superclass_iri: superclass }))
    ),
    properties: uniqueBy(parsed.properties, Canonical.propertyEntry).map((p) => ({
      iri: p.iri,
      label: p.label ?? null,
      domain_iri: p.domain,
      range_iri: p.range
    }))
  }
}

const uniqueBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string): Array<A> => {
  const seen = new Set<string>()
  return items.filter((item) => {
    const k = key(item)
    return seen.has(k) ? false : (seen.add(k), true)
  })
}

/** The model back from table rows, sorted by IRI like TurtleParser's output. */
const fromRows = (
  classRows: ReadonlyArray<ClassRow>,
  linkRows: ReadonlyArray<LinkRow>,
  propertyRows: ReadonlyArray<PropertyRow>
): OntologyModel.ParsedOntology => {
  const supers = new Map<string, Array<string>>()
  for (const l of linkRows) supers.set(l.class_iri, [...(supers.get(l.class_iri) ?? []), l.superclass_iri])
  const byIri = (a: { readonly iri: string }, b: { readonly iri: string }) => Canonical.compare(a.iri, b.iri)
  return {
    classes: [...classRows].sort(byIri).map((c) => ({
      iri: c.iri,
      ...(c.label === null ? {} : { label: c.label }),
      ...(c.ner_kind === null ? {} : { nerKind: c.ner_kind }),
      superClasses: Canonical.sortedUnique(supers.get(c.iri) ?? [])
    })),
    properties: [...propertyRows].sort(byIri).map((p) => ({
      iri: p.iri,
      ...(p.label === null ? {} : { label: p.label }),
      domain: p.domain_iri,
      range: p.range_iri
    }))
  }
}
