/**
 * vitest's global setup (vitest.shared.ts): `TestPostgres`, loaded by Node (through tsx)
 * rather than by vitest's module runner, which resolves packages from the project being
 * tested (which need not depend on this package's dependencies).
 */
import { tsImport } from "tsx/esm/api"

export default async (): Promise<() => Promise<void>> => {
  const module: typeof import("./TestPostgres.js") = await tsImport("./TestPostgres.ts", import.meta.url)
  return module.default()
}
