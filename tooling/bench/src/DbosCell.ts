/** A DBOS Transact cell: the same workflow, steps as `DBOS.runStep`, its system tables in the cell's database. */
import { DBOS } from "@dbos-inc/dbos-sdk"
import pg from "pg"
import * as Cell from "./Cell.js"

export const start = async (req: Cell.Request): Promise<Cell.Runner> => {
  const pool = new pg.Pool({ connectionString: req.url, max: 10 })
  await pool.query(Cell.STEPS_DDL)
  DBOS.setConfig({ name: "bench", systemDatabaseUrl: req.url, logLevel: "error" })
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

