/**
 * Every error runtime-core can raise, in one place, so that apps can match on
 * `_tag` and users read one message that names the culprit and the rule.
 */
import { Cause, Schema } from "effect"

/** A table prefix broke one of the naming rules (see `TablePrefix`). */
export class InvalidTablePrefix extends Schema.TaggedError<InvalidTablePrefix>()("InvalidTablePrefix", {
  prefix: Schema.String,
  rule: Schema.String
}) {
  override get message(): string {
    return `Invalid table prefix ${JSON.stringify(this.prefix)}: ${this.rule}`
  }
}

/** A configuration value (env var or option) is missing or malformed. */
export class InvalidRuntimeConfig extends Schema.TaggedError<InvalidRuntimeConfig>()("InvalidRuntimeConfig", {
  key: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid configuration ${this.key}: ${this.reason}`
  }
}

/** Postgres could not be reached (down, wrong host/port, refused, auth failed). */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  host: Schema.String,
  port: Schema.Number,
  database: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Postgres at ${this.host}:${this.port} (database "${this.database}") is unavailable: ${this.reason}`
  }
}

/** The declared migration list itself is malformed (duplicate ids, bad order, empty SQL). */
export class InvalidMigrations extends Schema.TaggedError<InvalidMigrations>()("InvalidMigrations", {
  prefix: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid migrations for prefix "${this.prefix}": ${this.reason}`
  }
}

/** An applied migration's text changed since it was applied: refuse to start. */
export class MigrationChecksumMismatch
  extends Schema.TaggedError<MigrationChecksumMismatch>()("MigrationChecksumMismatch", {
    prefix: Schema.String,
    id: Schema.Number,
    name: Schema.String,
    applied: Schema.String,
    declared: Schema.String
  })
{
  override get message(): string {
    return `Migration ${this.id} "${this.name}" of prefix "${this.prefix}" was changed after it was applied ` +
      `(applied checksum ${this.applied.slice(0, 12)}, declared ${this.declared.slice(0, 12)}). ` +
      `Applied migrations are immutable: add a new migration instead.`
  }
}

/** The database holds migrations this build does not know (e.g. a newer build ran before). */
export class MigrationUnknown extends Schema.TaggedError<MigrationUnknown>()("MigrationUnknown", {
  prefix: Schema.String,
  id: Schema.Number,
  name: Schema.String
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" is applied in the database for prefix "${this.prefix}" ` +
      `but is not declared by this build (was a newer version deployed?)`
  }
}

/** A migration touched, or tried to touch, a relation outside its own prefix. */
export class MigrationOutsidePrefix extends Schema.TaggedError<MigrationOutsidePrefix>()("MigrationOutsidePrefix", {
  prefix: Schema.String,
  id: Schema.Number,
  name: Schema.String,
  relations: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" of prefix "${this.prefix}" touches relations outside ` +
      `"${this.prefix}_*": ${this.relations.join(", ")}`
  }
}

/** A migration's SQL failed; the transaction was rolled back and nothing was applied. */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  prefix: Schema.String,
  id: Schema.Number,
  name: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" of prefix "${this.prefix}" failed: ${this.reason}`
  }
}

export type MigrationError =
  | InvalidMigrations
  | MigrationChecksumMismatch
  | MigrationUnknown
  | MigrationOutsidePrefix
  | MigrationFailed

/**
 * What a run's record says about a defect: the error's name and message, never
 * its stack (as `Schema.Defect` encodes it in the engine's storage). The
 * cause with its stack goes to the log.
 */
export const defectMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  return text.slice(0, 2000)
}

/** A schedule's cron expression or time zone is not valid (see `WorkflowSchedule`). */
export class InvalidSchedule extends Schema.TaggedError<InvalidSchedule>()("InvalidSchedule", {
  schedule: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid schedule ${JSON.stringify(this.schedule)}: ${this.reason}`
  }
}
