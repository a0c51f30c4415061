// Public API of @duraflow/ontology: parse Turtle, validate, hash, and the schemas around them.
export * as ContentHash from "./ContentHash.js"
export * as OntologyError from "./OntologyError.js"
export * as OntologyModel from "./OntologyModel.js"
export * as OntologyProblem from "./OntologyProblem.js"
export * as OntologyValidation from "./OntologyValidation.js"
export * as SampleOntology from "./SampleOntology.js"
export * as TurtleParser from "./TurtleParser.js"
export * as Vocabulary from "./Vocabulary.js"
