// Structural checks an ontology must pass before it is published: everything it refers to is
// declared, the class hierarchy has no cycles, no IRI means two things, and NER kinds map to one
// class each. All problems are collected so authors can fix them in one round trip.
import { Effect } from "effect"
import * as Canonical from "./internal/canonical.js"
import * as OntologyError from "./OntologyError.js"
import type * as OntologyModel from "./OntologyModel.js"
import type * as OntologyProblem from "./OntologyProblem.js"
import * as Vocabulary from "./Vocabulary.js"

/** Succeeds with `parsed` unchanged when it has no problems, else fails with all of them. */
export const validate = (
  parsed: OntologyModel.ParsedOntology
): Effect.Effect<OntologyModel.ParsedOntology, OntologyError.InvalidOntology> => {
  const found = problems(parsed)
  return found.length === 0 ? Effect.succeed(parsed) : Effect.fail(new OntologyError.InvalidOntology({ problems: found }))
}

/**
 * Every problem in `parsed`, grouped by kind (EmptyOntology, DuplicateIri, UnknownSuperclass,
 * SubclassCycle, UnknownDomain, UnknownRange, AmbiguousNerKind) and sorted by IRI within a kind.
 *
 * Rules:
 * - at least one class must be declared;
 * - an IRI may have only one definition: the same entry repeated is fine (RDF is a set), but an
 *   IRI that is both a class and a property, or has two different class or property entries
 *   (e.g. two domains), is a DuplicateIri;
 * - superclasses and property domains must be declared classes (or owl:Thing / rdfs:Resource);
 *   ranges may also be datatypes (XSD namespace, rdfs:Literal, rdf:langString);
 * - `rdfs:subClassOf` must be acyclic, a class being its own superclass included; each cycle
 *   (strongly connected group of classes) is reported once;
 * - a `nerKind` may be claimed by one class only.
 */
export const problems = (parsed: OntologyModel.ParsedOntology): Array<OntologyProblem.Problem> => {
  const found: Array<OntologyProblem.Problem> = []
  if (parsed.classes.length === 0) found.push({ _tag: "EmptyOntology" })

  const definitions = new Map<string, Set<string>>()
  const define = (iri: string, entry: string) => {
    const set = definitions.get(iri) ?? new Set<string>()
    definitions.set(iri, set.add(entry))
  }
  parsed.classes.forEach((c) => define(c.iri, Canonical.classEntry(c)))
  parsed.properties.forEach((p) => define(p.iri, Canonical.propertyEntry(p)))
  for (const [iri, entries] of sortedEntries(definitions)) {
    if (entries.size > 1) found.push({ _tag: "DuplicateIri", iri })
  }

  // Class IRI -> sorted superclasses, merged across repeated entries.
  const supers = new Map<string, Array<string>>()
  for (const c of parsed.classes) supers.set(c.iri, [...(supers.get(c.iri) ?? []), ...c.superClasses])
  for (const [iri, list] of supers) supers.set(iri, Canonical.sortedUnique(list))
  const isClass = (iri: string) => supers.has(iri) || Vocabulary.builtinClasses.has(iri)

  for (const [iri, list] of sortedEntries(supers)) {
    for (const superClass of list) {
      if (!isClass(superClass)) found.push({ _tag: "UnknownSuperclass", iri, superClass })
    }
  }

  const edges = new Map([...supers].map(([iri, list]) => [iri, list.filter((s) => supers.has(s))] as const))
  const cycles = stronglyConnected([...edges.keys()].sort(Canonical.compare), edges)
    .filter((group) => group.length > 1 || edges.get(group[0]!)!.includes(group[0]!))
    .map((group) => shortestCycle(Canonical.sortedUnique(group)[0]!, new Set(group), edges))
    .sort((a, b) => Canonical.compare(a[0]!, b[0]!))
  for (const cycle of cycles) found.push({ _tag: "SubclassCycle", iri: cycle[0]!, cycle })

  const domains = new Map<string, Set<string>>()
  const ranges = new Map<string, Set<string>>()
  for (const p of parsed.properties) {
    if (p.domain !== null && !isClass(p.domain)) domains.set(p.iri, (domains.get(p.iri) ?? new Set()).add(p.domain))
    if (p.range !== null && !isClass(p.range) && !Vocabulary.isDatatype(p.range)) {
      ranges.set(p.iri, (ranges.get(p.iri) ?? new Set()).add(p.range))
    }
  }
  for (const [iri, set] of sortedEntries(domains)) {
    for (const domain of Canonical.sortedUnique(set)) found.push({ _tag: "UnknownDomain", iri, domain })
  }
  for (const [iri, set] of sortedEntries(ranges)) {
    for (const range of Canonical.sortedUnique(set)) found.push({ _tag: "UnknownRange", iri, range })
  }

  const kinds = new Map<string, Set<string>>()
  for (const c of parsed.classes) {
    if (c.nerKind !== undefined) kinds.set(c.nerKind, (kinds.get(c.nerKind) ?? new Set()).add(c.iri))
  }
  for (const [nerKind, classes] of sortedEntries(kinds)) {
    if (classes.size > 1) found.push({ _tag: "AmbiguousNerKind", nerKind, classes: Canonical.sortedUnique(classes) })
  }

  return found
}

const sortedEntries = <V>(map: ReadonlyMap<string, V>): Array<[string, V]> =>
  [...map].sort(([a], [b]) => Canonical.compare(a, b))

/** Tarjan's strongly connected components, iterative so deep hierarchies cannot overflow the stack. */
const stronglyConnected = (
  nodes: ReadonlyArray<string>,
  edges: ReadonlyMap<string, ReadonlyArray<string>>
): Array<Array<string>> => {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const components: Array<Array<string>> = []
  const visit = (node: string) => {
    index.set(node, index.size)
    low.set(node, index.get(node)!)
    stack.push(node)
    onStack.add(node)
  }

  for (const root of nodes) {
    if (index.has(root)) continue
    visit(root)
    const work: Array<{ readonly node: string; next: number }> = [{ node: root, next: 0 }]
    while (work.length > 0) {
      const frame = work[work.length - 1]!
      const successors = edges.get(frame.node) ?? []
      if (frame.next < successors.length) {
        const next = successors[frame.next++]!
        if (!index.has(next)) {
          visit(next)
          work.push({ node: next, next: 0 })
        } else if (onStack.has(next)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(next)!))
        }
        continue
      }
      work.pop()
      const parent = work[work.length - 1]
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!))
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: Array<string> = []
        let member: string
        do {
          member = stack.pop()!
          onStack.delete(member)
          component.push(member)
        } while (member !== frame.node)
        components.push(component)
      }
    }
  }
  return components
}

/** Shortest subClassOf path from `start` back to itself inside one component, `start` first. */
const shortestCycle = (
  start: string,
  members: ReadonlySet<string>,
  edges: ReadonlyMap<string, ReadonlyArray<string>>
): Array<string> => {
  const previous = new Map<string, string>()
  const queue = [start]
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i]!
    for (const next of edges.get(node) ?? []) {
      if (next === start) {
        const path = [node]
        for (let at = node; at !== start; ) path.push((at = previous.get(at)!))
        return path.reverse()
      }
      if (members.has(next) && !previous.has(next)) {
        previous.set(next, node)
        queue.push(next)
      }
    }
  }
  return [start] // unreachable: every member of a cyclic component lies on a cycle through start
}
