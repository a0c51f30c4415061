/**
 * A Postgres statement with its `$n` parameters written into it as literals,
 * so that it can travel in a simple-protocol query together with other
 * statements (one round trip: `BeginWithFirstStatement`).
 *
 * A literal is what pg itself would send as the parameter's text
 * (`pg.utils.prepareValue`), quoted as `pg.escapeLiteral` quotes it (`quote`): untyped, like an
 * unbound parameter, so the server infers its type from the context the same
 * way. The text is read with Postgres's lexical rules (quoted strings,
 * `E''` escapes, quoted identifiers, dollar quoting, nested comments) so that a
 * `$1` inside a string or a comment is left alone.
 *
 * When that cannot be done exactly, the answer is `undefined` and the caller
 * sends the statement with bound parameters as usual: a value pg sends as
 * binary (a `Buffer`), a string with a NUL character (the simple protocol's
 * query text ends at the first NUL), a parameter number without a value, a
 * value without its parameter number (bound, Postgres refuses both), an
 * unterminated quote or comment, a backslash in a standard string (its meaning
 * depends on `standard_conforming_strings`), or more than one statement (the
 * extended protocol refuses those; inlined, they would run).
 */
import pg from "pg"

/** The conversion pg applies to every bound parameter (not in pg's type declarations). */
export const prepareValue = (pg as unknown as { readonly utils: { readonly prepareValue: (value: unknown) => unknown } }).utils
  .prepareValue

/**
 * `text` quoted as a string literal, as `pg.escapeLiteral` quotes it (quotes and
 * backslashes doubled, ` E'...'` when there is a backslash), without building
 * the result one character at a time.
 */
export const quote = (text: string): string =>
  text.includes("\\")
    ? ` E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`
    : `'${text.replaceAll("'", "''")}'`

/** `value` as a SQL literal, as pg would bind it; `undefined` if it would not be bound as text. */
export const literal = (value: unknown): string | undefined => {
  const prepared = prepareValue(value)
  if (prepared === null) return "NULL"
  if (typeof prepared !== "string" || prepared.includes("\0")) return undefined
  return quote(prepared)
}

const BACKSLASH = 92
const DOLLAR = 36
const DOUBLE_QUOTE = 34
const E_LOWER = 101
const E_UPPER = 69
const MINUS = 45
const SEMICOLON = 59
const SINGLE_QUOTE = 39
const SLASH = 47
const STAR = 42

/** A character of an identifier (letters, digits, `_`, `$`, anything beyond ASCII); NaN (before the start) is not. */
const isIdentifierCode = (c: number) =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === DOLLAR || c >= 128
const isDigitCode = (c: number) => c >= 48 && c <= 57
/** Postgres's whitespace: space, tab, newline, carriage return, form feed, vertical tab. */
const isSpaceCode = (c: number) => c === 32 || (c >= 9 && c <= 13)
/** A dollar-quote tag (`$$`, `$tag$`) starting at `lastIndex`. */
const dollarTag = /\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y

/**
 * The index of the quote closing the one at `start` (a doubled quote inside is
 * part of the text), or -1 if there is none. A backslash: an escape ("escape",
 * `E''` strings), an ordinary character ("plain", quoted identifiers), or a
 * refusal ("refuse", standard strings: it is an escape only with
 * `standard_conforming_strings` off, and the session's setting is not worth knowing).
 */
const closingQuote = (sql: string, start: number, backslash: "escape" | "plain" | "refuse"): number => {
  const q = sql.charCodeAt(start)
  let j = start + 1
  while (j < sql.length) {
    const c = sql.charCodeAt(j)
    if (c === BACKSLASH && backslash !== "plain") {
      if (backslash === "refuse") return -1
      j += 2
    } else if (c === q && sql.charCodeAt(j + 1) === q) j += 2
    else if (c === q) return j
    else j++
  }
  return -1
}

/**
 * `sql` (one statement, parameters `$1`..`$n`) with each parameter replaced by
 * its value as a literal; `undefined` when that cannot be done exactly (see above).
 * The text between replacements is copied in slices, not character by character.
 */
export const inline = (sql: string, params: ReadonlyArray<unknown>): string | undefined => {
  const literals: Array<string> = []
  for (const param of params) {
    const l = literal(param)
    if (l === undefined) return undefined
    literals.push(l)
  }
  let out = ""
  // sql[from, i) is read and not yet copied to `out`
  let from = 0
  let i = 0
  let statement = false
  // parameters referenced: each must be, as when Postgres binds them
  const used = new Array<boolean>(literals.length).fill(false)
  let unused = literals.length
  while (i < sql.length) {
    const c = sql.charCodeAt(i)
    const next = sql.charCodeAt(i + 1)
    if (c === MINUS && next === MINUS) {
      out += sql.slice(from, i)
      const end = sql.indexOf("\n", i)
      i = end === -1 ? sql.length : end
      from = i
      continue
    }
    if (c === SLASH && next === STAR) {
      let depth = 1
      let j = i + 2
      while (j < sql.length && depth > 0) {
        const d = sql.charCodeAt(j)
        if (d === SLASH && sql.charCodeAt(j + 1) === STAR) {
          depth++
          j += 2
        } else if (d === STAR && sql.charCodeAt(j + 1) === SLASH) {
          depth--
          j += 2
        } else j++
      }
      if (depth > 0) return undefined
      out += sql.slice(from, i) + " "
      i = j
      from = i
      continue
    }
    if (c === SINGLE_QUOTE || c === DOUBLE_QUOTE) {
      // E'...' (and e'...'): backslash escapes; other strings and quoted identifiers: only a
      // doubled quote inside
      const prefix = sql.charCodeAt(i - 1)
      const escapes = c === SINGLE_QUOTE && (prefix === E_UPPER || prefix === E_LOWER) && !isIdentifierCode(sql.charCodeAt(i - 2))
      const end = closingQuote(sql, i, c === DOUBLE_QUOTE ? "plain" : escapes ? "escape" : "refuse")
      if (end === -1) return undefined
      i = end + 1
      statement = true
      continue
    }
    if (c === DOLLAR && !isIdentifierCode(sql.charCodeAt(i - 1))) {
      if (isDigitCode(next)) {
        let j = i + 1
        while (isDigitCode(sql.charCodeAt(j))) j++
        const n = Number(sql.slice(i + 1, j))
        if (n < 1 || n > literals.length) return undefined
        if (!used[n - 1]) {
          used[n - 1] = true
          unused--
        }
        out += sql.slice(from, i) + literals[n - 1]
        i = j
        from = i
        statement = true
        continue
      }
      dollarTag.lastIndex = i
      const tag = dollarTag.exec(sql)
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length)
        if (end === -1) return undefined
        i = end + tag[0].length
        statement = true
        continue
      }
    }
    if (c === SEMICOLON) return undefined
    if (!isSpaceCode(c)) statement = true
    i++
  }
  return statement && unused === 0 ? out + sql.slice(from) : undefined
}
