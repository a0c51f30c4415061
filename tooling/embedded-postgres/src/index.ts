/**
 * A local Postgres for dev runs and tests: `EmbeddedPostgres.layer({ dataDir })`
 * attaches to the server already running on that directory or starts one.
 */
export * as EmbeddedPostgres from "./EmbeddedPostgres.js"
