// A stable fingerprint of an ontology's meaning, used to make publishing idempotent: re-publishing
// the same ontology (even re-formatted, re-ordered or with other prefix names) is recognised as
// unchanged, while any change to a class, superclass, property, label or nerKind is not.
import { createHash } from "node:crypto"
import * as Canonical from "./internal/canonical.js"
import type * as OntologyModel from "./OntologyModel.js"

/** Bump if the canonical form ever changes, so old and new hashes never collide by accident. */
const FORMAT = "duraflow-ontology/v1"

/**
 * Lower-case hex sha256 of the canonical form: one JSON line per class and property, sorted and
 * de-duplicated, superclasses sorted. Entry order in `parsed` and repeated entries do not matter.
 */
export const contentHash = (parsed: OntologyModel.ParsedOntology): string =>
  createHash("sha256")
    .update(
      [
        FORMAT,
        ...Canonical.sortedUnique(parsed.classes.map(Canonical.classEntry)),
        ...Canonical.sortedUnique(parsed.properties.map(Canonical.propertyEntry))
      ].join("\n")
    )
    .digest("hex")
