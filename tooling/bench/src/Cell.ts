/** What the parent asks a cell's child process to do, and what the child answers. */

export const systems = ["durable", "durable-tx", "durable-tx-effect", "memory", "dbos"] as const
export type System = (typeof systems)[number]

export const systemLabels: Record<System, string> = {
  "durable": "duraflow durable",
  "durable-tx": "duraflow durable, transactional activities (body: the statement)",
  "durable-tx-effect": "duraflow durable, transactional activities (body: an effect)",
  "memory": "duraflow memory engine",
  "dbos": "DBOS Transact"
}

export interface Request {
  readonly system: System | "ceiling"
  readonly url: string
  /** workflows started at once */
  readonly n: number
  /** workflows run one after another, afterwards */
  readonly sequential: number
  /**
   * after those, `n` more started at once (the warm burst): the same process, its code
   * compiled by now, as a server that has been up a while
   */
  readonly warm: boolean
  /**
   * Connections to Postgres the system may open (the ceiling: the connections it inserts
   * on): duraflow's one pool; DBOS's system pool and its steps' pool, half each
   */
  readonly connections: number
}

export interface Result {
  readonly system: System | "ceiling"
  /** workflows per second (ceiling: transactions per second), the first burst: one warm-up run before it */
  readonly throughput: number
  /** the warm burst's figures (`Request.warm`; none without it) */
  readonly warm?: Warm | undefined
  readonly p50: number
  readonly p99: number
  readonly sequentialP50: number
  readonly peakRssMb: number
  /** node CPU (user + system) per workflow over the first burst and the sequential runs, ms */
  readonly cpuMsPerWorkflow: number
  /**
   * node CPU per run of the sequential phase alone, ms: a run alone waits on its statements
   * one after another, and on the node work between them, which this measures
   */
  readonly cpuMsPerSequentialRun: number
  /** socket writes (to Postgres; `SocketWrites`) per workflow over the first burst and the sequential runs */
  readonly socketWritesPerWorkflow: number
  /** workflows of the first burst and the sequential runs (the figures per workflow above are over these) */
  readonly workflows: number
  /** the workflows of every phase, the warm burst included (not the warm-up run): commits and Postgres CPU per workflow are over these */
  readonly workflowsRun: number
}

/** The warm burst's figures (`Request.warm`). */
export interface Warm {
  /** workflows per second */
  readonly throughput: number
  /** node CPU per workflow of the warm burst alone, ms */
  readonly cpuMsPerWorkflow: number
  /** peak RSS over the cell's whole life, the warm burst included, MB (`Result.peakRssMb`: before it) */
  readonly peakRssMb: number
}

export const REQUEST_ENV = "BENCH_CELL"
export const RESULT_MARKER = "BENCH_RESULT "

/** The one table every system's steps upsert into (duraflow: prefix `bench`, table `steps`). */
export const STEPS_TABLE = "bench_steps"
export const STEPS_DDL = `CREATE TABLE ${STEPS_TABLE} (
  workflow_id text NOT NULL,
  step integer NOT NULL,
  counter integer NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, step)
)`
/** $1 workflow id, $2 step: the step's one write. */
export const UPSERT = `INSERT INTO ${STEPS_TABLE} (workflow_id, step) VALUES ($1, $2)
  ON CONFLICT (workflow_id, step) DO UPDATE SET counter = ${STEPS_TABLE}.counter + 1, updated_at = now()`

/** A system ready to run the bench workflow: `run` resolves when the workflow `id` has finished. */
export interface Runner {
  readonly run: (id: string) => Promise<void>
  readonly stop: () => Promise<void>
}
