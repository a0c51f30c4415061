/**
 * Test runs: `Vitest` runs vitest and counts its report (the workspace test command
 * and the matrix share it); `Matrix` runs the integration suites against every
 * embedded Postgres major in both engine modes (`pnpm test:matrix`).
 */
export * as Matrix from "./Matrix.js"
export * as Vitest from "./Vitest.js"
/** The workspace test command (`pnpm test`). */
export * as WorkspaceTest from "./WorkspaceTest.js"
