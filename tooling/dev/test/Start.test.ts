/**
 * The main job stops everything it started, however it is stopped: the whole process
 * tree of `pnpm start` (embedded Postgres in a temporary data directory, both apps, on
 * free ports) is started for real, then
 * - its terminal "closes": SIGHUP to its process group, as the kernel does on hangup;
 * - its main process is killed outright (SIGKILL): the children notice and stop;
 * and afterwards nothing listens on the apps' or Postgres's ports and no process of it
 * is left. A port that is already taken is refused before anything starts.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { TestProcess } from "@duraflow/runtime-core/testing"
import { Effect } from "effect"
import { afterAll, afterEach, describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "../../..")
const dataDir = mkdtempSync(join(tmpdir(), "duraflow-start-"))
const started: Array<ChildProcess> = []

const freePort = () => Effect.runPromise(TestProcess.freePort)

const listening = (port: number) =>
  new Promise<boolean>((done) => {
    const socket = new Socket()
    const end = (open: boolean) => (socket.destroy(), done(open))
    socket.setTimeout(1000, () => end(false))
    socket.once("connect", () => end(true))
    socket.once("error", () => end(false))
    socket.connect(port, "127.0.0.1")
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Processes (pid and command line) whose command line mentions `text`, this test's own excluded. */
const processesWith = (text: string) =>
  execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" }).split("\n")
    .filter((line) => line.includes(text) && !line.includes("vitest"))

/** Starts `command` in a process group of its own, output kept; resolves once both apps are up. */
const startJob = async (command: string, args: ReadonlyArray<string>) => {
  const [ontology, knowledge, postgres, consolePort] = [await freePort(), await freePort(), await freePort(), await freePort()]
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EMBEDDED_PG_DIR: dataDir,
    EMBEDDED_PG_PORT: String(postgres),
    ONTOLOGY_PORT: String(ontology),
    KNOWLEDGE_PORT: String(knowledge),
    CONSOLE_PORT: String(consolePort)
  }
  delete env.DATABASE_URL
  delete env.NODE_OPTIONS
  const child = spawn(command, args, { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
  started.push(child)
  let output = ""
  child.stdout!.on("data", (c: Buffer) => (output += c.toString("utf8")))
  child.stderr!.on("data", (c: Buffer) => (output += c.toString("utf8")))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once("exit", (code, signal) => done({ code, signal }))
  )
  const deadline = Date.now() + 240_000
  while (!output.includes("Press Ctrl-C")) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`start exited:\n${output}`)
    if (Date.now() > deadline) throw new Error(`start was not up within 240 s:\n${output}`)
    await sleep(250)
  }
  for (const port of [ontology, knowledge, postgres, consolePort]) expect(await listening(port)).toBe(true)
  expect(output).toContain(`console    http://127.0.0.1:${consolePort}`)
  return { child, exited, ports: [ontology, knowledge, postgres, consolePort], output: () => output }
}

/** Waits until nothing listens on `ports` and no process runs on the data directory (or 60 s pass). */
const allGone = async (ports: ReadonlyArray<number>) => {
  const deadline = Date.now() + 60_000
  for (;;) {
    const open = (await Promise.all(ports.map(listening))).some((o) => o)
    const left = processesWith(dataDir)
    if ((!open && left.length === 0) || Date.now() > deadline) return { open, left }
    await sleep(500)
  }
}

/**
 * Stops whatever a test started: our process groups, then a Postgres on our data directory.
 * After each test, so that a failed test leaves nothing running on the shared data directory
 * for the next one.
 */
const stopLeftovers = async () => {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid!, "SIGKILL")
    } catch {
      // already gone
    }
  }
  const pidFile = join(dataDir, "postmaster.pid")
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0])
    try {
      if (pid > 0) process.kill(pid, "SIGTERM")
    } catch {
      // not running
    }
    const deadline = Date.now() + 30_000
    while (existsSync(pidFile) && processesWith(dataDir).length > 0 && Date.now() < deadline) await sleep(250)
  }
}

afterEach(stopLeftovers)

afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

describe("pnpm start", () => {
  it("a closed terminal (SIGHUP to its process group) stops Postgres and both apps, exit 0", async () => {
    const job = await startJob("npx", ["-y", "pnpm@10.34.8", "start"])
    // the job says what it is waiting for before Postgres is up
    expect(job.output().indexOf("starting Postgres…")).toBeGreaterThanOrEqual(0)
    expect(job.output().indexOf("starting Postgres…")).toBeLessThan(job.output().indexOf("Embedded Postgres (data in"))
    process.kill(-job.child.pid!, "SIGHUP")
    expect(await allGone(job.ports)).toEqual({ open: false, left: [] })
    await job.exited
  })

  it("SIGKILL of the main process: its children stop on their own", async () => {
    // the main process itself (what the start script execs), so that the kill reaches it alone
    const job = await startJob(process.execPath, ["--import", "tsx", "tooling/dev/src/main.ts"])
    job.child.kill("SIGKILL")
    expect(await job.exited).toEqual({ code: null, signal: "SIGKILL" })
    expect(await allGone(job.ports)).toEqual({ open: false, left: [] })
  })

  it("SIGTERM of the main process stops everything and exits 0", async () => {
    const job = await startJob(process.execPath, ["--import", "tsx", "tooling/dev/src/main.ts"])
    job.child.kill("SIGTERM")
    expect(await job.exited).toEqual({ code: 0, signal: null })
    expect(await allGone(job.ports)).toEqual({ open: false, left: [] })
  })

  it("refuses a port that is taken (never attaches to a leftover app)", async () => {
    const squatter = createServer((socket) => {
      socket.on("error", () => {}) // the probe resets the connection
      socket.end("HTTP/1.1 200 OK\r\n\r\n{}")
    })
    await new Promise<void>((done) => squatter.listen(0, "127.0.0.1", done))
    const port = (squatter.address() as { port: number }).port
    try {
      const child = spawn(process.execPath, ["--import", "tsx", "tooling/dev/src/main.ts", "--ontology-port", String(port)], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: "postgres://postgres@127.0.0.1:9/none", KNOWLEDGE_PORT: String(await freePort()), CONSOLE_PORT: String(await freePort()) },
        stdio: ["ignore", "pipe", "pipe"]
      })
      started.push(child)
      let output = ""
      child.stdout!.on("data", (c: Buffer) => (output += c.toString("utf8")))
      child.stderr!.on("data", (c: Buffer) => (output += c.toString("utf8")))
      const code = await new Promise<number | null>((done) => child.once("exit", (c) => done(c)))
      expect(code).toBe(1)
      expect(output).toContain(`port ${port} is taken`)
      expect(output).not.toContain("Both apps are up")
    } finally {
      squatter.close()
    }
  })
})
