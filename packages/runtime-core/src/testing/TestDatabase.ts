/**
 * A fresh Postgres database per test suite. Creates `t_<suite>_<random>` on the
 * test server (`TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres),
 * provides a `PgClient`/`SqlClient` for it, and drops it (WITH FORCE) when the
 * layer is released, so suites never see each other's tables and leave nothing behind.
 */
import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql"
import { Config, Context, Effect, Layer, Redacted } from "effect"
import * as Database from "../Database.js"
import type { DatabaseUnavailable, InvalidRuntimeConfig } from "../RuntimeError.js"

export const DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"

export class TestDatabase extends Context.Tag("@duraflow/runtime-core/testing/TestDatabase")<TestDatabase, {
  readonly name: string
  /** A URL for the fresh database, to hand to child processes. */
  readonly url: string
}>() {}

export const adminUrl = Config.string("TEST_DATABASE_URL").pipe(Config.withDefault(DEFAULT_ADMIN_URL))

/** The URL of `database` on the same server as `url`. */
export const withDatabase = (url: string, database: string): string => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const quote = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

/** Creates the database and returns its name and URL; drops it on scope close. */
export const make = (suite = "suite") =>
  Effect.gen(function*() {
    const admin = yield* adminUrl
    const name = `t_${suite.toLowerCase().replace(/[^a-z0-9]+/g, "_").slice(0, 30)}_${
      Math.random().toString(36).slice(2, 10)
    }`
    const adminLayer = Database.layer({ url: Redacted.make(admin), applicationName: "duraflow-test-admin" })
    const runAdmin = (statement: string) =>
      Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(statement)).pipe(Effect.provide(adminLayer), Effect.orDie)
    yield* Effect.acquireRelease(
      runAdmin(`CREATE DATABASE ${quote(name)}`),
      () => runAdmin(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`)
    )
    return { name, url: withDatabase(admin, name) }
  })

/** `TestDatabase` plus a client connected to it. */
export const layer = (
  suite?: string
): Layer.Layer<
  TestDatabase | PgClient.PgClient | SqlClient.SqlClient,
  DatabaseUnavailable | InvalidRuntimeConfig | import("effect/ConfigError").ConfigError
> =>
  Layer.unwrapScoped(Effect.map(make(suite), (db) =>
    Layer.merge(
      Layer.succeed(TestDatabase, db),
      Database.layer({ url: Redacted.make(db.url), applicationName: "duraflow-test" })
    )))
