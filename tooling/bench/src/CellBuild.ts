/**
 * The cells run compiled JavaScript, as the apps' images do (`pnpm deploy:<app>`,
 * `node dist/main.js`), not TypeScript through tsx's loader: in the cell's process the
 * loader compiles runtime-core's sources, which cost duraflow about 90 MB of RSS (DBOS,
 * JavaScript already, nothing measurable). Each `pnpm bench` bundles `worker.ts` and the
 * workspace code it imports with esbuild; every package from node_modules stays external,
 * imported by the file Node itself would load, and each system's cell is its own chunk,
 * so a cell loads only its own system.
 */
import * as esbuild from "esbuild"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const workerSource = fileURLToPath(new URL("./worker.ts", import.meta.url))

/** Bare imports other than the workspace's (`@duraflow/*`): external, by their resolved file. */
const packagesExternal: esbuild.Plugin = {
  name: "packages-external",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.path.startsWith("@duraflow/") || args.pluginData === "resolving") return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: "resolving"
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      // Node's built-ins stay as written; a package is imported by its file (a URL: ESM)
      return resolved.external
        ? { path: args.path, external: true }
        : { path: pathToFileURL(resolved.path).href, external: true }
    })
  }
}

export interface Built {
  /** The worker's entry point (ESM). */
  readonly worker: string
  readonly remove: () => void
}

export const build = async (): Promise<Built> => {
  const outdir = mkdtempSync(join(tmpdir(), "duraflow-bench-"))
  try {
    await esbuild.build({
      entryPoints: [workerSource],
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      target: "node20",
      outdir,
      outExtension: { ".js": ".mjs" },
      logLevel: "warning",
      plugins: [packagesExternal]
    })
  } catch (error) {
    rmSync(outdir, { recursive: true, force: true })
    throw error
  }
  return { worker: join(outdir, "worker.mjs"), remove: () => rmSync(outdir, { recursive: true, force: true }) }
}
