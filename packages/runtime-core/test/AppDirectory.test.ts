/**
 * `AppDirectory`: the apps on a database as an operator sees them. `discover`
 * reads only system catalogs, so a role with no privilege on any app's table
 * finds the apps too; `runCounts` answers `undefined` for such a role instead of
 * failing, and the counts for one that may read the ledger.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { AppDirectory } from "../src/index.js"
import { TestDatabase } from "../src/testing/index.js"

describe("AppDirectory", () => {
  layer(TestDatabase.layer("app_directory"), { excludeTestServices: true })((it) => {
    it.scoped("finds the apps from the catalogs; counts runs only where the role may read them", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const db = yield* TestDatabase.TestDatabase
        yield* sql`CREATE TABLE shop_runtime_migrations (id int)`
        yield* sql`CREATE TABLE shop_runs (status text)`
        yield* sql`INSERT INTO shop_runs VALUES ('succeeded'), ('succeeded'), ('failed')`
        yield* sql`CREATE TABLE mail_runtime_migrations (id int)`

        expect(yield* AppDirectory.discover).toEqual([{ prefix: "mail", replicas: 0 }, { prefix: "shop", replicas: 0 }])
        expect(yield* AppDirectory.list).toEqual([
          { prefix: "mail", replicas: 0, health: "down", overdue: 0, runs: {} },
          { prefix: "shop", replicas: 0, health: "down", overdue: 0, runs: { failed: 1, succeeded: 2 } }
        ])

        // an observer: no grant on any app table
        const observer = `obs_${db.name.slice(-8)}`
        yield* Effect.acquireRelease(
          sql.unsafe(`CREATE ROLE "${observer}" NOLOGIN`),
          () => Effect.ignore(sql.unsafe(`DROP ROLE IF EXISTS "${observer}"`))
        )
        const asObserver = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
          sql.withTransaction(Effect.zipRight(sql.unsafe(`SET LOCAL ROLE "${observer}"`), effect))
        expect(yield* asObserver(AppDirectory.discover)).toEqual([{ prefix: "mail", replicas: 0 }, { prefix: "shop", replicas: 0 }])
        expect(yield* asObserver(AppDirectory.runCounts("shop"))).toBeUndefined()
        expect(yield* asObserver(AppDirectory.list)).toEqual([
          { prefix: "mail", replicas: 0, health: "down", overdue: 0, runs: {} },
          { prefix: "shop", replicas: 0, health: "down", overdue: 0, runs: {} }
        ])
      }))
  })
})
