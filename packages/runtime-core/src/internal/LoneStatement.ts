/**
 * A transactional step whose body is one SQL statement and returns nothing
 * (`TransactionalActivity.make({ name, execute: sql\`UPDATE ...\` })`): the
 * statement and the step's exit row travel as ONE batch (`StatementBatch`:
 * both with their parameters, named once sent often), which Postgres runs as
 * one implicit transaction (both commit, or neither does). One round trip and
 * two statements on the server, where a body of any other shape needs two
 * round trips and four statements (`BEGIN` with its first statement, then the
 * exit row with `COMMIT`: `BeginWithFirstStatement`).
 *
 * Only a body the runtime can read before it runs qualifies: an
 * `@effect/sql` `Statement` itself (not an effect built from one, such as
 * `Effect.asVoid(statement)`), with no statement transformer in effect, that
 * is one statement (a text without parameters may hold several: it qualifies
 * only if `PgLiterals` reads it as one). Its rows are not returned: the step's
 * success is void, so its exit is known before the statement runs. Anything
 * else takes the general path, with the same outcome.
 *
 * On a client `Database` did not build (no pool to take a connection from),
 * the two go as one simple-protocol query, `<statement>;\n<exit row>`, their
 * parameters written in as literals (`PgLiterals.inline`): a statement whose
 * values cannot be (a binary value) takes the general path there.
 */
import type { SqlClient } from "@effect/sql"
import * as Statement from "@effect/sql/Statement"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, type Fiber, type Schema, SchemaAST } from "effect"
import type pg from "pg"
import * as PgLiterals from "./PgLiterals.js"
import * as PgPool from "./PgPool.js"
import * as PoolConnection from "./PoolConnection.js"
import * as StatementBatch from "./StatementBatch.js"

export interface LoneStatement {
  /** The statement as compiled (its parameters `$1`..`$n`): the span's query text. */
  readonly sql: string
  /** Its parameters' values. */
  readonly params: ReadonlyArray<unknown>
  /** On a client `Database` did not build: the statement with its parameters written in as literals. */
  readonly inlined: string | undefined
  /** The statement's own span attributes (its client's: `db.system.name`, ...). */
  readonly attributes: ReadonlyArray<readonly [string, unknown]>
}

interface StatementLike {
  readonly compile: () => readonly [string, ReadonlyArray<unknown>]
  readonly spanAttributes?: ReadonlyArray<readonly [string, unknown]>
}

const isStatement = (u: unknown): u is StatementLike =>
  Statement.isFragment(u) && Effect.isEffect(u) && typeof (u as { compile?: unknown }).compile === "function"

/**
 * `body` as one statement, if it is one that the step can send with its exit
 * row: `success` void (or none), `body` a `Statement` of one statement, no
 * transformer set on `fiber` (and, with `pool` undefined, its parameters
 * inlinable). `undefined` otherwise.
 */
export const of = (
  body: unknown,
  success: Schema.Schema.All | undefined,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  pool: pg.Pool | undefined
): LoneStatement | undefined => {
  if (success !== undefined && !SchemaAST.isVoidKeyword(success.ast)) return undefined
  if (!isStatement(body)) return undefined
  // a transformer may rewrite the statement or run it elsewhere: it runs as any body would
  if (fiber.getFiberRef(Statement.currentTransformer)._tag === "Some") return undefined
  let compiled: readonly [string, ReadonlyArray<unknown>]
  try {
    compiled = body.compile()
  } catch {
    // a statement that does not compile fails as it would have when executed
    return undefined
  }
  const [sql, params] = compiled
  if (pool === undefined) {
    const inlined = PgLiterals.inline(sql, params)
    return inlined === undefined ? undefined : { sql, params, inlined, attributes: body.spanAttributes ?? [] }
  }
  if (!StatementBatch.isStep(sql, params)) return undefined
  return { sql, params, inlined: undefined, attributes: body.spanAttributes ?? [] }
}

/**
 * The statement and `exitRow` as one batch on a connection of `sql`'s pool
 * (taken for it and given back), or as one query on a connection reserved
 * through `@effect/sql` for a client `Database` did not build. Traced as the
 * statement, as `@effect/sql` traces it (the query text without its values).
 * Interrupted, it is cancelled on the server: then it committed or it did
 * not, and a replay finds out from the exit row.
 */
export const commit = (
  sql: SqlClient.SqlClient,
  statement: LoneStatement,
  exitRow: StatementBatch.Step
): Effect.Effect<void, SqlError> => {
  const pool = PgPool.of(sql)
  const sent: Effect.Effect<unknown, SqlError> = Effect.suspend(() => {
    if (pool !== undefined) return PoolConnection.batchOnce(pool, [{ text: statement.sql, values: statement.params }, exitRow])
    const exitText = PgLiterals.inline(exitRow.text, exitRow.values)
    // (an exit row's values are text and numbers: always inlinable; else two statements in a transaction)
    if (statement.inlined === undefined || exitText === undefined) {
      return sql.withTransaction(
        Effect.zipRight(sql.unsafe(statement.sql, statement.params), sql.unsafe(exitRow.text, exitRow.values))
      )
    }
    return Effect.scoped(
      Effect.flatMap(sql.reserve, (conn) => conn.executeUnprepared(`${statement.inlined};\n${exitText}`, [], undefined))
    )
  })
  // as @effect/sql: a span of its own, not the parent of anything (no context to copy)
  return Effect.useSpan("sql.execute", { kind: "client", captureStackTrace: false }, (span) => {
    for (const [key, value] of statement.attributes) span.attribute(key, value)
    span.attribute("db.operation.name", "execute")
    span.attribute("db.query.text", statement.sql)
    return Effect.asVoid(sent)
  })
}
