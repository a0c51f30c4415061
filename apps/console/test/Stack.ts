/**
 * The console's test stack on a fresh database: the two apps as real processes,
 * each connected as its own app role (`Provisioning.provisionApp`) and with an
 * operator token, and the console as a real process connected as a read-only
 * observer role that has no privilege on any app's table. Roles are cluster-wide:
 * their names carry the database's name, and they are dropped at the end.
 */
import { Provisioning } from "@duraflow/runtime-core"
import { TestDatabase, TestProcess } from "@duraflow/runtime-core/testing"
import { SqlClient } from "@effect/sql"
import { Cause, Effect, type Scope } from "effect"
import { fileURLToPath } from "node:url"

export const TOKEN = "console-test-operator-token"

const appDir = (name: string) => fileURLToPath(new URL(`../../${name}/`, import.meta.url))

export const freePort = TestProcess.freePort

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url))

const spawn = (dir: string, port: number, env: Record<string, string | undefined>) => spawnEntry(dir, "src/main.ts", port, env)

const spawnEntry = (dir: string, entry: string, port: number, env: Record<string, string | undefined>) =>
  Effect.gen(function*() {
    const process = yield* TestProcess.spawnTs(`${dir}${entry}`, {
      cwd: dir,
      env: { ...env, PORT: String(port), TEST_DATABASE_URL: undefined, WORKFLOW_MODE: "durable" }
    })
    yield* process.waitFor((l) => l.includes("Listening on http://") && l.includes(`:${port}`), "120 seconds")
    return { process, url: `http://127.0.0.1:${port}` }
  })

/** A role for this test; dropped with what it owns (in this database) when the scope closes. */
const role = (name: string, create: Effect.Effect<unknown, unknown, SqlClient.SqlClient>) =>
  Effect.acquireRelease(create, () =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.zipRight(
        sql.unsafe(`DROP OWNED BY "${name}"`),
        sql.unsafe(`DROP ROLE IF EXISTS "${name}"`)
      )).pipe(Effect.ignoreLogged))

/**
 * With `approvals`, a third app (`fixtures/approvals-app.ts`, prefix `approvals`) whose
 * runs suspend on a signal, under its own role too.
 */
export const startStack = (options: { readonly approvals?: boolean } = {}): Effect.Effect<
  {
    readonly ontology: string
    readonly knowledge: string
    readonly approvals: string | undefined
    readonly console: string
    readonly processes: ReadonlyArray<TestProcess.TestProcess>
  },
  unknown,
  TestDatabase.TestDatabase | SqlClient.SqlClient | Scope.Scope
> => Effect.gen(function*() {
  const db = yield* TestDatabase.TestDatabase
  const sql = yield* SqlClient.SqlClient
  const tag = db.name.slice(-8)
  const roles = {
    ontology: `c${tag}_ontology`,
    knowledge: `c${tag}_knowledge`,
    approvals: `c${tag}_approvals`,
    observer: `c${tag}_observer`
  }
  for (const prefix of ["ontology", "knowledge", ...(options.approvals ? ["approvals" as const] : [])] as const) {
    yield* role(roles[prefix], Provisioning.provisionApp({ prefix, role: roles[prefix], password: "app-password" }))
  }
  yield* role(roles.observer, sql.unsafe(`CREATE ROLE "${roles.observer}" LOGIN PASSWORD 'observer' NOSUPERUSER NOCREATEDB NOCREATEROLE`))
  const [ontologyPort, knowledgePort, consolePort] = yield* Effect.all([freePort, freePort, freePort])
  const ontology = yield* spawn(appDir("ontology-server"), ontologyPort, {
    DATABASE_URL: Provisioning.appUrl(db.url, roles.ontology, "app-password"),
    DURAFLOW_OPERATOR_TOKEN: TOKEN
  })
  const knowledge = yield* spawn(appDir("knowledge-server"), knowledgePort, {
    DATABASE_URL: Provisioning.appUrl(db.url, roles.knowledge, "app-password"),
    DURAFLOW_OPERATOR_TOKEN: TOKEN,
    ONTOLOGY_URL: ontology.url
  })
  const approvals = options.approvals
    ? yield* Effect.flatMap(freePort, (port) =>
      spawnEntry(fixtures, "approvals-app.ts", port, {
        DATABASE_URL: Provisioning.appUrl(db.url, roles.approvals, "app-password"),
        DURAFLOW_OPERATOR_TOKEN: TOKEN
      }))
    : undefined
  const console = yield* spawn(fileURLToPath(new URL("../", import.meta.url)), consolePort, {
    DATABASE_URL: Provisioning.appUrl(db.url, roles.observer, "observer"),
    CONSOLE_APPS: [ontology.url, knowledge.url, ...(approvals ? [approvals.url] : [])].join(","),
    DURAFLOW_OPERATOR_TOKEN: TOKEN
  })
  return {
    ontology: ontology.url,
    knowledge: knowledge.url,
    approvals: approvals?.url,
    console: console.url,
    processes: [ontology.process, knowledge.process, console.process, ...(approvals ? [approvals.process] : [])]
  }
})

/** A process by its entry file (`apps/knowledge-server/src/main.ts`) and pid. */
const label = (p: TestProcess.TestProcess) => `${(p.child.spawnargs.at(-1) ?? "").split("/").slice(-4).join("/")} (pid ${p.pid})`

/** How many of each process's last lines a failure carries in its message. */
const TAIL = 15

/**
 * Prints every process's output when the test fails, and adds the last lines of each to the
 * failure itself: CI keeps only the end of its output, where vitest repeats the failure.
 */
export const logsOnFailure = <A, E, R>(
  processes: () => ReadonlyArray<TestProcess.TestProcess>,
  self: Effect.Effect<A, E, R>
) =>
  Effect.catchAllCause(self, (cause) =>
    Effect.suspend(() => {
      const all = processes()
      console.error(all.map((p) => `----- ${label(p)}\n${p.lines.join("\n")}`).join("\n"))
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const tails = all.map((p) => `----- ${label(p)}, last ${TAIL} lines\n${p.lines.slice(-TAIL).map((l) => l.slice(0, 400)).join("\n")}`)
      const first = Cause.squash(cause)
      const message = first instanceof Error ? first.message : String(first)
      const error = new Error(`${message}\n${tails.join("\n")}`)
      if (first instanceof Error && first.stack !== undefined) error.stack = `${error.message}\n${first.stack.split("\n").slice(1, 4).join("\n")}`
      return Effect.die(error)
    }))

/** JSON over HTTP (the tests call the console as the browser does). */
export const request = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: any = null
    try {
      body = JSON.parse(text)
    } catch {
      body = text
    }
    return { status: response.status, body, headers: response.headers }
  })

export const post = (url: string, body: unknown = null) =>
  request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

/** Repeats `effect` until `done` holds (every 250 ms), failing after `timeoutMs`. */
export const poll = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, done: (a: A) => boolean, timeoutMs = 90_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const value = yield* effect
      if (done(value)) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}; last: ${JSON.stringify(value).slice(0, 2000)}`)
      yield* Effect.sleep("250 millis")
    }
  })
