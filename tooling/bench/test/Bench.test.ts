/**
 * `pnpm bench` end to end, small: the cells are built to JavaScript (`CellBuild`) and each
 * runs in its own process on its own database, checks its rows and reports its figures;
 * the databases are dropped afterwards.
 */
import pg from "pg"
import { describe, expect, it } from "vitest"
import * as Bench from "../src/Bench.js"
import type { Measured } from "../src/Bench.js"

const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

describe("Bench", () => {
  it("rotates the systems' order by one each rep", () => {
    const systems = ["durable", "durable-tx", "memory", "dbos"] as const
    expect([1, 2, 3, 4, 5].map((rep) => Bench.orderOf(systems, rep).join(" "))).toEqual([
      "durable durable-tx memory dbos",
      "durable-tx memory dbos durable",
      "memory dbos durable durable-tx",
      "dbos durable durable-tx memory",
      "durable durable-tx memory dbos"
    ])
    expect(Bench.orderOf(["dbos"], 2)).toEqual(["dbos"])
  })

  it("prints the targets' ratios: of medians, per rep, met or not, only for systems that both ran", () => {
    const m = (
      system: Measured["system"],
      rep: number,
      throughput: number,
      sequentialP50: number,
      peakRssMb: number,
      warmThroughput?: number
    ) =>
      ({
        system,
        rep,
        throughput,
        warm: warmThroughput === undefined ? undefined : { throughput: warmThroughput, cpuMsPerWorkflow: 1, peakRssMb: 500 },
        p50: 0,
        p99: 0,
        sequentialP50,
        peakRssMb,
        cpuMsPerWorkflow: 2,
        cpuMsPerSequentialRun: sequentialP50 / 2,
        socketWritesPerWorkflow: 3,
        workflows: 10,
        workflowsRun: 20,
        commitsPerWorkflow: 5
      }) satisfies Measured
    const results = [
      m("durable", 1, 300, 4, 400, 600),
      m("dbos", 1, 250, 6, 200, 300),
      m("durable", 2, 200, 5, 420, 500),
      m("dbos", 2, 400, 5, 210, 400),
      m("durable-tx", 1, 280, 5, 410),
      m("durable-tx", 2, 170, 5, 410),
      m("durable-tx-effect", 1, 240, 5, 410),
      m("durable-tx-effect", 2, 160, 5, 410)
    ]
    const lines = Bench.ratios(results, { systems: ["durable", "durable-tx", "durable-tx-effect", "dbos"], reps: 2 })
    // medians: durable 250, dbos 325 wf/s
    expect(lines[0]).toBe("throughput, durable against DBOS: 0.77x (per rep 1.20x/0.50x); target >= 1x: not met")
    expect(lines[1]).toBe("sequential p50, durable against DBOS: 0.82x (per rep 0.67x/1.00x); target <= 1x: met")
    expect(lines[2]).toBe("peak RSS, durable against DBOS: 2.00x (per rep 2.00x/2.00x); target <= 2x: met")
    expect(lines[3]).toBe("node CPU per workflow, durable against DBOS: 1.00x (per rep 1.00x/1.00x); no target")
    expect(lines[4]).toBe("node CPU per sequential run, durable against DBOS: 0.82x (per rep 0.67x/1.00x); no target")
    expect(lines[5]).toBe(
      "throughput, transactional (body: the statement) against plain activities: 0.90x (per rep 0.93x/0.85x); " +
        "target >= 0.9x: met"
    )
    expect(lines[6]).toBe(
      "throughput, transactional (body: an effect) against plain activities: 0.80x (per rep 0.80x/0.80x); " +
        "target >= 0.9x: not met"
    )
    // the warm burst's, only where both cells have one: medians durable 550, dbos 350 wf/s
    expect(lines[7]).toBe("throughput of the warm burst, durable against DBOS: 1.57x (per rep 2.00x/1.25x); no target")
    expect(lines).toHaveLength(8)
    expect(Bench.ratios(results, { systems: ["durable", "memory"], reps: 2 })).toEqual([])
  })

  it("runs each system's cell as compiled JavaScript, checks its rows and drops its databases", async () => {
    const lines: Array<string> = []
    const results = await Bench.run({
      n: 3,
      sequential: 1,
      reps: 1,
      connections: 4,
      databaseUrl: adminUrl,
      systems: ["durable", "durable-tx", "durable-tx-effect", "dbos"],
      timeout: 120,
      warm: true,
      nodeFlags: []
    }, (line) => lines.push(line))
    expect(results.map((r) => r.system)).toEqual(["ceiling", "durable", "durable-tx", "durable-tx-effect", "dbos"])
    for (const r of results.slice(1)) {
      // the warm-up run is checked too, not counted; the warm burst (3 more) counts for commits only
      expect(r.workflows).toBe(4)
      expect(r.workflowsRun).toBe(7)
      expect(r.throughput).toBeGreaterThan(0)
      expect(r.warm?.throughput).toBeGreaterThan(0)
      expect(r.warm?.cpuMsPerWorkflow).toBeGreaterThan(0)
      expect(r.warm?.peakRssMb).toBeGreaterThanOrEqual(r.peakRssMb)
      expect(r.commitsPerWorkflow).toBeGreaterThan(0)
      // a run alone costs node CPU: the sequential phase is measured on its own
      expect(r.cpuMsPerSequentialRun).toBeGreaterThan(0)
      // each step's upsert is a statement of its own, written to Postgres
      expect(r.socketWritesPerWorkflow).toBeGreaterThanOrEqual(3)
      // the server is a process of this machine: its CPU over the cell (its migrations at least)
      expect(r.postgresCpuMsPerWorkflow).toBeGreaterThan(0)
    }
    expect(lines).toHaveLength(5)
    expect(lines.slice(1).every((line) => line.endsWith("rows ok") && line.includes("warm burst"))).toBe(true)
    const admin = new pg.Client({ connectionString: adminUrl })
    await admin.connect()
    try {
      const { rows } = await admin.query("SELECT datname FROM pg_database WHERE datname LIKE $1", [`bench\\_%\\_${process.pid}\\_%`])
      expect(rows).toEqual([])
    } finally {
      await admin.end()
    }
  }, 180_000)
})
