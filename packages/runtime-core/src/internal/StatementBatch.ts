/**
 * Several statements in ONE round trip over the extended protocol: for each,
 * Parse (unless the connection has its name parsed already), Bind, Describe
 * (unless no one reads its rows) and Execute; then one Sync. Postgres runs
 * them in order as one implicit transaction (both commit, or neither does)
 * unless they hold their own `BEGIN`/`COMMIT`; after an error it skips the
 * rest up to the Sync.
 *
 * Why not one simple-protocol query (`a;\nb`)? That takes no parameters, so
 * every value would be written into the text as a literal and the text could
 * never be named: Postgres would parse and plan each statement on every
 * execution. Here each statement keeps its parameters and goes by name once
 * sent often enough (`PreparedStatements`), as a lone statement does. pg 8
 * offers this only as a mode of the whole client (`pipeline`); this is one
 * query of an ordinary client (a pg `Query` whose `submit` writes the
 * messages), so it waits its turn as any other.
 *
 * Its answer is what a multi-statement query answers (one result per
 * statement); `completed` says how many statements finished before an error,
 * so a caller knows which one failed.
 */
import pg from "pg"
import * as PgLiterals from "./PgLiterals.js"
import * as PreparedStatements from "./PreparedStatements.js"

/** One statement of a batch: its text (parameters `$1`..`$n`) and their values. */
export interface Step {
  readonly text: string
  readonly values: ReadonlyArray<unknown>
  /**
   * Whether its rows are read (by default they are). A statement whose rows
   * no one reads (`BEGIN`, an exit row's INSERT) need not be described: one
   * message less each way. Its result then has no rows, whatever it returns.
   */
  readonly rows?: boolean | undefined
  /**
   * The name it goes by on every session that names statements (a constant
   * text known to be one statement: `begin`, `commit`), parsed once per
   * session; otherwise it is named as `PreparedStatements` says.
   */
  readonly name?: string | undefined
}

/** A step without parameters (a text that is one statement), parsed and described each time it is sent. */
export const bare = (text: string): Step => ({ text, values: [] })

/**
 * `BEGIN` and `COMMIT` of a transaction's batches: no parameters, no rows, so
 * named once per session (parsed once) and not described, a Bind and an
 * Execute each. A relayed batch of a transactional step (exit row, COMMIT,
 * BEGIN, first statement) was 30 protocol messages (both ways) with them parsed
 * and described each time; it is 20 (the exit row is not described either: `rows`).
 */
export const begin: Step = { text: "BEGIN", values: [], rows: false, name: "duraflow_begin" }
export const commit: Step = { text: "COMMIT", values: [], rows: false, name: "duraflow_commit" }

/**
 * Whether a statement can be a batch's step: the extended protocol takes one
 * statement per text, and a text without parameters may hold several (it can
 * only if `PgLiterals` reads it as one).
 */
export const isStep = (text: string, values: ReadonlyArray<unknown>): boolean =>
  values.length > 0 || PgLiterals.inline(text, values) !== undefined

/** The parts of pg's `Connection` a batch writes to (not in pg's type declarations). */
interface Wire {
  readonly parsedStatements: Record<string, string>
  readonly stream: { cork?: () => void; uncork?: () => void }
  parse(message: { text: string; name: string; types: Array<unknown> }): void
  bind(message: { portal: string; statement: string; values: Array<unknown> }): void
  describe(message: { type: "P"; name: string }): void
  execute(message: { portal: string; rows: number }): void
  sync(): void
  on(event: "parseComplete", listener: () => void): void
  off(event: "parseComplete", listener: () => void): void
}

type Callback = (error: Error | undefined, results: unknown) => void

// (constructed from the text and the callback: pg copies a config object's every property)
const QueryBase = pg.Query as unknown as new(text: string, callback: Callback) => {
  handleCommandComplete(message: unknown, connection: unknown): void
  handleDataRow(message: unknown): void
  handleError(error: Error, connection: unknown): void
  handleReadyForQuery(connection: unknown): void
}

class Batch extends QueryBase {
  /** Statements finished (CommandComplete) so far. */
  completed = 0
  /** The names this batch uses, with their texts. */
  private readonly named = new Map<string, string>()
  /** Names whose Parse is on its way, in order ("" for an unnamed one): each ParseComplete takes the first. */
  private readonly parsing: Array<string> = []
  private wire: Wire | undefined
  private listening = false
  private readonly onParseComplete = () => {
    const name = this.parsing.shift()
    // as pg notes its own named queries: this session has it now
    if (name !== undefined && name !== "") this.wire!.parsedStatements[name] = this.named.get(name)!
  }

  constructor(
    private readonly client: pg.ClientBase,
    readonly steps: ReadonlyArray<Step>,
    callback: Callback
  ) {
    // its statements' texts: what pg (and a recording client) shows for it
    super(steps.map((step) => step.text).join(";\n"), callback)
  }

  submit(connection: Wire): Error | null {
    // every value mapped before anything is written: one that cannot be fails the batch, unsent
    let bound: Array<Array<unknown>>
    try {
      bound = this.steps.map((step) => step.values.map(PgLiterals.prepareValue))
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error))
    }
    this.wire = connection
    connection.stream.cork?.()
    try {
      for (const [i, step] of this.steps.entries()) {
        const name = (step.name !== undefined
          ? PreparedStatements.fixedNameOn(this.client, step.name)
          : PreparedStatements.nameOn(this.client, step.text, step.values.length)) ?? ""
        if (name === "" || (connection.parsedStatements[name] === undefined && !this.named.has(name))) {
          connection.parse({ text: step.text, name, types: [] })
          this.parsing.push(name)
        }
        if (name !== "") this.named.set(name, step.text)
        connection.bind({ portal: "", statement: name, values: bound[i]! })
        if (step.rows !== false) connection.describe({ type: "P", name: "" })
        connection.execute({ portal: "", rows: 0 })
      }
      connection.sync()
      // (listened to only when a name is parsed: once per name and session)
      if (this.parsing.some((name) => name !== "")) {
        this.listening = true
        connection.on("parseComplete", this.onParseComplete)
      }
    } finally {
      connection.stream.uncork?.()
    }
    return null
  }

  override handleDataRow(message: unknown) {
    // a row of a statement not described (`rows: false`) has no fields to be read by: dropped
    if (this.steps[this.completed]?.rows === false) return
    super.handleDataRow(message)
  }

  override handleCommandComplete(message: unknown, connection: unknown) {
    this.completed++
    super.handleCommandComplete(message, connection)
  }

  override handleError(error: Error, connection: unknown) {
    this.done()
    // a name the session does not have (any more): none of the batch's is used again on this connection
    if (PreparedStatements.isStale(error)) {
      for (const name of this.named.keys()) PreparedStatements.unusableOn(this.client, name)
    }
    super.handleError(error, connection)
  }

  override handleReadyForQuery(connection: unknown) {
    this.done()
    super.handleReadyForQuery(connection)
  }

  private done() {
    if (this.listening) this.wire?.off("parseComplete", this.onParseComplete)
    this.listening = false
  }
}

/**
 * Sends `steps` on `client` as one batch; `callback` gets the error (with the
 * number of statements that had finished before it) or one result per step.
 */
export const send = (
  client: pg.ClientBase,
  steps: ReadonlyArray<Step>,
  callback: (error: Error | undefined, results: ReadonlyArray<pg.QueryResult>, completed: number) => void
): void => {
  const batch: Batch = new Batch(client, steps, (error, results) => {
    if (error) return callback(error, [], batch.completed)
    // one statement answers with its result alone
    callback(undefined, Array.isArray(results) ? results : [results as pg.QueryResult], batch.completed)
  })
  client.query(batch as unknown as pg.QueryConfig)
}
