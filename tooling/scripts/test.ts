/**
 * The workspace test command (`pnpm test`, called by .ci/run): typecheck and lint,
 * every vitest project, one matrix cell on an embedded Postgres 18, then the totals
 * as the last line, `N passed, N failed, N skipped`. See tooling/matrix/src/WorkspaceTest.ts.
 */
import { WorkspaceTest } from "../matrix/src/index.js"

WorkspaceTest.main(process.argv.filter((arg) => arg !== "--"))
