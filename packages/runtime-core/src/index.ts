/**
 * @duraflow/runtime-core: the persistence layer every domain imports.
 */
export * as AppRuntime from "./AppRuntime.js"
export * as AppServer from "./AppServer.js"
export * as Database from "./Database.js"
export * as Migrations from "./Migrations.js"
export * as RuntimeTables from "./RuntimeTables.js"
export * as RunsApi from "./RunsApi.js"
export * as RunsHttp from "./RunsHttp.js"
export * as RunStore from "./RunStore.js"
export * as RuntimeError from "./RuntimeError.js"
export * as SchemaLock from "./SchemaLock.js"
export * as ShardLockStorage from "./ShardLockStorage.js"
export * as TablePrefix from "./TablePrefix.js"
export * as TransactionalActivity from "./TransactionalActivity.js"
export * as WorkflowLayer from "./WorkflowLayer.js"
export * as WorkflowRegistry from "./WorkflowRegistry.js"
export * as WorkflowRuntime from "./WorkflowRuntime.js"
