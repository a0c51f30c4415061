/**
 * Everything a domain app runs on, composed in the one order that is safe:
 * database -> runtime and domain migrations -> workflow engine -> run ledger,
 * registry and activity ledger
 * -> the domain's workflows. Migrations finish before the engine starts, so a
 * run resumed at startup never meets a missing table; workflows are registered
 * with the ledger and registry in their context, so every run is recorded.
 */
import type { WorkflowEngine } from "@effect/workflow"
import { Layer } from "effect"
import * as Database from "./Database.js"
import * as Migrations from "./Migrations.js"
import * as RunStore from "./RunStore.js"
import * as RuntimeTables from "./RuntimeTables.js"
import type * as TablePrefix from "./TablePrefix.js"
import * as TransactionalActivity from "./TransactionalActivity.js"
import * as WorkflowRegistry from "./WorkflowRegistry.js"
import * as WorkflowRuntime from "./WorkflowRuntime.js"

export interface Options<E, R> {
  readonly prefix: TablePrefix.TablePrefix
  readonly migrations: ReadonlyArray<Migrations.Migration>
  /** The domain's workflow layers (built with `WorkflowLayer.make`) and their services. */
  readonly workflows: Layer.Layer<never, E, R>
  readonly sharding?: WorkflowRuntime.ShardingOptions | undefined
}

export type Provided =
  | TransactionalActivity.ActivityLedger
  | WorkflowEngine.WorkflowEngine
  | WorkflowRuntime.WorkflowRuntime
  | WorkflowRegistry.WorkflowRegistry
  | RunStore.RunStore

/** The runtime on a given `SqlClient`; the engine is chosen by `WORKFLOW_MODE`. */
export const layer = <E, R>(options: Options<E, R>) =>
  options.workflows.pipe(
    Layer.provideMerge(Layer.mergeAll(
      RunStore.layer(options.prefix),
      WorkflowRegistry.layer,
      TransactionalActivity.layer(options.prefix)
    )),
    Layer.provideMerge(WorkflowRuntime.layerConfig(options.prefix, { sharding: options.sharding })),
    Layer.provideMerge(Layer.merge(RuntimeTables.layer(options.prefix), Migrations.layer(options.prefix, options.migrations)))
  )

/** The same, with the database from `DATABASE_URL`. */
export const layerConfig = <E, R>(options: Options<E, R>) =>
  layer(options).pipe(Layer.provideMerge(Database.layerConfig({ applicationName: options.prefix })))
