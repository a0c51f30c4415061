/**
 * Activities whose database writes and recorded result commit together.
 *
 * A plain activity is at-least-once: its result is only as durable as the
 * write of its exit, so after a crash the engine runs the body again and
 * its writes happen twice unless they are idempotent (docs/ARCHITECTURE.md, section 5).
 * A transactional activity runs its body inside ONE Postgres transaction that
 * also records its result, keyed by (execution id, activity name, attempt):
 * on the durable engine as the step's exit row in `<prefix>_activity_exits`
 * (`InlineActivities`, so nothing is written after the commit), otherwise in
 * the `ActivityLedger`, `<prefix>_activity_results`. When the run is replayed, the
 * committed result is found and returned and the body does not run again;
 * when the body failed or the process died before commit, nothing it wrote
 * exists. Two executions racing on the same key cannot both commit: the loser
 * hits the primary key, rolls back, retries, and returns the winner's result.
 *
 * The body must do its work through the app's `SqlClient` (any repository
 * using it joins the transaction); effects outside the database (HTTP calls,
 * e-mails) are not covered and belong in plain activities.
 */
import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Activity, WorkflowEngine } from "@effect/workflow"
import { Cause, Context, Effect, Either, Exit, Layer, Option, Schema, Scope } from "effect"
import * as BeginWithFirstStatement from "./internal/BeginWithFirstStatement.js"
import * as InlineActivities from "./internal/InlineActivities.js"
import * as LoneStatement from "./internal/LoneStatement.js"
import * as PgLiterals from "./internal/PgLiterals.js"
import * as PgPool from "./internal/PgPool.js"
import * as PoolConnection from "./internal/PoolConnection.js"
import * as StatementBatch from "./internal/StatementBatch.js"
import * as WriteBehind from "./internal/WriteBehind.js"
import * as Retry from "./Retry.js"
import * as TablePrefix from "./TablePrefix.js"

/** Where transactional activities record their results: the app's `<prefix>_activity_results`. */
export class ActivityLedger extends Context.Tag("@duraflow/runtime-core/ActivityLedger")<ActivityLedger, {
  readonly once: <A, E, R>(
    key: { readonly executionId: string; readonly activity: string; readonly attempt: number },
    schema: Schema.Schema<A, any, never>,
    body: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError, R>
}>() {}

const isSqlError = (u: unknown): u is SqlError => (u as { _tag?: string })?._tag === "SqlError"

const isUniqueViolation = (error: unknown) =>
  (error as { cause?: { code?: string } })?.cause?.code === "23505"

export const makeLedger = (prefix: TablePrefix.TablePrefix) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = sql(TablePrefix.table(prefix, "activity_results"))
    return ActivityLedger.of({
      once: (key, schema, body) =>
        sql.withTransaction(Effect.gen(function*() {
          const [committed] = yield* sql<{ result: unknown }>`SELECT result FROM ${table}
            WHERE execution_id = ${key.executionId} AND activity = ${key.activity} AND attempt = ${key.attempt}`
          if (committed) return yield* Effect.orDie(Schema.decodeUnknown(schema)(committed.result))
          const value = yield* body
          const encoded = yield* Effect.orDie(Schema.encode(schema)(value))
          yield* sql`INSERT INTO ${table} (execution_id, activity, attempt, result)
            VALUES (${key.executionId}, ${key.activity}, ${key.attempt}, ${JSON.stringify(encoded ?? null)}::jsonb)`
          return value
        })).pipe(
          // @effect/sql turns a failed COMMIT or ROLLBACK (a connection lost mid-transaction)
          // into a defect; it is as transient as any other SqlError here, and safe to retry:
          // the ledger says whether the commit landed
          Effect.catchAllDefect((defect) => isSqlError(defect) ? Effect.fail(defect) : Effect.die(defect)),
          // a concurrent execution committed first: our writes were rolled back; read its result
          Effect.retry({ times: 3, while: (e) => isUniqueViolation(e) })
        )
    })
  })

export const layer = (prefix: TablePrefix.TablePrefix): Layer.Layer<ActivityLedger, never, SqlClient.SqlClient> =>
  Layer.effect(ActivityLedger, makeLedger(prefix))

/**
 * Like `Activity.make`, but exactly-once for the body's database writes (see
 * above). Database errors roll the transaction back and run it again with
 * backoff (for up to 2 minutes); nothing of a failed try is committed.
 *
 * On the durable engine a body that is one statement with no result
 * (`execute: sql\`UPDATE ...\``, the `Statement` itself) is one round trip:
 * the statement and the step's exit row go as one batch (`LoneStatement`).
 * On a `Database` pool, a body's writes whose answer it does not read are held
 * back and go with its next statement or its exit row (`WriteBehind`): a body
 * that only writes is one round trip too. Any other body is a transaction of
 * two round trips; on a busy pool the second travels with another step's
 * first (`TransactionRelay`).
 */
export const make = <
  R,
  Success extends Schema.Schema<any, any, never> = typeof Schema.Void,
  Error extends Schema.Schema.All = typeof Schema.Never
>(options: {
  readonly name: string
  readonly success?: Success | undefined
  readonly error?: Error | undefined
  /** Runs inside the transaction; its `SqlError`s restart the transaction. */
  readonly execute: Effect.Effect<Success["Type"], Error["Type"] | SqlError, R>
}) =>
  Activity.make({
    name: options.name,
    success: options.success,
    error: options.error,
    execute: Effect.withFiberRuntime((fiber) => {
      const context = fiber.currentContext as Context.Context<SqlClient.SqlClient>
      const recording = Context.getOption(context, InlineActivities.Recording)
      if (Option.isSome(recording)) {
        const sql = Context.get(context, SqlClient.SqlClient)
        const lone = LoneStatement.of(options.execute, options.success, fiber, PgPool.of(sql))
        return withExitRow(sql, recording.value, options, lone)
      }
      return Effect.gen(function*() {
        // provided by AppRuntime to every workflow; checked here rather than in the type so that
        // domains declare only their own dependencies
        const ledger = yield* Effect.serviceOption(ActivityLedger).pipe(
          Effect.flatMap(Effect.orElse(() =>
            Effect.dieMessage(`TransactionalActivity "${options.name}" needs an ActivityLedger: run the workflow on AppRuntime`)
          ))
        )
        const instance = yield* WorkflowEngine.WorkflowInstance
        const attempt = yield* Activity.CurrentAttempt
        return yield* ledger.once(
          { executionId: instance.executionId, activity: options.name, attempt },
          (options.success ?? Schema.Void) as Schema.Schema<Success["Type"], any, never>,
          options.execute
        ).pipe(
          // the transaction rolled back as a whole: run it again from the start
          Retry.retrying({ schedule: Retry.transaction, while: isSqlError, orDie: true })
        )
      })
    }) as Effect.Effect<Success["Type"], Error["Type"], R | WorkflowEngine.WorkflowInstance>
  })

/**
 * On the durable engine (`InlineActivities`): the body's writes and the step's
 * exit row commit in ONE transaction, so the engine writes nothing after it.
 * A body that is one statement with no result (`lone`) is sent with its exit
 * row in one round trip (`LoneStatement`); any other runs in a transaction whose
 * exit row goes with COMMIT (`committingWith`). The engine looked for a
 * recorded exit just before; a retried try (a database error, or a
 * concurrent execution that committed first: the primary key) looks again,
 * first (in the transaction, for the general form), and returns what it finds.
 *
 * Written with few Effect operations: every step of every transactional run
 * goes through here (`pnpm bench`: the transactional/plain ratio). The exit is
 * encoded without an effect of its own when its schemas allow (nearly always),
 * the value goes through the transaction's last query unchanged, and the
 * step is marked recorded where the connection goes back.
 */
const withExitRow = <R, A, E>(
  sql: SqlClient.SqlClient,
  recording: InlineActivities.Recording["Type"],
  options: {
    readonly success?: Schema.Schema.All | undefined
    readonly error?: Schema.Schema.All | undefined
    readonly execute: Effect.Effect<A, E | SqlError, R>
  },
  lone: LoneStatement.LoneStatement | undefined
): Effect.Effect<A, E, R> => {
  const exitSchema = InlineActivities.exitSchema(options.success ?? Schema.Void, options.error ?? Schema.Never)
  const decoded = (recorded: { readonly exit: unknown }) =>
    Effect.flatten(Effect.orDie(Schema.decodeUnknown(exitSchema)(recorded.exit)) as Effect.Effect<Exit.Exit<A, E>>)
  const committed = () => {
    // committed, or found committed: the engine writes no exit row of its own
    recording.recorded = true
  }
  let tries = 0
  if (lone !== undefined) {
    const send = Effect.flatMap(
      InlineActivities.encodeExit(exitSchema, Exit.void),
      (encoded) => LoneStatement.commit(sql, lone, recording.exitRow(encoded))
    )
    const sent = Effect.map(send, () => {
      committed()
      return undefined as A
    })
    return Effect.suspend((): Effect.Effect<A, E | SqlError> => {
      if (tries++ === 0) return sent
      // a retry: the exit recorded meanwhile (by the last try, or another execution), if any
      return Effect.flatMap(recording.lookup, (recorded): Effect.Effect<A, E | SqlError> => {
        if (recorded === undefined) return sent
        return Effect.map(decoded(recorded), (value) => {
          committed()
          return value
        })
      })
    }).pipe(
      // a failed COMMIT may have landed: only the exit row says so, and the next try reads it
      Retry.retrying({ schedule: Retry.transaction, while: isSqlError, orDie: true })
    ) as Effect.Effect<A, E, R>
  }
  // the exit row of a value, in the transaction; none when the value was found recorded
  let found = false
  const exitRowOf = (value: A): StatementBatch.Step | undefined | Effect.Effect<StatementBatch.Step> => {
    if (found) return undefined
    const exit = Exit.succeed(value)
    const encoded = Schema.encodeEither(exitSchema)(exit)
    return Either.isRight(encoded)
      ? recording.exitRow(encoded.right)
      : Effect.map(InlineActivities.encodeExitLater(exitSchema, exit), recording.exitRow)
  }
  // a retry looks, in its transaction, for the exit recorded meanwhile, then runs the body if none
  const lookedUp: Effect.Effect<A, E | SqlError, R> = Effect.flatMap(recording.lookup, (recorded) => {
    if (recorded === undefined) return options.execute
    found = true
    return decoded(recorded)
  })
  // the body's writes are held back (`WriteBehind`) until an attempt must be run again without
  let deferring = true
  const attempt = Effect.suspend(() => {
    found = false
    return committingWith(sql, tries++ === 0 ? options.execute : lookedUp, exitRowOf, committed, deferring)
  })
  return attempt.pipe(
    // (at once, not after the retries' first pause: it is not the database's failure)
    Effect.catchIf(WriteBehind.isReplay, () => {
      deferring = false
      return attempt
    }),
    Retry.retrying({ schedule: Retry.transaction, while: isSqlError, orDie: true })
  ) as Effect.Effect<A, E, R>
}

/** What goes with COMMIT: a statement, none, or a statement still to be computed. */
type Last = StatementBatch.Step | undefined | Effect.Effect<StatementBatch.Step>

/**
 * `body` in a transaction on one connection of `sql` (its statements, and
 * `sql.withTransaction` inside it, use that connection); then `last(result)`
 * (if any) and COMMIT go to the server as ONE batch (`StatementBatch`; on a
 * client `Database` did not build, as one simple-protocol query, the values
 * written in: `PgLiterals`), and `committed` is called. `BEGIN` goes with the
 * body's first statement (`BeginWithFirstStatement`), so a transactional step
 * whose body reads is two round trips: BEGIN with its first statement, and its
 * exit row with COMMIT (on a `Database` pool, either may travel with another
 * step's: `TransactionRelay`). With `deferring` (on a `Database` pool), writes
 * the body does not read the answer of are held back (`WriteBehind`) and go
 * with its next statement or with `last`: a body that only writes is one batch,
 * its writes and `last`, without BEGIN and COMMIT (one implicit transaction); an
 * attempt in which that fails, or whose body failed while writes were held, fails
 * with `WriteBehind.replay`, and the caller runs it again without. A body that
 * sends nothing begins nothing: `last` then runs alone, one statement, atomic by
 * itself. A failed `last` aborts the
 * transaction (the server does not run the COMMIT after it) and it is rolled
 * back; a failed body is rolled back. Failures of BEGIN, `last`, COMMIT and
 * ROLLBACK are `SqlError`s: the caller retries, and a retry first looks for the
 * exit row, which says whether a COMMIT whose answer was lost landed.
 *
 * Only the body is interruptible. The connection is taken and given back, and
 * the transaction ended, uninterruptibly, as `Effect.acquireUseRelease` would,
 * written out here with one handler for both outcomes. The connection comes
 * from the pool itself when `Database` built `sql` (`PoolConnection`: taken by
 * the first statement, no `Scope`), else from `sql.reserve`.
 */
const committingWith = <A, E, R>(
  sql: SqlClient.SqlClient,
  body: Effect.Effect<A, E, R>,
  last: (a: A) => Last,
  committed: () => void,
  deferring: boolean
): Effect.Effect<A, E | SqlError, R> =>
  Effect.uninterruptibleMask((restore) => {
    const pool = PgPool.of(sql)
    if (pool !== undefined) {
      // (this function runs at each execution: one connection per try)
      const held = PoolConnection.make(pool)
      const transaction = BeginWithFirstStatement.make(
        held.connection,
        BeginWithFirstStatement.batched(held),
        deferring ? held : undefined
      )
      return inTransaction(transaction, held.connection, held, restore, body, last, committed, (_exit, broken) => {
        held.release(broken)
      })
    }
    return Effect.flatMap(Scope.make(), (scope) =>
      Effect.flatMap(
        Scope.extend(sql.reserve, scope),
        (conn) =>
          inTransaction(
            BeginWithFirstStatement.make(conn),
            conn,
            undefined,
            restore,
            body,
            last,
            committed,
            (exit) => Scope.close(scope, exit)
          )
      ))
  })

/**
 * The body on `conn` (BEGIN with its first statement), then `last` with
 * COMMIT, or ROLLBACK; then `release`, `broken` when a ROLLBACK failed (the
 * session's state is unknown: a pool connection is then not reused). On a
 * pool's connection (`held`), the first and last queries may travel with
 * other transactions' (`PoolConnection`: the relay); a reserved connection is
 * always taken. `release` gives the connection back where the outcome is
 * handled (uninterruptibly): at once (a pool's connection), or through the
 * effect it returns (a reserved connection's scope).
 */
const inTransaction = <A, E, R>(
  transaction: BeginWithFirstStatement.Transaction,
  conn: Connection,
  held: PoolConnection.Held | undefined,
  restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
  body: Effect.Effect<A, E, R>,
  last: (a: A) => Last,
  committed: () => void,
  release: (exit: Exit.Exit<unknown, unknown>, broken: boolean) => Effect.Effect<void> | void
): Effect.Effect<A, E | SqlError, R> => {
  const ending = (a: A, statement: StatementBatch.Step | undefined): Effect.Effect<A, SqlError> => {
    // writes held back (`WriteBehind`, only on a pool's connection): they go with the exit row,
    // without BEGIN and COMMIT (one implicit transaction) if nothing was begun
    const pending = transaction.takePending()
    if (pending !== undefined) {
      const steps = statement === undefined ? pending : [...pending, statement]
      return transaction.carrying(
        transaction.begun() ? held!.finish([...steps, StatementBatch.commit], a) : Effect.as(held!.once(steps), a)
      )
    }
    if (!transaction.begun()) {
      return statement === undefined ? Effect.succeed(a) : Effect.as(conn.execute(statement.text, statement.values, undefined), a)
    }
    if (held !== undefined) return held.finish(statement === undefined ? [StatementBatch.commit] : [statement, StatementBatch.commit], a)
    const inlined = statement === undefined ? undefined : PgLiterals.inline(statement.text, statement.values)
    return Effect.as(
      statement !== undefined && inlined === undefined
        ? Effect.zipRight(
          conn.execute(statement.text, statement.values, undefined),
          conn.executeUnprepared("COMMIT", [], undefined)
        )
        : conn.executeUnprepared(inlined === undefined ? "COMMIT" : `${inlined};\nCOMMIT`, [], undefined),
      a
    )
  }
  return Effect.matchCauseEffect(
    Effect.flatMap(
      restore(Effect.provideService(body, SqlClient.TransactionConnection, [transaction.connection, 0] as const)),
      (a) => {
        const statement = last(a)
        return Effect.isEffect(statement)
          ? Effect.flatMap(statement, (computed) => ending(a, computed))
          : ending(a, statement)
      }
    ),
    {
      // writes held back when the body failed (not interrupted): sent first (`flush`), to learn
      // whether one of them would have failed (then the attempt runs again without write-behind),
      // and rolled back with the rest
      onFailure: (cause) =>
        Cause.isInterruptedOnly(cause)
          ? rollingBack(cause)
          : Effect.flatMap(Effect.exit(transaction.flush()), () => rollingBack(cause)),
      onSuccess: (a) => {
        const releasing = release(Exit.void, false)
        committed()
        return releasing === undefined ? Effect.succeed(a) : Effect.as(releasing, a)
      }
    }
  )

  function rollingBack(cause: Cause.Cause<E | SqlError>): Effect.Effect<never, E | SqlError> {
    // a batch carrying held writes failed: the attempt runs again without write-behind
    const failure = transaction.doomed() ? Exit.fail(WriteBehind.replay) : Exit.failCause(cause)
    const released = (broken: boolean) => {
      const releasing = release(failure, broken)
      return releasing === undefined ? failure : Effect.zipRight(releasing, failure)
    }
    if (!transaction.begun() || (held !== undefined && !held.taken())) return released(false)
    return Effect.matchEffect(conn.executeUnprepared("ROLLBACK", [], undefined), {
      onFailure: () => released(true),
      onSuccess: () => released(false)
    })
  }
}

/**
 * A ledger in process memory, for a runtime with no database
 * (`AppRuntime.layerMemory`): a replay within the process returns the recorded
 * result without running the body again. There is no transaction to join, so
 * it suits bodies that write no SQL; nothing survives a restart, like the
 * memory engine itself.
 */
export const makeMemoryLedger = Effect.sync(() => {
  const results = new Map<string, unknown>()
  return ActivityLedger.of({
    once: (key, _schema, body) =>
      Effect.suspend(() => {
        const id = JSON.stringify([key.executionId, key.activity, key.attempt])
        if (results.has(id)) return Effect.succeed(results.get(id) as Effect.Effect.Success<typeof body>)
        return Effect.tap(body, (value) => Effect.sync(() => results.set(id, value)))
      })
  })
})

export const layerMemory: Layer.Layer<ActivityLedger> = Layer.effect(ActivityLedger, makeMemoryLedger)
