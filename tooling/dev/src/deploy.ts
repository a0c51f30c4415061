/**
 * `pnpm deploy:<app>` (`deploy <app> [--out <dir>]`): an app as a self-contained folder
 * of JavaScript that runs with `node dist/main.js`, what its Dockerfile ships.
 *
 * 1. builds the app and the workspace packages it needs to JavaScript (Nx runs each
 *    package's `build` script, `tsc -p tsconfig.build.json`: dist/ with .js and .d.ts);
 * 2. `pnpm deploy --prod --legacy`: the app's dist/ and its production dependencies only,
 *    the workspace packages copied in (their `files`: dist/ and src/);
 * 3. makes it clean: the app's package.json is name, version, type, main, a `start`
 *    script (and `duraflow`, the operator's command, when the app ships @duraflow/cli) and exact dependency versions (no workspace:, no devDependencies); each
 *    workspace package inside gets its publish manifest (exports from `publishConfig`,
 *    dist/ only) and loses src/; what nothing runs is removed (TypeScript sources and
 *    declarations, source maps, pnpm's copy of the workspace lockfile).
 *
 * Default folder: `<workspace root>/dist/<app>`.
 */
import { Args, Command as Cli, Options, ValidationError } from "@effect/cli"
import * as Command from "@effect/platform/Command"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Option } from "effect"
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import { delimiter, dirname, join, relative, resolve, sep } from "node:path"

const root = resolve(import.meta.dirname, "../../..")
const pnpmBin = join(root, "node_modules/pnpm/bin/pnpm.cjs")
const nxBin = join(root, "node_modules/nx/bin/nx.js")

interface Manifest {
  readonly name: string
  readonly version: string
  readonly description?: string
  readonly license?: string
  readonly type?: string
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
  readonly publishConfig?: { readonly exports?: unknown }
}

const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))

/** The workspace's projects by name: their folder and manifest. */
const workspace = (): ReadonlyMap<string, { readonly dir: string; readonly manifest: Manifest }> =>
  new Map(
    ["packages", "apps", "tooling"].flatMap((parent) =>
      readdirSync(join(root, parent))
        .map((name) => join(root, parent, name))
        .filter((dir) => existsSync(join(dir, "package.json")))
        .map((dir) => {
          const manifest = readManifest(dir)
          return [manifest.name, { dir, manifest }] as const
        })
    )
  )

const exactVersion = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/

/** Dependencies with exact versions: `workspace:` becomes the workspace package's own version. */
const exactDependencies = (
  deps: Record<string, string> | undefined,
  projects: ReturnType<typeof workspace>
): Record<string, string> =>
  Object.fromEntries(
    Object.entries(deps ?? {}).map(([name, spec]) => {
      const version = spec.startsWith("workspace:") ? projects.get(name)?.manifest.version : spec
      if (version === undefined || !exactVersion.test(version)) {
        throw new Error(`${name}@${spec}: a deployed manifest takes exact versions only`)
      }
      return [name, version]
    })
  )

/** Writes a file without touching the inode it replaces (deployed files may be hard links into pnpm's store). */
const replaceFile = (path: string, content: string) => {
  rmSync(path, { force: true })
  writeFileSync(path, content)
}

const toJson = (value: unknown) => JSON.stringify(value, null, 2) + "\n"

/** Files nothing runs: TypeScript sources and declarations, source maps, build info. */
const unused = /\.(map|[cm]?ts|tsbuildinfo)$/

/** Removes unused files under `dir` (never following symlinks); returns how many. */
const prune = (dir: string): number => {
  let removed = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) removed += prune(path)
    else if (entry.isFile() && unused.test(entry.name)) {
      rmSync(path)
      removed++
    }
  }
  return removed
}

/** The `.pnpm` entry (a folder of `store`) a package link points to, if it is a link into it. */
const entryOf = (store: string, link: string): string | undefined => {
  if (!lstatSync(link).isSymbolicLink()) return undefined
  const target = relative(store, resolve(dirname(link), readlinkSync(link)))
  return target.startsWith("..") ? undefined : target.split(sep)[0]
}

/** The package links in a node_modules folder (scoped ones included). */
const links = (dir: string): Array<string> =>
  existsSync(dir)
    ? readdirSync(dir).filter((n) => n !== ".pnpm" && n !== ".bin").flatMap((n) =>
      n.startsWith("@") ? readdirSync(join(dir, n)).map((m) => join(dir, n, m)) : [join(dir, n)]
    )
    : []

/** Removes the `.pnpm` entries no package link leads to from the app (mark and sweep). */
const sweep = (out: string) => {
  const store = join(out, "node_modules", ".pnpm")
  const reached = new Set<string>()
  const queue = links(join(out, "node_modules")).flatMap((l) => entryOf(store, l) ?? [])
  while (queue.length > 0) {
    const entry = queue.pop()!
    if (reached.has(entry)) continue
    reached.add(entry)
    for (const link of links(join(store, entry, "node_modules"))) {
      const next = entryOf(store, link)
      if (next !== undefined && !reached.has(next)) queue.push(next)
    }
  }
  for (const entry of readdirSync(store)) {
    if (entry !== "node_modules" && entry !== "lock.yaml" && !reached.has(entry)) rmSync(join(store, entry), { recursive: true, force: true })
  }
}

/** Disk usage of `dir` in bytes, like `du -s` (hard links counted once, symlinks not followed). */
const diskUsage = (dir: string, seen = new Set<number>()): number => {
  const stat = lstatSync(dir)
  if (seen.has(stat.ino)) return 0
  seen.add(stat.ino)
  const own = stat.blocks * 512
  return stat.isDirectory() ? readdirSync(dir).reduce((sum, name) => sum + diskUsage(join(dir, name), seen), own) : own
}

const run = (bin: string, ...args: ReadonlyArray<string>) =>
  Command.make(process.execPath, bin, ...args).pipe(
    Command.workingDirectory(root),
    // Nx runs package scripts with `pnpm run` after removing node_modules from PATH: offer the workspace's pnpm
    Command.env({ PATH: `${join(root, "tooling/scripts/bin")}${delimiter}${process.env.PATH}`, NX_DAEMON: "false", NX_TUI: "false" }),
    Command.stdout("inherit"),
    Command.stderr("inherit"),
    Command.exitCode,
    Effect.filterOrFail((code) => code === 0, (code) => new Error(`${bin} ${args.join(" ")} exited with ${code}`))
  )

/** The clean manifest of the deployed app. */
const appManifest = (app: Manifest, projects: ReturnType<typeof workspace>) => ({
  name: app.name,
  version: app.version,
  private: true,
  ...(app.description ? { description: app.description } : {}),
  type: "module",
  main: "dist/main.js",
  scripts: {
    start: "node dist/main.js",
    // the operator's command, from the app's folder: `npm run -s duraflow -- doctor` (the app's
    // src/cli.ts: the command knowing the app's domain)
    ...(app.dependencies?.["@duraflow/cli"] ? { duraflow: "node dist/cli.js" } : {})
  },
  engines: { node: ">=20.11" },
  dependencies: exactDependencies(app.dependencies, projects)
})

/** A workspace package as published: exports into dist/, exact dependencies. */
const publishedManifest = (pkg: Manifest, projects: ReturnType<typeof workspace>) => ({
  name: pkg.name,
  version: pkg.version,
  ...(pkg.description ? { description: pkg.description } : {}),
  ...(pkg.license ? { license: pkg.license } : {}),
  type: pkg.type ?? "module",
  exports: pkg.publishConfig?.exports,
  dependencies: exactDependencies(pkg.dependencies, projects),
  ...(pkg.peerDependencies ? { peerDependencies: pkg.peerDependencies } : {})
})

const deploy = (appName: string, out: string) =>
  Effect.gen(function*() {
    const projects = workspace()
    const app = projects.get(`@duraflow/${appName}`)
    if (app === undefined || !relative(root, app.dir).startsWith("apps")) {
      return yield* Effect.fail(new Error(`no app @duraflow/${appName} in apps/`))
    }
    yield* Console.log(`Building ${app.manifest.name} and the workspace packages it needs`)
    // Nx: the packages first (`dependsOn: ^build`), from its cache when their sources did not change
    yield* run(nxBin, "run", `${app.manifest.name}:build`, "--outputStyle=stream")

    yield* Console.log(`Deploying to ${out}`)
    rmSync(out, { recursive: true, force: true })
    yield* run(pnpmBin, "--filter", app.manifest.name, "deploy", "--prod", "--legacy", out)

    yield* Effect.sync(() => {
      if (!existsSync(join(out, "dist", "main.js"))) throw new Error(`${out}/dist/main.js is missing: did the build run?`)
      replaceFile(join(out, "package.json"), toJson(appManifest(app.manifest, projects)))
      // the workspace packages inside (one copy per set of peers)
      const store = join(out, "node_modules", ".pnpm")
      for (const entry of readdirSync(store).filter((e) => e.startsWith("@duraflow+"))) {
        const scope = join(store, entry, "node_modules", "@duraflow")
        for (const name of readdirSync(scope)) {
          const dir = join(scope, name)
          if (lstatSync(dir).isSymbolicLink()) continue // a dependency of this package, not the package
          const source = projects.get(`@duraflow/${name}`)
          if (source === undefined || source.manifest.publishConfig?.exports === undefined) {
            throw new Error(`@duraflow/${name} has no publishConfig.exports: it cannot run from dist/`)
          }
          if (!existsSync(join(dir, "dist", "index.js"))) throw new Error(`@duraflow/${name}: dist/index.js is missing`)
          replaceFile(join(dir, "package.json"), toJson(publishedManifest(source.manifest, projects)))
          rmSync(join(dir, "src"), { recursive: true, force: true })
          // optional peers (runtime-core's tsx, for its test helpers) the app does not depend on itself
          const optional = Object.entries<{ optional?: boolean }>(source.manifest.peerDependenciesMeta ?? {})
            .filter(([peer, meta]) => meta.optional === true && !(peer in (app.manifest.dependencies ?? {})))
          for (const [peer] of optional) rmSync(join(store, entry, "node_modules", peer), { force: true })
        }
      }
      sweep(out)
      // pnpm's bookkeeping: a copy of the whole workspace's lockfile (workspace: specifiers, other apps)
      rmSync(join(store, "lock.yaml"), { force: true })
      rmSync(join(out, "node_modules", ".modules.yaml"), { force: true })
      prune(join(out, "node_modules"))
      prune(join(out, "dist"))
    })
    yield* Console.log(`${app.manifest.name}: ${out} (${(diskUsage(out) / 2 ** 20).toFixed(1)} MB); run: node dist/main.js`)
  })

const command = Cli.make(
  "deploy",
  {
    app: Args.choice([["ontology-server", "ontology-server"], ["knowledge-server", "knowledge-server"]], { name: "app" }),
    out: Options.text("out").pipe(Options.optional, Options.withDescription("target folder (default: <root>/dist/<app>)"))
  },
  ({ app, out }) => deploy(app, Option.match(out, { onNone: () => join(root, "dist", app), onSome: (o) => resolve(process.env.INIT_CWD ?? process.cwd(), o) }))
).pipe(Cli.withDescription("Builds an app to JavaScript and deploys it to a self-contained folder"))

Cli.run(command, { name: "deploy", version: "0.1.0" })(process.argv.filter((a, i) => i < 2 || a !== "--")).pipe(
  // @effect/cli has printed what was wrong with the arguments: exit 1 without a second report
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => (process.exitCode = 1))),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
