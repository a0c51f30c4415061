/**
 * Write-behind: a transactional step's writes whose answer its body cannot
 * read are held back, and sent with the step's next statement or with its
 * exit row (`BeginWithFirstStatement`, `TransactionalActivity`).
 *
 * A body that only writes (`INSERT`, `UPDATE`, `DELETE` without `RETURNING`,
 * through `@effect/sql`'s `execute`: their rows are none) then needs one round
 * trip, its writes and its exit row in one batch (one implicit transaction),
 * as a body that is one statement (`LoneStatement`) does; before, any body
 * but that one was two (BEGIN with its first statement, then the exit row
 * with COMMIT). A statement whose answer the body reads (a SELECT, a
 * `RETURNING`, `raw`, `values`, a stream, a savepoint) goes with the writes
 * held before it, in one batch, in the order the body sent them.
 *
 * What the body cannot see any more is when a held write fails. So the step
 * keeps its meaning whatever happens: an attempt in which a batch carrying held
 * writes failed, or whose body failed (not interrupted) while writes were held
 * (they are sent first, to learn whether they would have failed), is rolled
 * back and run again at once without write-behind (`replay`), every statement
 * sent as the body sends it, as before write-behind. The body then sees its own
 * statement's error where it sent it (a unique violation it turns into a typed
 * error, say). Nothing of the first attempt is committed; its body ran once
 * more, as after any database error that restarts a transaction.
 */
import { SqlError } from "@effect/sql/SqlError"

/** A write, one statement, that returns no rows: `INSERT`, `UPDATE` or `DELETE` without `RETURNING`. */
const write = /^\s*(?:insert|update|delete)\s/i

/**
 * Whether a statement the body sends through `execute` can be held back:
 * its text a write that returns no rows (read conservatively: no `RETURNING`
 * and no `;` anywhere in it, even in a literal or a comment).
 */
export const isDeferrable = (text: string): boolean =>
  write.test(text) && !text.includes(";") && !/returning/i.test(text)

/**
 * The failure of an attempt to be run again without write-behind (see
 * above); the step's retry catches it at once (`TransactionalActivity`).
 * One value for all: no stack captured per attempt.
 */
export const replay = new SqlError({
  cause: "a batch carrying held writes failed, or the body failed while writes were held",
  message: "Transaction to be run again without write-behind"
})

export const isReplay = (u: unknown): boolean => u === replay
