/**
 * Named (prepared) statements for the statements a process sends again and
 * again: the runtime's own (a run's start message, its steps' exit rows, the
 * ledger's writes, the reply) and the app's.
 *
 * `@effect/sql-pg` sends every statement unnamed: Postgres parses and plans
 * its text on each execution. A run alone sends its statements one after
 * another, so that work is on its path every time: measured on this machine
 * kind, a round trip of the start message's INSERT took 0.23-0.63 ms unnamed
 * against 0.16-0.60 ms named, and the ledger's upsert 0.36-0.53 ms against
 * 0.18-0.23 ms. Here a text sent `threshold` times gets a name, and each
 * connection parses it once (pg's `Client` remembers what it has parsed);
 * after that only its parameters go to the server.
 *
 * Bounded and conservative:
 * - only statements with parameters are named (pg sends those with the
 *   extended protocol already, one statement each; a text without parameters
 *   may hold several statements, which cannot be prepared);
 * - at most `maxStatements` texts per pool (each connection holds a plan per
 *   name), and none longer than `maxTextLength`;
 * - at most `maxPerFamily` names between texts that begin alike (the same
 *   first `familyPrefix` characters): a statement built per call, whose text
 *   grows with its rows (the runtime's grouped writes: a group of k replies is
 *   one text per k), would otherwise take every name in a few minutes of load
 *   (16 of the first 27 in three bursts of 1000 runs), and no statement seen
 *   after it would be named; nor are such texts counted any more once their
 *   family has its names;
 * - no text with a `*`: a `SELECT *` or `RETURNING *` prepared before a
 *   migration adds a column would fail ("cached plan must not change result
 *   type", 0A000); texts naming their columns are re-planned by Postgres after
 *   DDL, as unnamed ones are;
 * - a named statement that fails because the session no longer has it (26000:
 *   a `DISCARD ALL`, a proxy that switched sessions) or because its result
 *   type changed (0A000) is not named again on that connection. Such a failure
 *   happens before the statement executes: outside a transaction (the session
 *   was idle when it started) the statement is sent again at once, unnamed;
 *   inside one, the transaction is aborted already, so the statement fails as
 *   any failed statement does (its caller's retry sends it unnamed).
 *
 * A connection pooler in transaction mode (PgBouncer before 1.21, or without
 * `max_prepared_statements`) does not keep a session's prepared statements:
 * set `DATABASE_PREPARED_STATEMENTS=false` there (`Database.config`).
 */
import pg from "pg"

export interface Options {
  /** Most texts named per pool. */
  readonly maxStatements?: number | undefined
  /** Sends of a text before it is named (the first ones go unnamed). */
  readonly threshold?: number | undefined
  /** Longest text named, in characters. */
  readonly maxTextLength?: number | undefined
  /** Most names between texts whose first `familyPrefix` characters are the same. */
  readonly maxPerFamily?: number | undefined
  /** How many characters make a text's family. */
  readonly familyPrefix?: number | undefined
}

/** Texts counted but not named yet, at most (counting restarts beyond it: texts built per call never pile up). */
const maxCounted = 4096

/** Which texts a pool names, and their names (shared by the pool's connections). */
export class Registry {
  private readonly counted = new Map<string, number>()
  private readonly names = new Map<string, string>()
  /** Names given per family (texts longer than `familyPrefix` only: a shorter text is a family of one). */
  private readonly families = new Map<string, number>()
  readonly maxStatements: number
  readonly threshold: number
  readonly maxTextLength: number
  readonly maxPerFamily: number
  readonly familyPrefix: number

  constructor(options?: Options) {
    this.maxStatements = options?.maxStatements ?? 64
    this.threshold = options?.threshold ?? 2
    this.maxTextLength = options?.maxTextLength ?? 16_384
    this.maxPerFamily = options?.maxPerFamily ?? 8
    this.familyPrefix = options?.familyPrefix ?? 256
  }

  /** The name `text` goes by, once it has been sent often enough; undefined: send it unnamed. */
  nameOf(text: string): string | undefined {
    const named = this.names.get(text)
    if (named !== undefined) return named
    if (this.names.size >= this.maxStatements || text.length > this.maxTextLength || text.includes("*")) return undefined
    const family = text.length > this.familyPrefix ? text.slice(0, this.familyPrefix) : undefined
    if (family !== undefined && (this.families.get(family) ?? 0) >= this.maxPerFamily) return undefined
    const count = (this.counted.get(text) ?? 0) + 1
    if (count < this.threshold) {
      if (this.counted.size >= maxCounted) this.counted.clear()
      this.counted.set(text, count)
      return undefined
    }
    this.counted.delete(text)
    const name = `duraflow_${this.names.size + 1}`
    this.names.set(text, name)
    if (family !== undefined) this.families.set(family, (this.families.get(family) ?? 0) + 1)
    return name
  }
}

/** The session does not have the statement any more, or its plan's result type changed. */
export const isStale = (error: unknown): boolean => {
  const e = error as { code?: string; message?: string } | undefined
  return e?.code === "26000" || (e?.code === "0A000" && /cached plan/i.test(e.message ?? ""))
}

type Callback = (error: Error | undefined, result: unknown) => void

const NamedQuery = pg.Query as unknown as new(text: string, values: Array<unknown>, callback: Callback) => {
  name: string | undefined
}

/** What a connection names: its pool's registry, and the names its session must not use any more (see `isStale`). */
interface Session {
  readonly registry: Registry
  readonly unusable: Set<string>
}

const sessions = new WeakMap<pg.ClientBase, Session>()

/**
 * The name a statement of `text` with `valueCount` parameters goes by on
 * `client` (`undefined`: send it unnamed), for a query that writes its own
 * messages (`StatementBatch`).
 */
export const nameOn = (client: pg.ClientBase, text: string, valueCount: number): string | undefined => {
  const session = sessions.get(client)
  if (session === undefined || valueCount === 0) return undefined
  const name = session.registry.nameOf(text)
  return name === undefined || session.unusable.has(name) ? undefined : name
}

/**
 * `name` on `client`, for a statement a caller names itself (`StatementBatch.begin`, `commit`),
 * if the client names statements (a `Database` pool's, `preparedStatements` on) and
 * its session may still use the name (`undefined`: send it unnamed).
 */
export const fixedNameOn = (client: pg.ClientBase, name: string): string | undefined => {
  const session = sessions.get(client)
  return session === undefined || session.unusable.has(name) ? undefined : name
}

/** `client`'s session does not have `name` (any more): not used again on it. */
export const unusableOn = (client: pg.ClientBase, name: string): void => {
  sessions.get(client)?.unusable.add(name)
}

/**
 * Sends `client`'s parameterized statements (`query(text, values, callback)`, the form
 * `@effect/sql-pg` and runtime-core use) by name, as `registry` says.
 */
export const install = (client: pg.Client | pg.PoolClient, registry: Registry): void => {
  const session: Session = { registry, unusable: new Set() }
  sessions.set(client, session)
  const { unusable } = session
  const query = client.query as (...args: Array<unknown>) => unknown
  ;(client as { query: unknown }).query = function(this: unknown, ...args: Array<unknown>) {
    const [text, values, callback] = args
    if (
      args.length === 3 && typeof text === "string" && Array.isArray(values) && values.length > 0 &&
      typeof callback === "function"
    ) {
      const name = registry.nameOf(text)
      if (name !== undefined && !unusable.has(name)) {
        // a Query made from the text (pg copies every property of a config object, `{ name, text, values }`)
        const named = new NamedQuery(text, values, (error: Error | undefined, result: unknown) => {
          if (error !== undefined && error !== null && isStale(error)) {
            unusable.add(name)
            // the status when the statement started (pg updates it at the next ReadyForQuery):
            // idle, so it was its own transaction, and nothing of it ran
            if (client.getTransactionStatus?.() === "I") return query.call(this, text, values, callback)
          }
          ;(callback as Callback)(error, result)
        })
        named.name = name
        return query.call(this, named)
      }
    }
    return query.apply(this, args)
  }
}
