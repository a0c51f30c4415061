/**
 * @duraflow/runtime-core: the persistence layer every domain imports.
 */
export * as Database from "./Database.js"
export * as Migrations from "./Migrations.js"
export * as RuntimeError from "./RuntimeError.js"
export * as SchemaLock from "./SchemaLock.js"
export * as ShardLockStorage from "./ShardLockStorage.js"
export * as TablePrefix from "./TablePrefix.js"
export * as WorkflowLayer from "./WorkflowLayer.js"
export * as WorkflowRuntime from "./WorkflowRuntime.js"
