/**
 * `GET /ready`: whether a load balancer should send this replica traffic.
 *
 * `/health` answers "is the process alive and its database reachable" (a
 * liveness probe). Readiness is stricter: a durable replica is ready only
 * while it is a working member of its app's cluster: registered as a runner,
 * holding its presence lock, its lock session up, and seen healthy in the
 * app's runner ring (`ShardLockStorage.Membership`). Before that (starting)
 * and after it (shutting down, lock session lost, marked unhealthy by the
 * other replicas) it answers 503 with the reason.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import * as ShardLockStorage from "./ShardLockStorage.js"
import { WorkflowRuntime } from "../WorkflowRuntime.js"

export class RunnerMembership extends Schema.Class<RunnerMembership>("RunnerMembership")({
  /** This replica's runner address, as the other replicas reach it. */
  address: Schema.optional(Schema.String),
  /** Live runners (replicas) of this app. */
  runners: Schema.Number,
  /** Shards this replica holds. */
  shards: Schema.Number
}) {}

export class Readiness extends Schema.Class<Readiness>("Readiness")({
  ready: Schema.Boolean,
  /** Why not, when not ready. */
  reason: Schema.optional(Schema.String),
  mode: Schema.Literal("durable", "memory"),
  prefix: Schema.String,
  database: Schema.Struct({ reachable: Schema.Boolean }),
  runner: Schema.optional(RunnerMembership)
}) {}

export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", {
  readiness: Readiness
}, HttpApiSchema.annotations({ status: 503 })) {}

export const endpoint = HttpApiEndpoint.get("ready", "/ready").addSuccess(Readiness).addError(NotReady)

/**
 * The readiness check of this process, built once from the services it has:
 * `check` never fails and is bounded by a 2 s database probe; `handle` is the
 * route's handler (200 when ready, 503 with the same body and the reason).
 */
export const make = Effect.gen(function*() {
  const runtime = yield* WorkflowRuntime
  const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
  const membership = yield* Effect.serviceOption(ShardLockStorage.Membership)
  const check = Effect.gen(function*() {
    const reachable = Option.isNone(sql)
      ? true
      : yield* sql.value`SELECT 1`.pipe(Effect.timeout("2 seconds"), Effect.isSuccess)
    const status = Option.isSome(membership) ? Option.some(yield* membership.value.status) : Option.none()
    const reason = !reachable
      ? "the database is unreachable"
      : Option.isSome(status) && !status.value.ready
      ? status.value.reason ?? "not a working member of the app's cluster"
      : undefined
    return new Readiness({
      ready: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      mode: runtime.mode,
      prefix: runtime.prefix,
      database: { reachable },
      ...(Option.isSome(status)
        ? {
          runner: new RunnerMembership({
            ...(status.value.runner === undefined ? {} : { address: status.value.runner }),
            runners: status.value.runners,
            shards: status.value.shards
          })
        }
        : {})
    })
  })
  const handle = Effect.flatMap(
    check,
    (readiness) => readiness.ready ? Effect.succeed(readiness) : Effect.fail(new NotReady({ readiness }))
  )
  return { check, handle } as const
})
