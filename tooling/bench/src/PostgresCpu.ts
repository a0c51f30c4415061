/**
 * CPU used by the Postgres server (every process of it), read from Linux's
 * `/proc`: the postmaster's own time, the time of the children it has reaped
 * (`cutime`/`cstime`: a cell's backends once they have exited), and its live
 * children's (checkpointer, WAL writer, autovacuum, open backends). Two
 * samples around a cell give what the server spent on it (issue 12's
 * "Postgres backend CPU per 1000 wf"): on this 2-core machine node and
 * Postgres share the CPU, so a system's throughput depends on both.
 *
 * `undefined` when the server is not a process of this machine that `/proc`
 * shows (another host, a container, not Linux).
 */
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import type pg from "pg"

/**
 * The fields of `/proc/<pid>/stat` after the command (which may hold spaces):
 * state is [0], ppid [1], utime [11]; `undefined` unless the process is a
 * Postgres one (a server elsewhere may have a backend whose pid is a local
 * process's).
 */
const postgresStat = (pid: number | string): Array<string> | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
    return command.startsWith("postgres") ? stat.slice(stat.lastIndexOf(")") + 2).split(" ") : undefined
  } catch {
    return undefined
  }
}

let ticksPerSecond: number | undefined
const clockTicks = () => {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** The server's CPU so far, ms (see above); `admin` is a connection to it. */
export const sample = async (admin: pg.Client): Promise<number | undefined> => {
  const { rows } = await admin.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
  const backend = rows[0]?.pid
  const postmaster = backend === undefined ? undefined : postgresStat(backend)?.[1]
  const own = postmaster === undefined ? undefined : postgresStat(postmaster)
  if (postmaster === undefined || own === undefined) return undefined
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const fields = postgresStat(entry)
    if (fields !== undefined && fields[1] === postmaster) ticks += Number(fields[11]) + Number(fields[12])
  }
  return (ticks * 1000) / clockTicks()
}
