// A small news-domain ontology used by demos and tests: the kinds of things news text mentions
// (people, organisations, places, events, products). Person, Organization and Place carry the
// `df:nerKind` annotation (Vocabulary.nerKind), which is how an ontology declares which NER entity
// kind maps to which of its classes. Only the general classes carry a kind; more specific ones
// (Company, City, ...) are reachable from them through rdfs:subClassOf.

/** Namespace of the sample ontology's classes and properties. */
export const namespace = "https://duraflow.dev/ontology/news#"

export const turtle = `@prefix rdf:  <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl:  <http://www.w3.org/2002/07/owl#> .
@prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .
@prefix df:   <https://duraflow.dev/ns#> .
@prefix news: <${namespace}> .

df:nerKind a owl:AnnotationProperty ;
  rdfs:label "NER entity kind" .

# Agents
news:Person a owl:Class ;
  rdfs:label "Person" ;
  df:nerKind "person" .

news:Organization a owl:Class ;
  rdfs:label "Organization" ;
  df:nerKind "organization" .

news:Company a owl:Class ;
  rdfs:label "Company" ;
  rdfs:subClassOf news:Organization .

news:University a owl:Class ;
  rdfs:label "University" ;
  rdfs:subClassOf news:Organization .

# Places
news:Place a owl:Class ;
  rdfs:label "Place" ;
  df:nerKind "place" .

news:City a owl:Class ;
  rdfs:label "City" ;
  rdfs:subClassOf news:Place .

news:Country a owl:Class ;
  rdfs:label "Country" ;
  rdfs:subClassOf news:Place .

# Other things in the news
news:Event a owl:Class ;
  rdfs:label "Event" .

news:Product a owl:Class ;
  rdfs:label "Product" .

# Properties
news:name a owl:DatatypeProperty ;
  rdfs:label "name" ;
  rdfs:range xsd:string .

news:worksFor a owl:ObjectProperty ;
  rdfs:label "works for" ;
  rdfs:domain news:Person ;
  rdfs:range news:Organization .

news:headquarteredIn a owl:ObjectProperty ;
  rdfs:label "headquartered in" ;
  rdfs:domain news:Organization ;
  rdfs:range news:City .

news:locatedIn a owl:ObjectProperty ;
  rdfs:label "located in" ;
  rdfs:domain news:Place ;
  rdfs:range news:Place .

news:bornIn a owl:ObjectProperty ;
  rdfs:label "born in" ;
  rdfs:domain news:Person ;
  rdfs:range news:Place .

news:produces a owl:ObjectProperty ;
  rdfs:label "produces" ;
  rdfs:domain news:Company ;
  rdfs:range news:Product .

news:takesPlaceIn a owl:ObjectProperty ;
  rdfs:label "takes place in" ;
  rdfs:domain news:Event ;
  rdfs:range news:Place .

news:participatesIn a owl:ObjectProperty ;
  rdfs:label "participates in" ;
  rdfs:domain news:Person ;
  rdfs:range news:Event .

news:foundedOn a owl:DatatypeProperty ;
  rdfs:label "founded on" ;
  rdfs:domain news:Organization ;
  rdfs:range xsd:date .
`
