/** Test helpers for suites that need a real Postgres and real processes. */
export * as ExpiredRuns from "./ExpiredRuns.js"
export * as TestDatabase from "./TestDatabase.js"
export * as TestProcess from "./TestProcess.js"
export * as Eventually from "./Eventually.js"
