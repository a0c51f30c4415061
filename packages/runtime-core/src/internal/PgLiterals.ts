/**
 * A Postgres statement with its `$n` parameters written into it as literals,
 * so that it can travel in a simple-protocol query together with other
 * statements (one round trip: `BeginWithFirstStatement`).
 *
 * A literal is what pg itself would send as the parameter's text
 * (`pg.utils.prepareValue`), quoted with `pg.escapeLiteral`: untyped, like an
 * unbound parameter, so the server infers its type from the context the same
 * way. The text is read with Postgres's lexical rules (quoted strings,
 * `E''` escapes, quoted identifiers, dollar quoting, nested comments) so that a
 * `$1` inside a string or a comment is left alone.
 *
 * When that cannot be done exactly, the answer is `undefined` and the caller
 * sends the statement with bound parameters as usual: a value pg sends as
 * binary (a `Buffer`), a string with a NUL character (the simple protocol's
 * query text ends at the first NUL), a parameter number without a value, an
 * unterminated quote or comment, a backslash in a standard string (its meaning
 * depends on `standard_conforming_strings`), or more than one statement (the
 * extended protocol refuses those; inlined, they would run).
 */
import pg from "pg"

/** The conversion pg applies to every bound parameter (not in pg's type declarations). */
const prepareValue = (pg as unknown as { readonly utils: { readonly prepareValue: (value: unknown) => unknown } }).utils
  .prepareValue

/** `value` as a SQL literal, as pg would bind it; `undefined` if it would not be bound as text. */
export const literal = (value: unknown): string | undefined => {
  const prepared = prepareValue(value)
  if (prepared === null) return "NULL"
  if (typeof prepared !== "string" || prepared.includes("\0")) return undefined
  return pg.escapeLiteral(prepared)
}

const isIdentifierChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c)
const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9"
const dollarTag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/

/**
 * The index of the quote closing the one at `start` (a doubled quote inside is
 * part of the text), or -1 if there is none. A backslash: an escape ("escape",
 * `E''` strings), an ordinary character ("plain", quoted identifiers), or a
 * refusal ("refuse", standard strings: it is an escape only with
 * `standard_conforming_strings` off, and the session's setting is not worth knowing).
 */
const closingQuote = (sql: string, start: number, backslash: "escape" | "plain" | "refuse"): number => {
  const quote = sql[start]
  let j = start + 1
  while (j < sql.length) {
    if (sql[j] === "\\" && backslash !== "plain") {
      if (backslash === "refuse") return -1
      j += 2
    } else if (sql[j] === quote && sql[j + 1] === quote) j += 2
    else if (sql[j] === quote) return j
    else j++
  }
  return -1
}

/**
 * `sql` (one statement, parameters `$1`..`$n`) with each parameter replaced by
 * its value as a literal; `undefined` when that cannot be done exactly (see above).
 */
export const inline = (sql: string, params: ReadonlyArray<unknown>): string | undefined => {
  const literals: Array<string> = []
  for (const param of params) {
    const l = literal(param)
    if (l === undefined) return undefined
    literals.push(l)
  }
  let out = ""
  let i = 0
  let statement = false
  while (i < sql.length) {
    const c = sql[i]
    const next = sql[i + 1]
    if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i)
      i = end === -1 ? sql.length : end
      continue
    }
    if (c === "/" && next === "*") {
      let depth = 1
      let j = i + 2
      while (j < sql.length && depth > 0) {
        if (sql[j] === "/" && sql[j + 1] === "*") {
          depth++
          j += 2
        } else if (sql[j] === "*" && sql[j + 1] === "/") {
          depth--
          j += 2
        } else j++
      }
      if (depth > 0) return undefined
      out += " "
      i = j
      continue
    }
    if (c === "'" || c === "\"") {
      // E'...' (and e'...'): backslash escapes; other strings and quoted identifiers: only a
      // doubled quote inside
      const escapes = c === "'" && (sql[i - 1] === "E" || sql[i - 1] === "e") && !isIdentifierChar(sql[i - 2])
      const end = closingQuote(sql, i, c === "\"" ? "plain" : escapes ? "escape" : "refuse")
      if (end === -1) return undefined
      out += sql.slice(i, end + 1)
      i = end + 1
      statement = true
      continue
    }
    if (c === "$" && !isIdentifierChar(sql[i - 1])) {
      if (isDigit(next)) {
        let j = i + 1
        while (isDigit(sql[j])) j++
        const n = Number(sql.slice(i + 1, j))
        if (n < 1 || n > literals.length) return undefined
        out += literals[n - 1]
        i = j
        statement = true
        continue
      }
      const tag = dollarTag.exec(sql.slice(i))
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length)
        if (end === -1) return undefined
        out += sql.slice(i, end + tag[0].length)
        i = end + tag[0].length
        statement = true
        continue
      }
    }
    if (c === ";") return undefined
    if (!/\s/.test(c)) statement = true
    out += c
    i++
  }
  return statement ? out : undefined
}
