/**
 * The workspace as the checks see it: its root, its pnpm projects and their
 * dependency graph (read from the package.json files, the source of truth that
 * pnpm, Nx and turbo all start from), and a way to run the workspace's own tools
 * (pnpm through npx at the pinned version, Nx through pnpm, turbo) as child
 * processes without blocking the test runner.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { delimiter, join, resolve } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { parse } from "yaml"

export const root = resolve(import.meta.dirname, "../../..")

/** Apps not shipped as an image (no Dockerfile, no deploy folder): the web console runs from the workspace for now. */
export const NOT_SHIPPED: ReadonlySet<string> = new Set(["@duraflow/console"])

const readJson = (path: string): any => JSON.parse(readFileSync(path, "utf8"))

export const rootManifest: { readonly packageManager: string } = readJson(join(root, "package.json"))

/** `pnpm@<version>` exactly as pinned by the root package.json (`packageManager`). */
export const pnpmSpec: string = (() => {
  const spec = rootManifest.packageManager
  if (!/^pnpm@\d+\.\d+\.\d+$/.test(spec)) throw new Error(`root packageManager is not an exact pnpm pin: ${spec}`)
  return spec
})()

/** The command prefix every README command and CI step uses: `npx -y pnpm@<version>`. */
export const pnpmCommand = `npx -y ${pnpmSpec}`

// ---------------------------------------------------------------------------------------------------------------
// Projects

export interface Manifest {
  readonly name: string
  readonly private?: boolean
  readonly dependencies?: Record<string, string>
  readonly devDependencies?: Record<string, string>
  readonly optionalDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly files?: ReadonlyArray<string>
}

export interface WorkspacePackage {
  readonly name: string
  /** Relative to the workspace root, with forward slashes. */
  readonly dir: string
  readonly manifest: Manifest
}

/** Every project of the pnpm workspace (`pnpm-workspace.yaml`), by its package.json. */
export const workspacePackages = (): ReadonlyArray<WorkspacePackage> => {
  const config = parse(readFileSync(join(root, "pnpm-workspace.yaml"), "utf8")) as { packages: ReadonlyArray<string> }
  const dirs = config.packages.flatMap((pattern) => {
    if (pattern.endsWith("/*") && !pattern.slice(0, -2).includes("*")) {
      const parent = pattern.slice(0, -2)
      return readdirSync(join(root, parent), { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => `${parent}/${entry.name}`)
    }
    if (!pattern.includes("*") && !pattern.startsWith("!")) return [pattern]
    // a new kind of pattern must be taught here rather than silently ignored
    throw new Error(`unsupported pnpm-workspace.yaml pattern: ${pattern}`)
  })
  return dirs
    .filter((dir) => existsSync(join(root, dir, "package.json")))
    .map((dir) => ({ dir, manifest: readJson(join(root, dir, "package.json")) as Manifest }))
    .map(({ dir, manifest }) => ({ name: manifest.name, dir, manifest }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

/** The workspace projects `pkg` declares in any dependency field (what pnpm, Nx and turbo link). */
export const workspaceDependencies = (
  pkg: WorkspacePackage,
  all: ReadonlyArray<WorkspacePackage>
): ReadonlyArray<string> => {
  const names = new Set(all.map((p) => p.name))
  const { dependencies, devDependencies, optionalDependencies, peerDependencies } = pkg.manifest
  return [...new Set(Object.keys({ ...dependencies, ...devDependencies, ...optionalDependencies, ...peerDependencies }))]
    .filter((name) => names.has(name))
}

/**
 * `name` plus every project that depends on it, directly or transitively, over `edges`
 * (each a dependent and one of its dependencies): pnpm's graph or another tool's.
 */
export const dependentsClosure = (
  name: string,
  edges: Iterable<readonly [dependent: string, dependency: string]>
): ReadonlySet<string> => {
  const dependents = new Map<string, Array<string>>()
  for (const [dependent, dependency] of edges) {
    dependents.set(dependency, [...(dependents.get(dependency) ?? []), dependent])
  }
  const found = new Set<string>([name])
  const queue = [name]
  while (queue.length > 0) {
    for (const next of dependents.get(queue.pop()!) ?? []) {
      if (!found.has(next)) {
        found.add(next)
        queue.push(next)
      }
    }
  }
  return found
}

/** `name` plus every project that depends on it in the package.json graph, directly or transitively. */
export const withDependents = (name: string, all: ReadonlyArray<WorkspacePackage>): ReadonlySet<string> =>
  dependentsClosure(
    name,
    all.flatMap((pkg) => workspaceDependencies(pkg, all).map((dep) => [pkg.name, dep] as const))
  )

// ---------------------------------------------------------------------------------------------------------------
// Running tools

export interface RunResult {
  readonly code: number | string
  readonly stdout: string
  readonly stderr: string
}

/** The environment the workspace tools run with here and in CI: no Nx daemon, no cloud, no telemetry. */
export const toolEnv = (extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  NX_DAEMON: "false",
  NX_NO_CLOUD: "true",
  NX_TUI: "false",
  TURBO_TELEMETRY_DISABLED: "1",
  TURBO_NO_UPDATE_NOTIFIER: "1",
  ...extra
})

/** Runs a command to completion (killed after `timeoutMs`); never throws. */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {}
): Promise<RunResult> =>
  new Promise((done) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? root,
      env: options.env ?? toolEnv(),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs} ms]`
      child.kill("SIGKILL")
    }, options.timeoutMs ?? 150_000)
    child.on("error", (error) => {
      clearTimeout(timer)
      done({ code: "spawn-error", stdout, stderr: `${stderr}\n${error.message}` })
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      done({ code: code ?? signal ?? "unknown", stdout, stderr })
    })
  })

/** Like `run`, but a non-zero exit is an error that shows the command and its output. */
export const runOk = async (
  command: string,
  args: ReadonlyArray<string>,
  options: Parameters<typeof run>[2] = {}
): Promise<RunResult> => {
  const result = await run(command, args, options)
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited with ${result.code}\n--- stdout\n${result.stdout.slice(-4000)}\n--- stderr\n${
        result.stderr.slice(-4000)
      }`
    )
  }
  return result
}

/** `npx -y pnpm@<pinned> ...args` from the workspace root. */
export const pnpm = (args: ReadonlyArray<string>, options: Parameters<typeof run>[2] = {}) =>
  runOk("npx", ["-y", pnpmSpec, ...args], options)

/** Where the root scripts that run Nx find pnpm (Nx strips node_modules from its tasks' PATH). */
export const pnpmShimDir = join(root, "tooling/scripts/bin")

/** Nx, run through pnpm with pnpm on PATH for its tasks (as the root scripts do), without the daemon. */
export const nx = (args: ReadonlyArray<string>, options: Parameters<typeof run>[2] = {}) => {
  const env = options.env ?? toolEnv()
  return pnpm(["nx", ...args], { ...options, env: { ...env, PATH: [pnpmShimDir, env.PATH].join(delimiter) } })
}

/** Parses the JSON document a tool printed on stdout (tools may print banners before it). */
export const jsonOutput = (stdout: string): any => {
  const start = stdout.search(/^[[{]/m)
  if (start < 0) throw new Error(`no JSON in output:\n${stdout.slice(0, 2000)}`)
  return JSON.parse(stdout.slice(start))
}

/**
 * The module-boundary test writes deliberate violations into the source tree, and the
 * affected test builds Nx's project graph from that same tree: run at the same time (vitest
 * runs two files at once), one sees the other's violations. Both hold this lock for their
 * whole file. A lock left by a process that died is taken over.
 */
export const holdTreeLock = () => {
  const lock = join(root, ".data", "checks-tree.lock")
  beforeAll(async () => {
    mkdirSync(join(root, ".data"), { recursive: true })
    for (;;) {
      try {
        writeFileSync(lock, String(process.pid), { flag: "wx" })
        return
      } catch {
        const owner = Number(readFileSync(lock, "utf8").trim() || "0")
        let alive = owner > 0
        try {
          if (alive) process.kill(owner, 0)
        } catch {
          alive = false
        }
        if (!alive) rmSync(lock, { force: true })
        else await new Promise((r) => setTimeout(r, 250))
      }
    }
  }, 600_000)
  afterAll(() => rmSync(lock, { force: true }))
}
