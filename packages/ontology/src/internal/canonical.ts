// One canonical, order-independent encoding of ontology entries, shared by content hashing (same
// ontology, same hash) and duplicate detection (same IRI, different definition).
import type * as OntologyModel from "../OntologyModel.js"

export const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

export const sortedUnique = (values: Iterable<string>): Array<string> => [...new Set(values)].sort(compare)

/** JSON, so it never contains a raw newline; fields positional so key order cannot matter. */
export const classEntry = (c: OntologyModel.OntologyClass): string =>
  JSON.stringify(["class", c.iri, c.label ?? null, c.nerKind ?? null, sortedUnique(c.superClasses)])

export const propertyEntry = (p: OntologyModel.OntologyProperty): string =>
  JSON.stringify(["property", p.iri, p.label ?? null, p.domain, p.range])
