/** A DBOS Transact cell: the same workflow, steps as `DBOS.runStep`, its system tables in the cell's database. */
import { DBOS } from "@dbos-inc/dbos-sdk"
import pg from "pg"
import * as Cell from "./Cell.js"

export const start = async (req: Cell.Request): Promise<Cell.Runner> => {
  // DBOS's defaults are a system pool of 10 and the app's own pool for its steps (10 here): the
  // request's connections split between the two, so every system opens as many
  const systemPool = Math.max(1, Math.floor(req.connections / 2))
  const pool = new pg.Pool({ connectionString: req.url, max: Math.max(1, req.connections - systemPool) })
  await pool.query(Cell.STEPS_DDL)
  DBOS.setConfig({ name: "bench", systemDatabaseUrl: req.url, systemDatabasePoolSize: systemPool, logLevel: "error" })
  const step = (id: string, s: number) =>
    DBOS.runStep(async () => {
      await pool.query(Cell.UPSERT, [id, s])
    }, { name: `step-${s}` })
  const workflow = DBOS.registerWorkflow(async (id: string) => {
    for (const s of [1, 2, 3]) await step(id, s)
  }, { name: "Bench" })
  await DBOS.launch()
  return {
    run: async (id) => {
      const handle = await DBOS.startWorkflow(workflow, { workflowID: id })(id)
      await handle.getResult()
    },
    stop: async () => {
      await DBOS.shutdown()
      await pool.end()
    }
  }
}

