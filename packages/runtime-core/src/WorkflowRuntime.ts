/**
 * One layer that gives a domain its `WorkflowEngine`.
 *
 * - `durable`: `ClusterWorkflowEngine` on a single-runner SQL cluster, composed
 *   like `SingleRunner.layer` (which hard-wires the `cluster` prefix) but with
 *   the app's prefix on every table and `ShardLockStorage` for shard locks, so
 *   apps sharing one database never block each other. The cluster tables are
 *   created under the prefix's schema lock, so simultaneous starts do not race.
 * - `memory`: `WorkflowEngine.layerMemory`, for tests and quick local runs;
 *   the engine needs no database and keeps nothing across restarts. Whether
 *   the app needs one is `AppRuntime`'s business: `layerConfig` (domains with
 *   tables) still requires `DATABASE_URL`; `layerConfigWithoutSql` /
 *   `layerMemory` run with no database at all.
 *
 * `layerConfig` reads `WORKFLOW_MODE` (`durable` | `memory`, default durable).
 */
import {
  ClusterWorkflowEngine,
  MessageStorage,
  RunnerHealth,
  Runners,
  RunnerStorage,
  Sharding,
  ShardingConfig,
  SqlMessageStorage
} from "@effect/cluster"
import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { WorkflowEngine } from "@effect/workflow"
import { Config, Context, Duration, Effect, Layer, Option } from "effect"
import { InvalidRuntimeConfig } from "./RuntimeError.js"
import * as SchemaLock from "./SchemaLock.js"
import * as ShardLockStorage from "./ShardLockStorage.js"
import * as TablePrefix from "./TablePrefix.js"
import * as TransientRetry from "./TransientRetry.js"
import * as WakeUps from "./WakeUps.js"

export type Mode = "durable" | "memory"
export const modes: ReadonlyArray<Mode> = ["durable", "memory"]

/** What the running app is: read by health checks and operators. */
export class WorkflowRuntime extends Context.Tag("@duraflow/runtime-core/WorkflowRuntime")<WorkflowRuntime, {
  readonly mode: Mode
  readonly prefix: TablePrefix.TablePrefix
}>() {}

export type ShardingOptions = Partial<ShardingConfig.ShardingConfig["Type"]>

/**
 * The cluster stack of `SingleRunner.layer({ runnerStorage: "sql" })`, with
 * the app's prefix. Storage construction (which creates the tables) runs under
 * the prefix's schema lock.
 */
export const layerCluster = (
  prefix: TablePrefix.TablePrefix,
  sharding?: ShardingOptions
): Layer.Layer<Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage, never, SqlClient.SqlClient> => {
  const storage = Layer.merge(
    SqlMessageStorage.layerWith({ prefix: TablePrefix.clusterPrefix(prefix) }),
    ShardLockStorage.layer(prefix)
  )
  const lockedStorage: Layer.Layer<
    MessageStorage.MessageStorage | RunnerStorage.RunnerStorage,
    never,
    SqlClient.SqlClient | ShardingConfig.ShardingConfig
  > = Layer.scopedContext(SchemaLock.withSessionLock(prefix, Layer.build(storage)).pipe(Effect.orDie))
  return Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provideMerge(lockedStorage),
    Layer.provide(RunnerHealth.layerNoop),
    Layer.provide(ShardingConfig.layer({ ...defaults, ...sharding }))
  )
}

/**
 * Our defaults on top of @effect/cluster's. A single-runner app has one runner
 * address, so its shard assignment never changes: re-reading the runners
 * table every 3 s (the library default) is idle load for nothing. Messages
 * that need prompt delivery do not wait for the 10 s storage poll (WakeUps).
 */
export const defaults: ShardingOptions = {
  refreshAssignmentsInterval: Duration.seconds(30)
}

/**
 * Durable engine for `prefix`; requires the Postgres client. The engine is
 * wrapped by `WakeUps`, so clocks, signals and runs started elsewhere resume
 * promptly instead of at the next storage poll, and by `TransientRetry`, so a
 * start or a signal does not fail because a connection just died.
 */
export const layerDurable = (
  prefix: TablePrefix.TablePrefix,
  options?: { readonly sharding?: ShardingOptions | undefined }
): Layer.Layer<
  WorkflowEngine.WorkflowEngine | WorkflowRuntime | Sharding.Sharding | MessageStorage.MessageStorage,
  never,
  SqlClient.SqlClient | PgClient.PgClient
> =>
  TransientRetry.layer.pipe(
    Layer.provide(WakeUps.layer(prefix)),
    Layer.provide(ClusterWorkflowEngine.layer),
    Layer.provideMerge(layerCluster(prefix, options?.sharding)),
    Layer.merge(Layer.succeed(WorkflowRuntime, { mode: "durable", prefix }))
  )

/** In-memory engine: no database, nothing survives a restart. */
export const layerMemory = (
  prefix: TablePrefix.TablePrefix
): Layer.Layer<WorkflowEngine.WorkflowEngine | WorkflowRuntime> =>
  Layer.merge(WorkflowEngine.layerMemory, Layer.succeed(WorkflowRuntime, { mode: "memory", prefix }))

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

/** The engine chosen by `WORKFLOW_MODE`, for `prefix`. */
export const layerConfig = (
  prefix: TablePrefix.TablePrefix,
  options?: { readonly sharding?: ShardingOptions | undefined }
): Layer.Layer<
  WorkflowEngine.WorkflowEngine | WorkflowRuntime,
  InvalidRuntimeConfig | import("effect/ConfigError").ConfigError,
  SqlClient.SqlClient | PgClient.PgClient
> =>
  Layer.unwrapEffect(
    Effect.map(Effect.flatMap(modeConfig, parseMode), (mode) =>
      mode === "memory" ? layerMemory(prefix) : layerDurable(prefix, options))
  )
