/**
 * The table-prefix convention. An app owns exactly the relations whose names
 * start with `<prefix>_`: its domain tables, its migration ledger, and the
 * cluster tables (`<prefix>_cluster_messages`, `_replies`, `_runners`, `_locks`,
 * `_migrations`). Validating the prefix once, at startup, means no derived name
 * can exceed Postgres' 63-byte identifier limit (Postgres would silently
 * truncate it, and two apps could end up sharing a table) or land in a
 * namespace someone else owns (`pg_*`, the library's default `cluster_*`).
 */
import { Effect, Either, Schema } from "effect"
import { InvalidTablePrefix } from "./RuntimeError.js"

/** Postgres truncates identifiers longer than this many bytes. */
export const IDENTIFIER_MAX_BYTES = 63

/**
 * The longest name @effect/cluster derives from the prefix we give it
 * (`<prefix>_cluster` + `_messages_request_id_idx`; the index our patch adds,
 * `_messages_pending_idx`, is shorter on purpose).
 */
const LONGEST_CLUSTER_SUFFIX = "_cluster_messages_request_id_idx"

export const MIN_LENGTH = 2
export const MAX_LENGTH = IDENTIFIER_MAX_BYTES - LONGEST_CLUSTER_SUFFIX.length

const PATTERN = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/

/** Postgres' reserved key words (Appendix C, "reserved" column). */
const RESERVED = new Set(
  ("all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate " +
    "collation column concurrently constraint create cross current_catalog current_date current_role " +
    "current_schema current_time current_timestamp current_user default deferrable desc distinct do else end " +
    "except false fetch for foreign freeze from full grant group having ilike in initially inner intersect into " +
    "is isnull join lateral leading left like limit localtime localtimestamp natural not notnull null offset on " +
    "only or order outer overlaps placing primary references returning right select session_user similar some " +
    "symmetric system_user table tablesample then to trailing true union unique user using variadic verbose " +
    "when where window with").split(" ")
)

/** Returns the rule a candidate prefix breaks, or undefined when it is valid. */
export const violation = (prefix: string): string | undefined => {
  if (prefix.length < MIN_LENGTH || prefix.length > MAX_LENGTH) {
    return `must be ${MIN_LENGTH} to ${MAX_LENGTH} characters long (got ${prefix.length}), ` +
      `so that every derived table and index name fits Postgres' ${IDENTIFIER_MAX_BYTES}-byte identifier limit`
  }
  if (!PATTERN.test(prefix)) {
    return "must be a lowercase identifier: start with a letter a-z, then letters, digits and single " +
      "underscores, not ending with an underscore"
  }
  if (prefix === "pg" || prefix.startsWith("pg_")) {
    return `must not be "pg" or start with "pg_": Postgres reserves that namespace for system objects`
  }
  if (prefix === "cluster") {
    return `must not be "cluster": it is @effect/cluster's default prefix, which apps that do not use ` +
      `runtime-core share`
  }
  if (RESERVED.has(prefix)) {
    return `must not be a Postgres reserved word`
  }
  return undefined
}

/** A validated table prefix. */
export const TablePrefix = Schema.String.pipe(
  Schema.filter((s) => {
    const rule = violation(s)
    return rule === undefined ? true : `Invalid table prefix ${JSON.stringify(s)}: ${rule}`
  }),
  Schema.brand("TablePrefix")
)
export type TablePrefix = typeof TablePrefix.Type

/** Validates a prefix, failing with an error that names the prefix and the rule. */
export const make = (prefix: string): Effect.Effect<TablePrefix, InvalidTablePrefix> =>
  Either.match(validate(prefix), { onLeft: Effect.fail, onRight: Effect.succeed })

export const validate = (prefix: string): Either.Either<TablePrefix, InvalidTablePrefix> => {
  const rule = violation(prefix)
  return rule === undefined ? Either.right(prefix as TablePrefix) : Either.left(new InvalidTablePrefix({ prefix, rule }))
}

/** For constants known to be valid (a domain's own prefix); throws on a bad one. */
export const unsafeMake = (prefix: string): TablePrefix =>
  Either.getOrThrowWith(validate(prefix), (e) => new Error(e.message))

/** Decodes unknown input (e.g. from config) as a prefix. */
export const decode = Schema.decodeUnknown(TablePrefix)

/** The name of one of the app's tables: `<prefix>_<name>`. */
export const table = (prefix: TablePrefix, name: string): string => {
  const full = `${prefix}_${name}`
  if (!/^[a-z0-9_]+$/.test(name) || Buffer.byteLength(full) > IDENTIFIER_MAX_BYTES) {
    throw new Error(
      `Table name ${JSON.stringify(full)} must be lowercase [a-z0-9_] and at most ${IDENTIFIER_MAX_BYTES} bytes`
    )
  }
  return full
}

/** The prefix handed to `SqlMessageStorage` / `SqlRunnerStorage`. */
export const clusterPrefix = (prefix: TablePrefix): string => `${prefix}_cluster`

/** The table recording this app's applied domain migrations. */
export const migrationsTable = (prefix: TablePrefix): string => `${prefix}_migrations`

/** True when a relation name belongs to the app with this prefix. */
export const owns = (prefix: TablePrefix, relation: string): boolean => relation.startsWith(`${prefix}_`)

/**
 * The app's advisory-lock key space: the first key of Postgres' two-key
 * advisory locks (`pg_advisory_lock(space, key)`), shown as `classid` in
 * `pg_locks`. @effect/cluster on Effect 3 uses the ONE-key form for shard
 * locks, whose numbers ignore the prefix; the two-key form is a separate key
 * space, so our locks never meet the library's nor another prefix's.
 * FNV-1a over the prefix, kept non-negative so `classid` equals it.
 */
export const lockSpace = (prefix: TablePrefix): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < prefix.length; i++) {
    hash ^= prefix.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) & 0x7fffffff
}

/**
 * Second keys inside an app's lock space. Shard locks use 0..N-1 (shard
 * index), so the schema lock uses a negative key that can never clash.
 */
export const SCHEMA_LOCK_KEY = -1

/** Held (per transaction) by the replica deleting expired runs (`Retention`): one at a time. */
export const RETENTION_LOCK_KEY = -2

/**
 * Runner presence locks use `RUNNER_LOCK_BASE + machineId`: far above any
 * shard index (shard groups x shards per group), so they never clash either.
 */
export const RUNNER_LOCK_BASE = 1_000_000

/** The app's LISTEN/NOTIFY channel (wake-ups, runner announcements): per prefix, like its locks. */
export const wakeChannel = (prefix: TablePrefix): string => `${prefix}_wake`
