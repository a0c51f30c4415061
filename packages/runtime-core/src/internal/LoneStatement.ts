/**
 * A transactional step whose body is one SQL statement and returns nothing
 * (`TransactionalActivity.make({ name, execute: sql\`UPDATE ...\` })`): the
 * statement and the step's exit row travel as ONE simple-protocol query,
 * `<statement>;\n<exit row>`, which Postgres runs as one implicit transaction
 * (both commit, or neither does). One round trip and two statements on the
 * server, where a body of any other shape needs two round trips and four
 * statements (`BEGIN` with its first statement, then the exit row with
 * `COMMIT`: `BeginWithFirstStatement`).
 *
 * Only a body the runtime can read before it runs qualifies: an
 * `@effect/sql` `Statement` itself (not an effect built from one, such as
 * `Effect.asVoid(statement)`), with no statement transformer in effect, whose
 * parameters can be written as literals (`PgLiterals.inline`: one statement,
 * no binary values). Its rows are not returned: the step's success is void,
 * so its exit is known before the statement runs. Anything else takes the
 * general path, with the same outcome.
 */
import type { SqlClient } from "@effect/sql"
import * as Statement from "@effect/sql/Statement"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, type Fiber, type Schema, SchemaAST } from "effect"
import * as PgLiterals from "./PgLiterals.js"
import * as PgPool from "./PgPool.js"
import * as PoolConnection from "./PoolConnection.js"

export interface LoneStatement {
  /** The statement as compiled (its parameters `$1`..`$n`): the span's query text. */
  readonly sql: string
  /** The statement with its parameters written in as literals. */
  readonly inlined: string
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
 * row: `success` void (or none), `body` a `Statement`, no transformer set on
 * `fiber`, and its parameters inlinable. `undefined` otherwise.
 */
export const of = (
  body: unknown,
  success: Schema.Schema.All | undefined,
  fiber: Fiber.RuntimeFiber<unknown, unknown>
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
  const inlined = PgLiterals.inline(compiled[0], compiled[1])
  if (inlined === undefined) return undefined
  return { sql: compiled[0], inlined, attributes: body.spanAttributes ?? [] }
}

/**
 * `text` (the statement and the exit row) as one query on a connection of
 * `sql`'s pool (taken for this query and given back), or reserved through
 * `@effect/sql` for a client `Database` did not build. Traced as the
 * statement, as `@effect/sql` traces it (the query text without its values).
 * Interrupted, it is cancelled on the server: then it committed or it did not,
 * and a replay finds out from the exit row.
 */
export const commit = (
  sql: SqlClient.SqlClient,
  statement: LoneStatement,
  text: string
): Effect.Effect<void, SqlError> => {
  const pool = PgPool.of(sql)
  const sent: Effect.Effect<unknown, SqlError> = pool !== undefined
    ? Effect.suspend(() => {
      const held = PoolConnection.make(pool)
      return Effect.ensuring(held.connection.executeUnprepared(text, [], undefined), Effect.sync(() => held.release()))
    })
    : Effect.scoped(Effect.flatMap(sql.reserve, (conn) => conn.executeUnprepared(text, [], undefined)))
  // as @effect/sql: a span of its own, not the parent of anything (no context to copy)
  return Effect.useSpan("sql.execute", { kind: "client", captureStackTrace: false }, (span) => {
    for (const [key, value] of statement.attributes) span.attribute(key, value)
    span.attribute("db.operation.name", "execute")
    span.attribute("db.query.text", statement.sql)
    return Effect.asVoid(sent)
  })
}
