// The handful of RDF/RDFS/OWL/XSD IRIs the parser and validator interpret, plus the duraflow
// annotation vocabulary, kept in one place so no module spells an IRI by hand.

export const RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
export const RDFS = "http://www.w3.org/2000/01/rdf-schema#"
export const OWL = "http://www.w3.org/2002/07/owl#"
export const XSD = "http://www.w3.org/2001/XMLSchema#"

/** Namespace of duraflow's own annotation properties. */
export const DURAFLOW = "https://duraflow.dev/ns#"

export const rdfType = `${RDF}type`
export const rdfProperty = `${RDF}Property`
export const rdfLangString = `${RDF}langString`
export const rdfsClass = `${RDFS}Class`
export const rdfsSubClassOf = `${RDFS}subClassOf`
export const rdfsLabel = `${RDFS}label`
export const rdfsDomain = `${RDFS}domain`
export const rdfsRange = `${RDFS}range`
export const rdfsLiteral = `${RDFS}Literal`
export const rdfsResource = `${RDFS}Resource`
export const owlClass = `${OWL}Class`
export const owlThing = `${OWL}Thing`
export const owlObjectProperty = `${OWL}ObjectProperty`
export const owlDatatypeProperty = `${OWL}DatatypeProperty`

/**
 * Annotation property by which an ontology declares which NER entity kind maps to which of its
 * classes, e.g. `ex:Person df:nerKind "person"`. Downstream extraction uses it to type the
 * entities a named-entity recogniser finds (person, organization, place, ...) as ontology classes,
 * so the mapping lives with the ontology instead of in code.
 */
export const nerKind = `${DURAFLOW}nerKind`

/** `rdf:type` objects that declare a class. */
export const classTypes: ReadonlySet<string> = new Set([owlClass, rdfsClass])

/** `rdf:type` objects that declare a property. */
export const propertyTypes: ReadonlySet<string> = new Set([owlObjectProperty, owlDatatypeProperty, rdfProperty])

/**
 * Classes every ontology may refer to without declaring them: the universal classes of OWL and
 * RDFS (`ex:Person rdfs:subClassOf owl:Thing` is common and harmless).
 */
export const builtinClasses: ReadonlySet<string> = new Set([owlThing, rdfsResource])

/**
 * Whether an IRI names a literal datatype, a valid property range that is not a class:
 * anything in the XSD namespace, `rdfs:Literal` and `rdf:langString`.
 */
export const isDatatype = (iri: string): boolean =>
  iri.startsWith(XSD) || iri === rdfsLiteral || iri === rdfLangString
