/** Test helpers for suites that need a real Postgres and real processes. */
export * as TestDatabase from "./TestDatabase.js"
export * as TestProcess from "./TestProcess.js"
