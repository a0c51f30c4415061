// Where the ontology domain keeps its data in the shared Postgres: its table prefix and the ordered
// migrations that create its tables. Every relation (tables, indexes, constraints) is named
// `ontology_*`, so the domain can share a database with other apps without touching their tables.
//
// A published version is immutable: `ontology_versions` holds the submitted Turtle and its content
// hash, and the classes, subclass links and properties of that version hang off it. Re-publishing
// the same content is idempotent thanks to UNIQUE (ontology_id, content_hash).
import { Migrations, TablePrefix } from "@duraflow/runtime-core"
import * as OntologyModel from "./OntologyModel.js"

export const prefix: TablePrefix.TablePrefix = TablePrefix.unsafeMake("ontology")

/** The prefixed name of one of the domain's tables, e.g. `table("classes")` = `ontology_classes`. */
export const table = (name: string): string => TablePrefix.table(prefix, name)

/** Append-only: never edit an applied migration, add a new one with a higher id. */
export const migrations: ReadonlyArray<Migrations.Migration> = [{
  id: 1,
  name: "create ontology tables",
  sql: (t) =>
    `CREATE TABLE ${t("ontologies")} (
      id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ${t("ontologies_pkey")} PRIMARY KEY (id),
      CONSTRAINT ${t("ontologies_id_check")} CHECK (length(id) BETWEEN 1 AND ${OntologyModel.OntologyIdMaxLength})
    );

    CREATE TABLE ${t("versions")} (
      ontology_id text NOT NULL,
      version integer NOT NULL,
      content_hash text NOT NULL,
      turtle text NOT NULL,
      published_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ${t("versions_pkey")} PRIMARY KEY (ontology_id, version),
      CONSTRAINT ${t("versions_content_hash_key")} UNIQUE (ontology_id, content_hash),
      CONSTRAINT ${t("versions_ontology_fkey")} FOREIGN KEY (ontology_id)
        REFERENCES ${t("ontologies")} (id) ON DELETE CASCADE,
      CONSTRAINT ${t("versions_version_check")} CHECK (version > 0),
      CONSTRAINT ${t("versions_content_hash_check")} CHECK (content_hash ~ '^[0-9a-f]{64}$')
    );

    CREATE TABLE ${t("classes")} (
      ontology_id text NOT NULL,
      version integer NOT NULL,
      iri text NOT NULL,
      label text,
      ner_kind text,
      CONSTRAINT ${t("classes_pkey")} PRIMARY KEY (ontology_id, version, iri),
      CONSTRAINT ${t("classes_version_fkey")} FOREIGN KEY (ontology_id, version)
        REFERENCES ${t("versions")} (ontology_id, version) ON DELETE CASCADE
    );
    -- Validation allows one class per NER kind; this also serves "which class is kind X" lookups.
    CREATE UNIQUE INDEX ${t("classes_ner_kind_key")} ON ${t("classes")} (ontology_id, version, ner_kind)
      WHERE ner_kind IS NOT NULL;

    CREATE TABLE ${t("subclass_links")} (
      ontology_id text NOT NULL,
      version integer NOT NULL,
      class_iri text NOT NULL,
      -- no foreign key: a superclass may be a built-in class (owl:Thing) that is not stored
      superclass_iri text NOT NULL,
      CONSTRAINT ${t("subclass_links_pkey")} PRIMARY KEY (ontology_id, version, class_iri, superclass_iri),
      CONSTRAINT ${t("subclass_links_class_fkey")} FOREIGN KEY (ontology_id, version, class_iri)
        REFERENCES ${t("classes")} (ontology_id, version, iri) ON DELETE CASCADE
    );
    -- subclasses of a class
    CREATE INDEX ${t("subclass_links_superclass_idx")}
      ON ${t("subclass_links")} (ontology_id, version, superclass_iri);

    CREATE TABLE ${t("properties")} (
      ontology_id text NOT NULL,
      version integer NOT NULL,
      iri text NOT NULL,
      label text,
      -- class IRIs, or a datatype for the range; null when undeclared. No foreign keys, as above.
      domain_iri text,
      range_iri text,
      CONSTRAINT ${t("properties_pkey")} PRIMARY KEY (ontology_id, version, iri),
      CONSTRAINT ${t("properties_version_fkey")} FOREIGN KEY (ontology_id, version)
        REFERENCES ${t("versions")} (ontology_id, version) ON DELETE CASCADE
    );
    -- properties whose domain is a given class
    CREATE INDEX ${t("properties_domain_idx")} ON ${t("properties")} (ontology_id, version, domain_iri);`
}]
