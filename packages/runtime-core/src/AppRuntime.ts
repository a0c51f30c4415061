/**
 * Everything a domain app runs on, composed in the one order that is safe:
 * database -> runtime and domain migrations -> workflow engine -> run ledger,
 * registry and activity ledger
 * -> the domain's workflows. Migrations finish before the engine starts, so a
 * run resumed at startup never meets a missing table; workflows are registered
 * with the ledger and registry in their context, so every run is recorded.
 *
 * What `WORKFLOW_MODE=memory` needs depends on the domain:
 * - `layerConfig` is for domains that keep data in Postgres (tables,
 *   repositories): `DATABASE_URL` is required in both modes. In memory mode
 *   only the engine is in memory; migrations, the runs ledger and the
 *   activity ledger stay in Postgres, as the domain's writes do.
 * - `layerConfigWithoutSql` is for domains whose workflows need no SQL: in
 *   memory mode it needs no database at all (`layerMemory`: engine, runs ledger
 *   and activity ledger in process memory; `DATABASE_URL` is ignored); in
 *   durable mode it needs `DATABASE_URL` for the engine's state.
 */
import type { WorkflowEngine } from "@effect/workflow"
import { Config, Effect, Layer, Option } from "effect"
import * as Database from "./Database.js"
import * as Migrations from "./Migrations.js"
import { InvalidRuntimeConfig } from "./RuntimeError.js"
import * as RunStore from "./internal/RunStore.js"
import * as RuntimeTables from "./internal/RuntimeTables.js"
import type * as TablePrefix from "./TablePrefix.js"
import * as Retention from "./Retention.js"
import * as TransactionalActivity from "./TransactionalActivity.js"
import * as WorkflowRegistry from "./internal/WorkflowRegistry.js"
import * as WorkflowRuntime from "./WorkflowRuntime.js"

export interface Options<E, R> {
  readonly prefix: TablePrefix.TablePrefix
  readonly migrations: ReadonlyArray<Migrations.Migration>
  /** The domain's workflow layers (built with `WorkflowLayer.make`) and their services. */
  readonly workflows: Layer.Layer<never, E, R>
  readonly sharding?: WorkflowRuntime.ShardingOptions | undefined
  /**
   * This build's version, recorded on every run it starts or resumes (`startedBy`, `resumedBy`):
   * usually the app's package.json version. `APP_VERSION` (e.g. a build id) overrides it.
   */
  readonly version?: string | undefined
}

export type Provided =
  | TransactionalActivity.ActivityLedger
  | WorkflowEngine.WorkflowEngine
  | WorkflowRuntime.WorkflowRuntime
  | WorkflowRegistry.WorkflowRegistry
  | RunStore.RunStore

/** The app's runs ledger, newest first, as `GET /runs` serves it: for tests and operator tools. */
export const listRuns = (options: RunStore.ListOptions) => Effect.flatMap(RunStore.RunStore, (runs) => runs.list(options))

/** `APP_VERSION`, else the version the app declares, else "unknown". */
export const versionConfig = (declared?: string): Config.Config<string> =>
  Config.string("APP_VERSION").pipe(
    Config.map((v) => v.trim()),
    Config.orElse(() => Config.succeed("")),
    Config.map((v) => v !== "" ? v : declared ?? RunStore.UNKNOWN_VERSION)
  )

/** The durable engine's retention sweeper (`RUNS_RETENTION`); the memory engine keeps nothing to delete. */
const retention = (prefix: TablePrefix.TablePrefix) =>
  Layer.unwrapEffect(Effect.map(WorkflowRuntime.WorkflowRuntime, (runtime) =>
    runtime.mode === "durable" ? Retention.layerConfig(prefix) : Layer.empty))

/** The runtime on a given `SqlClient`; the engine is chosen by `WORKFLOW_MODE`. */
export const layer = <E, R>(options: Options<E, R>) =>
  options.workflows.pipe(
    Layer.provideMerge(Layer.mergeAll(
      Layer.unwrapEffect(Effect.map(versionConfig(options.version), (v) => RunStore.layer(options.prefix, v))),
      WorkflowRegistry.layer,
      TransactionalActivity.layer(options.prefix),
      retention(options.prefix)
    )),
    Layer.provideMerge(WorkflowRuntime.layerConfig(options.prefix, { sharding: options.sharding })),
    Layer.provideMerge(Layer.merge(RuntimeTables.layer(options.prefix), Migrations.layer(options.prefix, options.migrations)))
  )

const modeConfig = Effect.flatMap(WorkflowRuntime.modeConfig, WorkflowRuntime.parseMode)

/**
 * The same, with the database from `DATABASE_URL`, which is required in both
 * modes: the domain's data lives in Postgres (see above).
 */
export const layerConfig = <E, R>(options: Options<E, R>) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const mode = yield* modeConfig
    const url = yield* Config.option(Config.string("DATABASE_URL"))
    if (mode === "memory" && Option.isNone(url)) {
      return yield* new InvalidRuntimeConfig({
        key: "DATABASE_URL",
        reason: `is not set, and app "${options.prefix}" keeps its data in Postgres: WORKFLOW_MODE=memory only keeps ` +
          "the workflow engine in memory. Point it at Postgres, e.g. postgres://postgres@127.0.0.1:5432/postgres"
      })
    }
    return layer(options).pipe(Layer.provideMerge(Database.layerConfig({ applicationName: options.prefix })))
  }))

export interface MemoryOptions<E, R> {
  readonly prefix: TablePrefix.TablePrefix
  /** Workflow layers whose dependencies need no `SqlClient` (none is provided). */
  readonly workflows: Layer.Layer<never, E, R>
  readonly sharding?: WorkflowRuntime.ShardingOptions | undefined
  /** This build's version (see `Options.version`). */
  readonly version?: string | undefined
}

/**
 * The whole runtime in process memory, with no database at all: the memory
 * engine, the runs ledger (`RunStore.layerMemory`) and the activity ledger
 * (`TransactionalActivity.layerMemory`). Nothing survives a restart.
 */
export const layerMemory = <E, R>(options: MemoryOptions<E, R>): Layer.Layer<Provided, E, Exclude<R, Provided>> =>
  options.workflows.pipe(
    Layer.provideMerge(Layer.mergeAll(
      Layer.unwrapEffect(Effect.map(Effect.orDie(versionConfig(options.version)), RunStore.layerMemoryWith)),
      WorkflowRegistry.layer,
      TransactionalActivity.layerMemory
    )),
    Layer.provideMerge(WorkflowRuntime.layerMemory(options.prefix))
  ) as Layer.Layer<Provided, E, Exclude<R, Provided>>

/**
 * For domains whose workflows need no SQL: `WORKFLOW_MODE=memory` runs
 * `layerMemory` (no `DATABASE_URL`, no Postgres); `durable` is `layerConfig`
 * with no domain migrations (`DATABASE_URL` required for the engine's state).
 */
export const layerConfigWithoutSql = <E, R>(options: MemoryOptions<E, R>) =>
  Layer.unwrapEffect(Effect.map(modeConfig, (mode) =>
    mode === "memory"
      ? layerMemory(options)
      // the SqlClient stays in the context (health checks it) but is not offered to the domain
      : layerConfig({ ...options, migrations: [] }) as Layer.Layer<
        Provided,
        Layer.Layer.Error<ReturnType<typeof layerConfig<E, R>>>,
        Exclude<R, Provided>
      >))
