/**
 * One layer that gives a domain its `WorkflowEngine`.
 *
 * - `durable`: `ClusterWorkflowEngine` on @effect/cluster, each process a
 *   runner (`ClusterRunner`: the library's socket transport, so replicas of
 *   one app share its shards), with the app's prefix on every table and
 *   `ShardLockStorage` for shard locks, so apps sharing one database never
 *   block each other. The cluster tables are created under the prefix's
 *   schema lock, so simultaneous starts do not race.
 * - `memory`: `WorkflowEngine.layerMemory`, for tests and quick local runs;
 *   the engine needs no database and keeps nothing across restarts. Whether
 *   the app needs one is `AppRuntime`'s business: `layerConfig` (domains with
 *   tables) still requires `DATABASE_URL`; `layerConfigWithoutSql` /
 *   `layerMemory` run with no database at all.
 *
 * `layerConfig` reads `WORKFLOW_MODE` (`durable` | `memory`, default durable)
 * and `WORKFLOW_MAX_RUNS_IN_FLIGHT` (durable; default 100, 0 = no bound).
 */
import type { MessageStorage, Sharding } from "@effect/cluster"
import { ClusterWorkflowEngine } from "@effect/cluster"
import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { WorkflowEngine } from "@effect/workflow"
import { Config, Context, Effect, Layer, Option } from "effect"
import * as ClusterRunner from "./internal/ClusterRunner.js"
import { InvalidRuntimeConfig } from "./RuntimeError.js"
import * as DeferredWake from "./internal/DeferredWake.js"
import * as ActivityTelemetry from "./internal/ActivityTelemetry.js"
import * as InlineActivities from "./internal/InlineActivities.js"
import * as RunAdmission from "./internal/RunAdmission.js"
import * as RunEntities from "./internal/RunEntities.js"
import * as RunOutcomes from "./internal/RunOutcomes.js"
import * as ShardLockStorage from "./internal/ShardLockStorage.js"
import * as TablePrefix from "./TablePrefix.js"
import * as TransientRetry from "./internal/TransientRetry.js"
import * as WakeUps from "./internal/WakeUps.js"

export type Mode = "durable" | "memory"
export const modes: ReadonlyArray<Mode> = ["durable", "memory"]

/** What the running app is: read by health checks and operators. */
export class WorkflowRuntime extends Context.Tag("@duraflow/runtime-core/WorkflowRuntime")<WorkflowRuntime, {
  readonly mode: Mode
  readonly prefix: TablePrefix.TablePrefix
}>() {}

export type ShardingOptions = ClusterRunner.ShardingOptions

export interface DurableOptions {
  readonly sharding?: ShardingOptions | undefined
  /** Where this replica's runner listens and what it registers (default: 127.0.0.1, any free port). */
  readonly runner?: ClusterRunner.Address | undefined
  readonly locks?: ShardLockStorage.Options | undefined
  /**
   * At most this many runs execute at once in this process; more wait in
   * storage, started, and run as slots free (`RunAdmission`). Child runs are
   * never held. `0`: no bound. Default `defaultMaxRunsInFlight`.
   */
  readonly maxRunsInFlight?: number | undefined
}

/** The default bound on runs executing at once per process (`WORKFLOW_MAX_RUNS_IN_FLIGHT`). */
export const defaultMaxRunsInFlight = 100

/**
 * Durable engine for `prefix`; requires the Postgres client. The engine is
 * wrapped by `WakeUps`, so clocks, signals and runs started elsewhere resume
 * promptly instead of at the next storage poll, by `TransientRetry`, so a
 * start or a signal does not fail because a connection just died, and by
 * `DeferredWake`, so a signal wakes a run that is still active (a race), and
 * by `InlineActivities`, so an activity runs in its run's fiber and only its
 * outcome is written, and by `RunAdmission`, so a burst of starts waits in
 * storage instead of executing all at once (`maxRunsInFlight`), and by
 * `RunOutcomes`, so a run's final ledger status commits with its reply. The
 * engine's entities are released as soon as they are idle (`RunEntities`).
 */
export const layerDurable = (
  prefix: TablePrefix.TablePrefix,
  options?: DurableOptions
): Layer.Layer<
  | WorkflowEngine.WorkflowEngine
  | WorkflowRuntime
  | Sharding.Sharding
  | MessageStorage.MessageStorage
  | ShardLockStorage.Membership
  | RunOutcomes.RunOutcomes,
  InvalidRuntimeConfig,
  SqlClient.SqlClient | PgClient.PgClient
> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const maxRunsInFlight = options?.maxRunsInFlight ?? defaultMaxRunsInFlight
    if (!Number.isSafeInteger(maxRunsInFlight) || maxRunsInFlight < 0) {
      return yield* new InvalidRuntimeConfig({
        key: "maxRunsInFlight",
        reason: `must be a whole number of runs (0 = no bound), got ${maxRunsInFlight}`
      })
    }
    // one gate per built runtime, shared by the storage reads it filters and the executions it counts
    const admission = RunAdmission.make(maxRunsInFlight)
    // the runs ledger's final writes, handed to the replies they commit with
    const outcomes = RunOutcomes.make()
    return TransientRetry.layer.pipe(
      Layer.provide(WakeUps.layer(prefix)),
      Layer.provide(DeferredWake.layer),
      Layer.provide(InlineActivities.layer(prefix, {
        firstExecution: (workflowName, executionId) => admission.firstExecution(workflowName, executionId)
      })),
      Layer.provide(RunAdmission.layer(admission)),
      Layer.provide(ClusterWorkflowEngine.layer.pipe(Layer.provide(RunEntities.layer))),
      Layer.provideMerge(ClusterRunner.layer(prefix, {
        address: options?.runner,
        sharding: options?.sharding,
        locks: options?.locks,
        admission,
        outcomes
      })),
      Layer.merge(Layer.succeed(WorkflowRuntime, { mode: "durable", prefix })),
      Layer.merge(Layer.succeed(RunOutcomes.RunOutcomes, outcomes))
    )
  }))

/** In-memory engine: no database, nothing survives a restart. Signals wake active runs (`DeferredWake`). */
export const layerMemory = (
  prefix: TablePrefix.TablePrefix
): Layer.Layer<WorkflowEngine.WorkflowEngine | WorkflowRuntime> =>
  Layer.merge(
    DeferredWake.layerMemory.pipe(Layer.provide(ActivityTelemetry.layerMemory), Layer.provide(WorkflowEngine.layerMemory)),
    Layer.succeed(WorkflowRuntime, { mode: "memory", prefix })
  )

/** Reads `WORKFLOW_MODE`; unset means durable (the app has a database). */
export const modeConfig: Config.Config<Option.Option<string>> = Config.option(Config.string("WORKFLOW_MODE"))

export const parseMode = (raw: Option.Option<string>): Effect.Effect<Mode, InvalidRuntimeConfig> => {
  const value = Option.getOrElse(raw, () => "durable").trim().toLowerCase()
  return modes.includes(value as Mode)
    ? Effect.succeed(value as Mode)
    : Effect.fail(
      new InvalidRuntimeConfig({
        key: "WORKFLOW_MODE",
        reason: `must be one of ${modes.map((m) => `"${m}"`).join(", ")}, got ${JSON.stringify(Option.getOrThrow(raw))}`
      })
    )
}

/** `WORKFLOW_MAX_RUNS_IN_FLIGHT`: a whole number, 0 for no bound; unset or empty: the default. */
export const maxRunsInFlightConfig: Config.Config<Option.Option<string>> = Config.option(
  Config.string("WORKFLOW_MAX_RUNS_IN_FLIGHT")
)

export const parseMaxRunsInFlight = (raw: Option.Option<string>): Effect.Effect<number, InvalidRuntimeConfig> => {
  const text = Option.getOrElse(raw, () => "").trim()
  if (text === "") return Effect.succeed(defaultMaxRunsInFlight)
  return /^\d{1,9}$/.test(text)
    ? Effect.succeed(Number(text))
    : Effect.fail(
      new InvalidRuntimeConfig({
        key: "WORKFLOW_MAX_RUNS_IN_FLIGHT",
        reason: `must be a whole number of runs (0 = no bound), got ${JSON.stringify(text)}`
      })
    )
}

/**
 * The engine chosen by `WORKFLOW_MODE`, for `prefix`; a durable runner's
 * address from `RUNNER_HOST` / `RUNNER_PORT` / `RUNNER_LISTEN_HOST`
 * (see `ClusterRunner`) unless `options.runner` gives one; the bound on
 * runs executing at once from `WORKFLOW_MAX_RUNS_IN_FLIGHT` (see `DurableOptions`).
 */
export const layerConfig = (
  prefix: TablePrefix.TablePrefix,
  options?: { readonly sharding?: ShardingOptions | undefined; readonly runner?: ClusterRunner.Address | undefined }
): Layer.Layer<
  WorkflowEngine.WorkflowEngine | WorkflowRuntime,
  InvalidRuntimeConfig | import("effect/ConfigError").ConfigError,
  SqlClient.SqlClient | PgClient.PgClient
> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const mode = yield* Effect.flatMap(modeConfig, parseMode)
      if (mode === "memory") return layerMemory(prefix)
      const runner = options?.runner ?? (yield* ClusterRunner.config)
      const maxRunsInFlight = yield* Effect.flatMap(maxRunsInFlightConfig, parseMaxRunsInFlight)
      return layerDurable(prefix, { sharding: options?.sharding, runner, maxRunsInFlight })
    })
  )
