/**
 * The integration suites against every embedded Postgres major in both engine
 * modes (`pnpm test:matrix`); `runCell` runs one major x mode.
 */
export * as Matrix from "./Matrix.js"
