/**
 * @duraflow/runtime-core: the persistence layer every domain imports.
 *
 * Only what apps, domains and operators use is exported here; the engine's
 * parts (shard locks, schema lock, wake-ups, runs ledger, ...) live in
 * `src/internal/` so they can change without breaking a consumer. Test helpers
 * are their own entry point, `@duraflow/runtime-core/testing`.
 */
export * as AppDirectory from "./AppDirectory.js"
export * as AppRuntime from "./AppRuntime.js"
export * as AppServer from "./AppServer.js"
export * as Database from "./Database.js"
export * as Doctor from "./Doctor.js"
export * as Logging from "./Logging.js"
export * as Migrations from "./Migrations.js"
export * as Provisioning from "./Provisioning.js"
export * as RequestGuard from "./RequestGuard.js"
export * as Retention from "./Retention.js"
export * as Retry from "./Retry.js"
export * as RunsApi from "./RunsApi.js"
export * as RunsHttp from "./RunsHttp.js"
export * as RuntimeError from "./RuntimeError.js"
export * as TablePrefix from "./TablePrefix.js"
export * as Telemetry from "./Telemetry.js"
export * as TransactionalActivity from "./TransactionalActivity.js"
export * as UpgradeCheck from "./UpgradeCheck.js"
export * as WorkflowLayer from "./WorkflowLayer.js"
export * as WorkflowRuntime from "./WorkflowRuntime.js"
export * as WorkflowSchedule from "./WorkflowSchedule.js"
