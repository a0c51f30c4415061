/**
 * One cell of the benchmark, in its own process so that RSS and CPU are this
 * system's alone: read the request from `BENCH_CELL`, run N workflows started at
 * once (after one warm-up run), then `sequential` one after another, then (`warm`) N more at
 * once, check the rows, print one
 * `BENCH_RESULT {json}` line and exit.
 */
import pg from "pg"
import * as Cell from "./Cell.js"
import * as SocketWrites from "./SocketWrites.js"
import * as Stats from "./Stats.js"

const request = JSON.parse(process.env[Cell.REQUEST_ENV] ?? "null") as Cell.Request | null
if (request === null) throw new Error(`${Cell.REQUEST_ENV} is not set: run \`pnpm bench\`, not this file`)

let peakRss = process.memoryUsage.rss()
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss())
}, 10)

const socketWrites = SocketWrites.install()

const now = () => performance.now()

/** `n` workflows started at once (ids `<prefix>-<i>`): their throughput, latencies and node CPU. */
const burst = async (runner: Cell.Runner, n: number, prefix: string) => {
  const cpu0 = process.cpuUsage()
  const t0 = now()
  const latencies = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const start = now()
    await runner.run(`${prefix}-${i}`)
    return now() - start
  }))
  const elapsed = (now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  return { throughput: n / elapsed, latencies, cpuMs: (cpu.user + cpu.system) / 1000 }
}

const measure = async (system: Cell.System, runner: Cell.Runner, req: Cell.Request) => {
  const { n, sequential } = req
  const cpu0 = process.cpuUsage()
  const writes0 = socketWrites.writes()
  const first = await burst(runner, n, "c")
  const cpuAlone0 = process.cpuUsage()
  const single: Array<number> = []
  for (let i = 0; i < sequential; i++) {
    const start = now()
    await runner.run(`s-${i}`)
    single.push(now() - start)
  }
  const cpu = process.cpuUsage(cpu0)
  const cpuAlone = process.cpuUsage(cpuAlone0)
  const writes = socketWrites.writes() - writes0
  // the same burst again, in a process that has run n + sequential + 1 workflows: its code is
  // compiled by now (the first burst's node CPU is about half the compiler's and the cold code's)
  const peakBeforeWarm = peakRss
  const warm = req.warm ? await burst(runner, n, "w") : undefined
  return {
    system,
    throughput: first.throughput,
    warm: warm === undefined ? undefined : {
      throughput: warm.throughput,
      cpuMsPerWorkflow: warm.cpuMs / n,
      peakRssMb: Math.max(peakRss, process.memoryUsage.rss()) / 2 ** 20
    },
    peakRssMb: peakBeforeWarm / 2 ** 20,
    p50: Stats.percentile(first.latencies, 50),
    p99: Stats.percentile(first.latencies, 99),
    sequentialP50: Stats.percentile(single, 50),
    cpuMsPerWorkflow: (cpu.user + cpu.system) / 1000 / (n + sequential),
    cpuMsPerSequentialRun: (cpuAlone.user + cpuAlone.system) / 1000 / sequential,
    socketWritesPerWorkflow: writes / (n + sequential),
    workflows: n + sequential,
    workflowsRun: n + sequential + (warm === undefined ? 0 : n)
  }
}

/** Every workflow's 3 rows exist; with `exactlyOnce`, each step's upsert ran once (counter = 1). */
const checkRows = async (url: string, workflows: number, exactlyOnce: boolean) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows: [row] } = await client.query<{ rows: number; workflows: number; complete: number; max: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT workflow_id)::int AS workflows,
        (SELECT count(*)::int FROM (SELECT workflow_id FROM ${Cell.STEPS_TABLE}
          GROUP BY workflow_id HAVING count(DISTINCT step) = 3) c) AS complete,
        coalesce(max(counter), 0)::int AS max
       FROM ${Cell.STEPS_TABLE}`
    )
    const problems: Array<string> = []
    if (row!.rows !== workflows * 3) problems.push(`${row!.rows} rows, expected ${workflows * 3}`)
    if (row!.complete !== workflows) problems.push(`${row!.complete} workflows with all 3 steps, expected ${workflows}`)
    if (exactlyOnce && row!.max !== 1) problems.push(`a step ran ${row!.max} times, expected exactly once`)
    if (problems.length > 0) throw new Error(`row check failed: ${problems.join("; ")}`)
  } finally {
    await client.end()
  }
}

// ---------------------------------------------------------------- ceiling

/** Postgres alone: single-row INSERT per transaction (autocommit) on `connections` connections. */
const ceiling = async (req: Cell.Request) => {
  const pool = new pg.Pool({ connectionString: req.url, max: req.connections })
  await pool.query("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, value integer NOT NULL)")
  const total = Math.max(10_000, req.n * 3)
  let next = 0
  const t0 = now()
  await Promise.all(Array.from({ length: req.connections }, async () => {
    while (next < total) {
      next++
      await pool.query("INSERT INTO bench_ceiling (value) VALUES ($1)", [next])
    }
  }))
  const elapsed = (now() - t0) / 1000
  const { rows: [row] } = await pool.query<{ count: number }>("SELECT count(*)::int AS count FROM bench_ceiling")
  await pool.end()
  if (row!.count !== total) throw new Error(`row check failed: ${row!.count} rows, expected ${total}`)
  return { system: "ceiling" as const, throughput: total / elapsed, p50: 0, p99: 0, sequentialP50: 0, cpuMsPerWorkflow: 0, cpuMsPerSequentialRun: 0, socketWritesPerWorkflow: 0, workflows: 0, workflowsRun: 0 }
}

const main = async (req: Cell.Request): Promise<Cell.Result> => {
  if (req.system === "ceiling") return { ...(await ceiling(req)), peakRssMb: peakRss / 2 ** 20 }
  // each system's code is loaded only in its own cells, so RSS is its own
  const runner = req.system === "dbos"
    ? await (await import("./DbosCell.js")).start(req)
    : await (await import("./DuraflowCell.js")).start(req)
  // one warm-up run (checked with the others): the figures are not the first run's module loading
  await runner.run("warm-up")
  const figures = await measure(req.system, runner, req)
  await runner.stop()
  // (the warm-up run too)
  await checkRows(req.url, figures.workflowsRun + 1, req.system === "durable-tx" || req.system === "durable-tx-effect")
  return figures
}

main(request).then(
  (result) => {
    clearInterval(sampler)
    process.stdout.write(`${Cell.RESULT_MARKER}${JSON.stringify(result)}\n`)
    process.exit(0)
  },
  (error) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)
