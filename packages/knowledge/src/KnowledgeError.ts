// Every failure the knowledge domain can report, in one place, so callers can catch them by tag.
import { Schema } from "effect"

/** Chunker options that cannot produce a valid chunking (programmer error, raised as a defect). */
export class InvalidChunkOptions extends Schema.TaggedError<InvalidChunkOptions>()("InvalidChunkOptions", {
  maxChars: Schema.Number,
  overlap: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid chunk options (maxChars=${this.maxChars}, overlap=${this.overlap}): ${this.reason}`
  }
}
