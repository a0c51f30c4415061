/**
 * vitest's global setup (vitest.shared.ts): `TestPostgres`, loaded by Node (through tsx)
 * rather than by vitest's module runner, which resolves packages from the project being
 * tested (which need not depend on this package's dependencies). Once a URL is set (by
 * the user, or by the setup of the run's first project) there is nothing to load.
 */
import { tsImport } from "tsx/esm/api"

export default async (): Promise<() => Promise<void>> => {
  const given = process.env.TEST_DATABASE_URL?.trim()
  if (given && given !== "embedded") return async () => undefined
  const module: typeof import("./TestPostgres.js") = await tsImport("./TestPostgres.ts", import.meta.url)
  return module.default()
}
