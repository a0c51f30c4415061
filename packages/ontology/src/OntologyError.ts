// Every failure this package reports, as Schema tagged errors so they serialize across workflow
// and HTTP boundaries and can be caught by tag.
import { Schema } from "effect"
import * as OntologyProblem from "./OntologyProblem.js"

/** The Turtle document could not be parsed; `line` is the 1-based line n3 stopped at, when known. */
export class InvalidTurtle extends Schema.TaggedError<InvalidTurtle>()("InvalidTurtle", {
  message: Schema.String,
  line: Schema.optional(Schema.Number)
}) {}

/** The Turtle parsed but the ontology is structurally unsound; carries every problem found. */
export class InvalidOntology extends Schema.TaggedError<InvalidOntology>()("InvalidOntology", {
  problems: Schema.Array(OntologyProblem.Problem)
}) {
  override get message(): string {
    const n = this.problems.length
    return [
      `invalid ontology (${n} problem${n === 1 ? "" : "s"}):`,
      ...this.problems.map((p) => `  - ${OntologyProblem.format(p)}`)
    ].join("\n")
  }
}
