// OntologyRepository against a real Postgres: versioning, idempotent re-publishing, concurrent
// publishes, read-back, and that the domain's migrations stay inside the `ontology_` prefix.
import { Migrations } from "@duraflow/runtime-core"
import { TestDatabase } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as ContentHash from "../src/ContentHash.js"
import * as OntologyDomain from "../src/OntologyDomain.js"
import type * as OntologyModel from "../src/OntologyModel.js"
import * as OntologyRepository from "../src/OntologyRepository.js"
import * as SampleOntology from "../src/SampleOntology.js"
import * as TurtleParser from "../src/TurtleParser.js"

const migrate = Effect.flatMap(Migrations.make(OntologyDomain.prefix, OntologyDomain.migrations), Migrations.run)

/** Parses, hashes and publishes `turtle` (migrating first; migrations are idempotent). */
const publish = (ontologyId: string, turtle: string) =>
  Effect.gen(function*() {
    yield* migrate
    const parsed = yield* TurtleParser.parse(turtle)
    const repo = yield* OntologyRepository.OntologyRepository
    return yield* repo.publish({ ontologyId, turtle, parsed, contentHash: ContentHash.contentHash(parsed) })
  })

const TABLES = ["classes", "ontologies", "properties", "subclass_links", "versions"] as const

/** Row counts of every domain table for one ontology (all of them when `ontologyId` is omitted). */
const counts = (ontologyId?: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const out: Record<string, number> = {}
    for (const name of TABLES) {
      const column = name === "ontologies" ? "id" : "ontology_id"
      const where = ontologyId === undefined ? sql`true` : sql`${sql(column)} = ${ontologyId}`
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(OntologyDomain.table(name))}
        WHERE ${where}`
      out[name] = row.n
    }
    return out
  })

const sample = TurtleParser.parse(SampleOntology.turtle)

/** The sample, laid out differently: every line trimmed, blank lines between them, a new comment. */
const reformatted = `# the news ontology, re-indented\n\n${
  SampleOntology.turtle.split("\n").map((line) => line.trim()).join("\n\n")
}`

const withAward = `${SampleOntology.turtle}
news:Award a owl:Class ;
  rdfs:label "Award" .

news:wins a owl:ObjectProperty ;
  rdfs:domain news:Person ;
  rdfs:range news:Award .
`

const TestLayer = Layer.provideMerge(OntologyRepository.layer, TestDatabase.layer("ontology_repository"))

describe("OntologyRepository", () => {
  layer(TestLayer, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("migrations create only ontology_* relations and constraints", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* migrate
        const relations = yield* sql<{ relname: string; relkind: string }>`SELECT c.relname, c.relkind
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' ORDER BY c.relname`
        expect(relations.length).toBeGreaterThan(0)
        for (const r of relations) expect(r.relname).toMatch(/^ontology_/)
        expect(relations.filter((r) => r.relkind === "r").map((r) => r.relname)).toEqual([
          "ontology_classes",
          "ontology_migrations",
          "ontology_ontologies",
          "ontology_properties",
          "ontology_subclass_links",
          "ontology_versions"
        ])
        const constraints = yield* sql<{ conname: string }>`SELECT conname FROM pg_constraint c
          JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'`
        expect(constraints.length).toBeGreaterThan(0)
        for (const c of constraints) expect(c.conname).toMatch(/^ontology_/)
        // running them again is a no-op
        expect(yield* migrate).toEqual([])
      }))

    it.effect("publishes the sample ontology as version 1 and reads it back", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        const parsed = yield* sample
        const contentHash = ContentHash.contentHash(parsed)

        const result = yield* publish("news", SampleOntology.turtle)
        expect(result).toEqual({ ontologyId: "news", version: 1, contentHash, created: true })
        expect(yield* counts("news")).toEqual({
          classes: 9,
          ontologies: 1,
          properties: 9,
          subclass_links: 4,
          versions: 1
        })

        const latest = yield* repo.latest("news")
        expect(latest).toEqual(Option.some({ ontologyId: "news", version: 1, contentHash, ...parsed }))
        const person = Option.getOrThrow(latest).classes.find((c) => c.iri === `${SampleOntology.namespace}Person`)
        expect(person).toEqual({
          iri: `${SampleOntology.namespace}Person`,
          label: "Person",
          nerKind: "person",
          superClasses: []
        })
        expect(yield* repo.get("news", 1)).toEqual(latest)

        const versions = yield* repo.versions("news")
        expect(versions).toHaveLength(1)
        expect(versions[0]).toMatchObject({ version: 1, contentHash })
        expect(versions[0]!.publishedAt).toBeInstanceOf(Date)

        const sql = yield* SqlClient.SqlClient
        const [stored] = yield* sql<{ turtle: string }>`SELECT turtle FROM ${sql(OntologyDomain.table("versions"))}
          WHERE ontology_id = 'news' AND version = 1`
        expect(stored!.turtle).toBe(SampleOntology.turtle)
      }))

    it.effect("re-publishing the same content, however formatted, creates nothing", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        const before = yield* counts()
        const first = yield* publish("news", SampleOntology.turtle)
        expect(first).toMatchObject({ version: 1, created: false })

        expect(reformatted).not.toBe(SampleOntology.turtle)
        const again = yield* publish("news", reformatted)
        expect(again).toEqual({ ...first, created: false })
        expect(yield* counts()).toEqual(before)
        expect((yield* repo.versions("news")).map((v) => v.version)).toEqual([1])
      }))

    it.effect("changed content becomes version 2; older versions stay readable", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        const v1 = Option.getOrThrow(yield* repo.latest("news"))

        const result = yield* publish("news", withAward)
        expect(result).toMatchObject({ ontologyId: "news", version: 2, created: true })
        expect(result.contentHash).not.toBe(v1.contentHash)

        const latest = Option.getOrThrow(yield* repo.latest("news"))
        expect(latest.version).toBe(2)
        expect(latest.contentHash).toBe(result.contentHash)
        expect(latest.classes.map((c) => c.iri)).toContain(`${SampleOntology.namespace}Award`)
        expect(latest.classes).toHaveLength(10)
        expect(latest.properties).toContainEqual({
          iri: `${SampleOntology.namespace}wins`,
          domain: `${SampleOntology.namespace}Person`,
          range: `${SampleOntology.namespace}Award`
        })
        expect({ ...latest, version: 0, contentHash: "" }).toEqual({
          ...(yield* TurtleParser.parse(withAward)),
          ontologyId: "news",
          version: 0,
          contentHash: ""
        })

        expect(yield* repo.get("news", 1)).toEqual(Option.some(v1))
        expect((yield* repo.versions("news")).map((v) => v.version)).toEqual([1, 2])

        // content identical to an older version is recognised as that version, not re-added
        const back = yield* publish("news", SampleOntology.turtle)
        expect(back).toEqual({ ontologyId: "news", version: 1, contentHash: v1.contentHash, created: false })
        expect((yield* repo.versions("news")).map((v) => v.version)).toEqual([1, 2])
      }))

    it.effect("concurrent publishes of the same content create one version", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        yield* migrate
        const contents = [SampleOntology.turtle, withAward, `${withAward}\nnews:Topic a owl:Class .\n`]
        // a brand-new ontology first (both calls race to create its row), then new versions of it
        for (const [i, turtle] of contents.entries()) {
          const results = yield* Effect.all([publish("race", turtle), publish("race", turtle)], { concurrency: 2 })
          expect(results.map((r) => r.version)).toEqual([i + 1, i + 1])
          expect(results.filter((r) => r.created)).toHaveLength(1)
          expect((yield* repo.versions("race")).map((v) => v.version)).toEqual(contents.slice(0, i + 1).map((_, j) => j + 1))
        }
        const parsed = yield* TurtleParser.parse(contents[2]!)
        expect(yield* counts("race")).toMatchObject({ ontologies: 1, versions: 3 })
        expect(Option.getOrThrow(yield* repo.latest("race")).classes).toEqual(parsed.classes)
      }))

    it.effect("unknown ontologies and versions read as empty", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        yield* migrate
        expect(yield* repo.latest("no-such-ontology")).toEqual(Option.none())
        expect(yield* repo.versions("no-such-ontology")).toEqual([])
        expect(yield* repo.get("no-such-ontology", 1)).toEqual(Option.none())
        expect(yield* repo.get("news", 99)).toEqual(Option.none())
        expect(yield* repo.get("news", 0)).toEqual(Option.none())
        expect(yield* repo.get("news", 1.5)).toEqual(Option.none())
        expect(yield* repo.get("news", 2 ** 40)).toEqual(Option.none())
      }))

    it.effect("stores a large ontology in chunked bulk inserts", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        yield* migrate
        // 15,000 classes x 5 columns would exceed Postgres' 65,535 parameters in one statement
        const n = 15_000
        const iri = (i: number) => `https://example.org/big#C${String(i).padStart(5, "0")}`
        const parsed: OntologyModel.ParsedOntology = {
          classes: Array.from({ length: n }, (_, i) => ({
            iri: iri(i),
            label: `C${i}`,
            superClasses: i === 0 ? [] : [iri(Math.floor(i / 2))]
          })),
          properties: [{ iri: "https://example.org/big#p", domain: iri(0), range: null }]
        }
        const contentHash = ContentHash.contentHash(parsed)
        const result = yield* repo.publish({ ontologyId: "big", turtle: "# generated", parsed, contentHash })
        expect(result).toEqual({ ontologyId: "big", version: 1, contentHash, created: true })
        expect(yield* counts("big")).toEqual({
          classes: n,
          ontologies: 1,
          properties: 1,
          subclass_links: n - 1,
          versions: 1
        })
        expect(yield* repo.latest("big")).toEqual(Option.some({ ontologyId: "big", version: 1, contentHash, ...parsed }))
      }))

    it.effect("stores repeated entries once and rolls back on conflicting ones", () =>
      Effect.gen(function*() {
        const repo = yield* OntologyRepository.OntologyRepository
        yield* migrate
        const person = { iri: "https://example.org/x#Person", label: "Person", superClasses: [] }
        const repeated: OntologyModel.ParsedOntology = { classes: [person, person], properties: [] }
        const ok = yield* repo.publish({
          ontologyId: "repeats",
          turtle: "# generated",
          parsed: repeated,
          contentHash: ContentHash.contentHash(repeated)
        })
        expect(ok).toMatchObject({ version: 1, created: true })
        expect(yield* counts("repeats")).toMatchObject({ classes: 1, versions: 1 })

        // not valid (OntologyValidation reports a DuplicateIri), so the database refuses it whole
        const conflicting: OntologyModel.ParsedOntology = {
          classes: [person, { ...person, label: "Human" }],
          properties: []
        }
        const error = yield* Effect.flip(repo.publish({
          ontologyId: "conflicts",
          turtle: "# generated",
          parsed: conflicting,
          contentHash: ContentHash.contentHash(conflicting)
        }))
        expect(error._tag).toBe("SqlError")
        expect(yield* counts("conflicts")).toEqual({
          classes: 0,
          ontologies: 0,
          properties: 0,
          subclass_links: 0,
          versions: 0
        })
      }))
  })
})
