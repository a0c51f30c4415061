/**
 * The benchmark's parent: per rep, one cell per system (ceiling, then A B C D,
 * interleaved, the order rotated by one each rep), each on a fresh database `bench_<system>_<pid>_<rep>` and in its
 * own child process (`worker.ts`, compiled: `CellBuild`); commits per workflow from
 * `pg_stat_database.xact_commit` of that database; a progress line per cell and
 * the markdown table at the end.
 */
import { spawn } from "node:child_process"
import { Predicate } from "effect"
import pg from "pg"
import * as Cell from "./Cell.js"
import * as CellBuild from "./CellBuild.js"
import * as PostgresCpu from "./PostgresCpu.js"
import * as Stats from "./Stats.js"

export interface Options {
  readonly n: number
  readonly sequential: number
  readonly reps: number
  readonly connections: number
  readonly databaseUrl: string
  readonly systems: ReadonlyArray<Cell.System>
  /** a cell taking longer is killed and the run fails (seconds) */
  readonly timeout: number
  /** Each cell runs the burst again once its code is compiled (`Cell.Request.warm`) */
  readonly warm: boolean
  /** Node flags of every cell, whatever the system (default: the apps' own, see `appNodeFlags`) */
  readonly nodeFlags: ReadonlyArray<string>
}

/** What the apps' Dockerfiles set in NODE_OPTIONS: the cells run with it, every system alike. */
export const appNodeFlags: ReadonlyArray<string> = ["--max-semi-space-size=64"]

export interface Measured extends Cell.Result {
  readonly rep: number
  /** xact_commit of the cell's database over the child's whole life (startup included) per workflow (`workflowsRun`) */
  readonly commitsPerWorkflow: number
  /**
   * CPU of the Postgres server over the child's whole life per workflow (`workflowsRun`), ms (`PostgresCpu`;
   * undefined when the server is not on this machine)
   */
  readonly postgresCpuMsPerWorkflow?: number | undefined
}

const databaseUrl = (admin: string, database: string) => {
  const url = new URL(admin)
  url.pathname = `/${database}`
  return url.toString()
}

const runChild = (
  worker: string,
  request: Cell.Request,
  timeoutSeconds: number,
  nodeFlags: ReadonlyArray<string>
): Promise<Cell.Result> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, worker], {
      env: { ...process.env, [Cell.REQUEST_ENV]: JSON.stringify(request) },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    const timer = setTimeout(() => {
      stderr += `\nkilled: the cell took longer than ${timeoutSeconds} s (--timeout)`
      child.kill("SIGKILL")
    }, timeoutSeconds * 1000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      const line = stdout.split("\n").find((l) => l.startsWith(Cell.RESULT_MARKER))
      if (code === 0 && line) return resolve(JSON.parse(line.slice(Cell.RESULT_MARKER.length)) as Cell.Result)
      reject(new Error(`${request.system} cell exited with ${code}:\n${(stderr || stdout).trim().split("\n").slice(-20).join("\n")}`))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const commits = async (admin: pg.Client, database: string): Promise<number> => {
  await admin.query("SELECT pg_stat_clear_snapshot()")
  const { rows } = await admin.query<{ commits: string }>(
    "SELECT xact_commit::text AS commits FROM pg_stat_database WHERE datname = $1",
    [database]
  )
  return Number(rows[0]?.commits ?? 0)
}

/** One cell: create its database, run the child, count the commits, drop the database. */
const runCell = async (
  worker: string,
  admin: pg.Client,
  options: Options,
  system: Cell.System | "ceiling",
  rep: number
): Promise<Measured> => {
  const database = `bench_${system.replaceAll("-", "_")}_${process.pid}_${rep}`
  await admin.query(`CREATE DATABASE ${database}`)
  try {
    const before = await commits(admin, database)
    const cpuBefore = await PostgresCpu.sample(admin)
    const result = await runChild(worker, {
      system,
      url: databaseUrl(options.databaseUrl, database),
      n: options.n,
      sequential: options.sequential,
      warm: options.warm,
      connections: options.connections
    }, options.timeout, options.nodeFlags)
    // the child's backends have exited; give them a moment to flush their statistics
    await sleep(1500)
    const delta = (await commits(admin, database)) - before
    const cpuAfter = await PostgresCpu.sample(admin)
    const perWorkflow = (total: number) => (result.workflowsRun > 0 ? total / result.workflowsRun : 0)
    return {
      ...result,
      rep,
      commitsPerWorkflow: perWorkflow(delta),
      postgresCpuMsPerWorkflow: cpuBefore === undefined || cpuAfter === undefined
        ? undefined
        : perWorkflow(cpuAfter - cpuBefore)
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  }
}

/** After an interruption (Ctrl-C): drop this process's cell databases that are still there, none other. */
export const dropOwnDatabases = async (adminUrl: string): Promise<void> => {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")
    const own = new RegExp(`^bench_[a-z_]+_${process.pid}_\\d+$`)
    for (const { datname } of rows) {
      if (own.test(datname)) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`)
    }
  } finally {
    await admin.end()
  }
}

const label = (system: Cell.System | "ceiling") => system === "ceiling" ? "postgres ceiling" : system

export const progressLine = (m: Measured, reps: number, ceiling: number | undefined): string =>
  m.system === "ceiling"
    ? `[rep ${m.rep}/${reps}] ${label(m.system).padEnd(16)} ${m.throughput.toFixed(0)} commits/s (single-row INSERT per transaction)`
    : `[rep ${m.rep}/${reps}] ${label(m.system).padEnd(16)} ${m.throughput.toFixed(1)} wf/s` +
      (ceiling ? ` (${(m.throughput / ceiling).toFixed(3)} of ceiling)` : "") +
      `  p50 ${m.p50.toFixed(0)} ms  p99 ${m.p99.toFixed(0)} ms  sequential p50 ${m.sequentialP50.toFixed(1)} ms (CPU ${m.cpuMsPerSequentialRun.toFixed(2)} ms/run)` +
      `  peak RSS ${m.peakRssMb.toFixed(0)} MB  CPU ${m.cpuMsPerWorkflow.toFixed(2)} ms/wf` +
      (m.postgresCpuMsPerWorkflow === undefined ? "" : ` (Postgres ${m.postgresCpuMsPerWorkflow.toFixed(2)})`) +
      `  commits ${m.commitsPerWorkflow.toFixed(1)}/wf  socket writes ${m.socketWritesPerWorkflow.toFixed(1)}/wf` +
      (m.warm === undefined
        ? ""
        : `  warm burst ${m.warm.throughput.toFixed(1)} wf/s (CPU ${m.warm.cpuMsPerWorkflow.toFixed(2)} ms/wf,` +
          ` peak RSS ${m.warm.peakRssMb.toFixed(0)} MB)`) +
      "  rows ok"

/**
 * The systems in rep `rep`'s order (1-based): rotated by one each rep (A B C D, then
 * B C D A, ...), so that a machine speeding up or slowing down during a rep (this
 * shared VM does, by 2x within an hour) does not always favor the same system.
 */
export const orderOf = <S>(systems: ReadonlyArray<S>, rep: number): ReadonlyArray<S> => {
  const shift = systems.length === 0 ? 0 : (rep - 1) % systems.length
  return [...systems.slice(shift), ...systems.slice(0, shift)]
}

export const run = async (options: Options, print: (line: string) => void): Promise<ReadonlyArray<Measured>> => {
  const built = await CellBuild.build()
  const admin = new pg.Client({ connectionString: options.databaseUrl })
  const results: Array<Measured> = []
  try {
    await admin.connect()
    for (let rep = 1; rep <= options.reps; rep++) {
      const ceiling = await runCell(built.worker, admin, options, "ceiling", rep)
      results.push(ceiling)
      print(progressLine(ceiling, options.reps, undefined))
      for (const system of orderOf(options.systems, rep)) {
        const m = await runCell(built.worker, admin, options, system, rep)
        results.push(m)
        print(progressLine(m, options.reps, ceiling.throughput))
      }
    }
  } finally {
    await admin.end()
    built.remove()
  }
  return results
}

/** The markdown table: one row per system, each figure the median (min-max) over reps. */
export const table = (results: ReadonlyArray<Measured>, options: Options): string => {
  const ceilingByRep = new Map(results.filter((r) => r.system === "ceiling").map((r) => [r.rep, r.throughput]))
  const lines = [
    `| system | throughput, ${options.n} at once (wf/s) | fraction of PG ceiling | p50 (ms) | p99 (ms) ` +
    `| sequential p50 of ${options.sequential} (ms) | node CPU per sequential run (ms) | peak RSS (MB) | node CPU per wf (ms) ` +
    `| Postgres CPU per wf (ms) | commits per wf | socket writes per wf ` +
    `| warm burst: throughput, ${options.n} at once (wf/s) | warm burst: node CPU per wf (ms) | warm burst: peak RSS (MB) |`,
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  ]
  for (const system of options.systems) {
    const rs = results.filter((r) => r.system === system)
    const col = (f: (r: Measured) => number, digits = 1) => Stats.summary(rs.map(f), digits)
    // a figure only some cells have (the warm burst's): "-" for none
    const some = (f: (r: Measured) => number | undefined, digits = 1) =>
      Stats.summary(rs.map(f).filter(Predicate.isNotUndefined), digits)
    lines.push(
      `| ${Cell.systemLabels[system]} | ${col((r) => r.throughput)} | ` +
        `${col((r) => r.throughput / (ceilingByRep.get(r.rep) ?? Number.NaN), 3)} | ${col((r) => r.p50, 0)} | ` +
        `${col((r) => r.p99, 0)} | ${col((r) => r.sequentialP50)} | ${col((r) => r.cpuMsPerSequentialRun, 2)} | ` +
        `${col((r) => r.peakRssMb, 0)} | ` +
        `${col((r) => r.cpuMsPerWorkflow, 2)} | ` +
        `${some((r) => r.postgresCpuMsPerWorkflow, 2)} | ` +
        `${col((r) => r.commitsPerWorkflow)} | ${col((r) => r.socketWritesPerWorkflow)} | ` +
        `${some((r) => r.warm?.throughput)} | ${some((r) => r.warm?.cpuMsPerWorkflow, 2)} | ${some((r) => r.warm?.peakRssMb, 0)} |`
    )
  }
  lines.push(
    `| Postgres commit ceiling (${options.connections} connections, single-row INSERT per transaction, commits/s) | ` +
      `${Stats.summary([...ceilingByRep.values()], 0)} | 1 | | | | | | | | | | | | |`
  )
  return lines.join("\n")
}

/** A target of the benchmark (issue 12): `system`'s `figure` against `against`'s, as a ratio. */
interface Target {
  readonly what: string
  readonly system: Cell.System
  readonly against: Cell.System
  /** (undefined: the cell has no such figure, as without the warm burst) */
  readonly figure: (m: Measured) => number | undefined
  /** met when the ratio of medians is at least (`atLeast`) or at most (`atMost`) this */
  readonly atLeast?: number
  readonly atMost?: number
}

const targetList: ReadonlyArray<Target> = [
  { what: "throughput, durable against DBOS", system: "durable", against: "dbos", figure: (m) => m.throughput, atLeast: 1 },
  {
    what: "sequential p50, durable against DBOS",
    system: "durable",
    against: "dbos",
    figure: (m) => m.sequentialP50,
    atMost: 1
  },
  { what: "peak RSS, durable against DBOS", system: "durable", against: "dbos", figure: (m) => m.peakRssMb, atMost: 2 },
  { what: "node CPU per workflow, durable against DBOS", system: "durable", against: "dbos", figure: (m) => m.cpuMsPerWorkflow },
  {
    what: "node CPU per sequential run, durable against DBOS",
    system: "durable",
    against: "dbos",
    figure: (m) => m.cpuMsPerSequentialRun
  },
  {
    what: "throughput, transactional (body: the statement) against plain activities",
    system: "durable-tx",
    against: "durable",
    figure: (m) => m.throughput,
    atLeast: 0.9
  },
  {
    what: "throughput, transactional (body: an effect) against plain activities",
    system: "durable-tx-effect",
    against: "durable",
    figure: (m) => m.throughput,
    atLeast: 0.9
  },
  // the warm burst's (no target of its own: the targets are the first burst's)
  {
    what: "throughput of the warm burst, durable against DBOS",
    system: "durable",
    against: "dbos",
    figure: (m) => m.warm?.throughput
  },
  {
    what: "throughput of the warm burst, transactional (body: the statement) against plain activities",
    system: "durable-tx",
    against: "durable",
    figure: (m) => m.warm?.throughput
  },
  {
    what: "throughput of the warm burst, transactional (body: an effect) against plain activities",
    system: "durable-tx-effect",
    against: "durable",
    figure: (m) => m.warm?.throughput
  }
]

/**
 * The ratios the benchmark's targets are about, one line each: the ratio of the two
 * systems' medians, each rep's own ratio (a machine that drifts shows here), and whether
 * the target is met. Only for systems that both ran.
 */
export const ratios = (results: ReadonlyArray<Measured>, options: Pick<Options, "systems" | "reps">): ReadonlyArray<string> => {
  const lines: Array<string> = []
  for (const target of targetList) {
    if (!options.systems.includes(target.system) || !options.systems.includes(target.against)) continue
    const of = (system: Cell.System) => results.filter((r) => r.system === system)
    const figures = (system: Cell.System) => of(system).map(target.figure).filter(Predicate.isNotUndefined)
    if (figures(target.system).length === 0 || figures(target.against).length === 0) continue
    const ratio = Stats.median(figures(target.system)) / Stats.median(figures(target.against))
    const perRep: Array<string> = []
    for (let rep = 1; rep <= options.reps; rep++) {
      const a = of(target.system).find((r) => r.rep === rep)
      const b = of(target.against).find((r) => r.rep === rep)
      const fa = a === undefined ? undefined : target.figure(a)
      const fb = b === undefined ? undefined : target.figure(b)
      if (fa !== undefined && fb !== undefined) perRep.push(`${(fa / fb).toFixed(2)}x`)
    }
    const goal = target.atLeast !== undefined
      ? `target >= ${target.atLeast}x: ${ratio >= target.atLeast ? "met" : "not met"}`
      : target.atMost !== undefined
      ? `target <= ${target.atMost}x: ${ratio <= target.atMost ? "met" : "not met"}`
      : "no target"
    lines.push(`${target.what}: ${ratio.toFixed(2)}x (per rep ${perRep.join("/")}); ${goal}`)
  }
  return lines
}

