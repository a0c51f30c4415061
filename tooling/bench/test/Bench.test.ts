/**
 * `pnpm bench` end to end, small: the cells are built to JavaScript (`CellBuild`) and each
 * runs in its own process on its own database, checks its rows and reports its figures;
 * the databases are dropped afterwards.
 */
import pg from "pg"
import { describe, expect, it } from "vitest"
import * as Bench from "../src/Bench.js"

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

  it("runs each system's cell as compiled JavaScript, checks its rows and drops its databases", async () => {
    const lines: Array<string> = []
    const results = await Bench.run({
      n: 3,
      sequential: 1,
      reps: 1,
      connections: 2,
      databaseUrl: adminUrl,
      systems: ["durable", "dbos"],
      timeout: 120,
      nodeFlags: []
    }, (line) => lines.push(line))
    expect(results.map((r) => r.system)).toEqual(["ceiling", "durable", "dbos"])
    for (const r of results.slice(1)) {
      // the warm-up run is checked too, not counted
      expect(r.workflows).toBe(4)
      expect(r.throughput).toBeGreaterThan(0)
      expect(r.commitsPerWorkflow).toBeGreaterThan(0)
    }
    expect(lines).toHaveLength(3)
    expect(lines.slice(1).every((line) => line.endsWith("rows ok"))).toBe(true)
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
