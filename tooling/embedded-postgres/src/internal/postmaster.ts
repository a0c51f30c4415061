/**
 * Reading `postmaster.pid`, the lock file a running server keeps in its data
 * directory. Its lines (PostgreSQL's pidfile.h): 1 pid, 2 data directory,
 * 3 start time, 4 port, 5 socket directory, 6 listen address, 7 shared memory
 * key, 8 status ("starting", "ready", "stopping", "standby"). Lines 4–8 are
 * appended while the server starts, so a young file may lack them.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"

export interface Postmaster {
  readonly pid: number
  /** `undefined` until the server has written it. */
  readonly port: number | undefined
  readonly status: string
}

export const file = (dataDir: string): string => path.join(dataDir, "postmaster.pid")

export const read = async (dataDir: string): Promise<Postmaster | undefined> => {
  const text = await fs.readFile(file(dataDir), "utf8").catch((error: NodeJS.ErrnoException) =>
    error.code === "ENOENT" ? undefined : Promise.reject(error)
  )
  if (text === undefined) return undefined
  const lines = text.split("\n")
  const pid = Number(lines[0])
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  const port = Number(lines[3])
  return { pid, port: Number.isInteger(port) && port > 0 ? port : undefined, status: (lines[7] ?? "").trim() }
}

/** Whether `pid` is a live process (EPERM: alive, owned by another user). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Whether `pid` is a live Postgres server. On Linux the process name must be
 * `postgres`, which tells a pid reused by some other process (common after a
 * container restart) from the server that wrote the file; elsewhere a live pid
 * is taken at its word.
 */
export const isLivePostgres = async (pid: number): Promise<boolean> => {
  if (!isAlive(pid)) return false
  if (process.platform !== "linux") return true
  const comm = await fs.readFile(`/proc/${pid}/comm`, "utf8").catch(() => undefined)
  return comm?.trim() === "postgres"
}
