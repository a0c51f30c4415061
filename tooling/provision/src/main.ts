/**
 * `provision`: creates (or brings back into line) the Postgres role one app
 * runs as, with privileges on its own `<prefix>_*` relations only, and prints
 * the app's DATABASE_URL. See `Provisioning` in @duraflow/runtime-core for what
 * the role gets and why.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/app \
 *   APP_DB_PASSWORD=... npx -y pnpm@10.34.8 --filter @duraflow/provision start -- --prefix knowledge
 *
 * DATABASE_URL is the administrator's connection (a superuser) to the app's
 * database. Options (each also read from the environment):
 *   --prefix <p>      APP_PREFIX        the app's table prefix (required)
 *   --role <name>     APP_DB_ROLE       the role to create; defaults to the prefix
 *   --password <pw>   APP_DB_PASSWORD   its password (prefer the variable: arguments show in `ps`)
 *   --show-url                          print the app URL with the password instead of ****
 *
 * Exit codes: 0 done, 1 provisioning failed (nothing changed), 2 usage.
 */
import { Database, Provisioning } from "@duraflow/runtime-core"
import { Cause, Effect, Exit, Option, Redacted } from "effect"
import { parseArgs } from "node:util"

const USAGE = `usage: provision --prefix <prefix> [--role <role>] [--password <password>] [--show-url]
  env: DATABASE_URL (admin connection, required), APP_PREFIX, APP_DB_ROLE, APP_DB_PASSWORD`

const usage = (problem: string): never => {
  console.error(`${problem}\n${USAGE}`)
  process.exit(2)
}

const parse = (argv: ReadonlyArray<string>) => {
  try {
    return parseArgs({
      // `pnpm start -- --prefix x` may pass the separator through
      args: argv[0] === "--" ? argv.slice(1) : [...argv],
      options: {
        prefix: { type: "string" },
        role: { type: "string" },
        password: { type: "string" },
        "show-url": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (e) {
    return usage((e as Error).message)
  }
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === "" ? undefined : value)

const main = async () => {
  const args = parse(process.argv.slice(2))
  if (args.help) {
    console.log(USAGE)
    return 0
  }
  const adminUrl = nonEmpty(process.env.DATABASE_URL) ?? usage("DATABASE_URL (the administrator's connection) is not set")
  const prefix = nonEmpty(args.prefix) ?? nonEmpty(process.env.APP_PREFIX) ?? usage("--prefix (or APP_PREFIX) is required")
  const role = nonEmpty(args.role) ?? nonEmpty(process.env.APP_DB_ROLE)
  const password = args.password ?? process.env.APP_DB_PASSWORD ??
    usage("--password (or APP_DB_PASSWORD) is required")

  const program = Provisioning.provisionApp({ prefix, role, password: Redacted.make(password) }).pipe(
    Effect.provide(Database.layer({ url: Redacted.make(adminUrl), applicationName: "duraflow-provision", maxConnections: 1 }))
  )
  const exit = await Effect.runPromiseExit(program)
  if (Exit.isFailure(exit)) {
    const error = Cause.failureOption(exit.cause)
    const detail = Option.match(error, {
      onNone: () => Cause.pretty(exit.cause),
      onSome: (e) => {
        const cause = (e as { cause?: { message?: string } }).cause
        return e._tag === "SqlError" && cause?.message ? `${e.message}: ${cause.message}` : e.message
      }
    })
    console.error(`provisioning failed: ${detail}`)
    return 1
  }
  const result = exit.value
  const url = Provisioning.appUrl(adminUrl, result.role, password)
  console.log(
    `role ${result.role} for prefix ${result.prefix}: ${result.created ? "created" : "updated"}; ` +
      `owns ${result.ownedRelations} ${result.prefix}_* relation(s), ${result.transferred} taken over`
  )
  console.log(`DATABASE_URL=${args["show-url"] ? url : Provisioning.maskUrl(url)}`)
  return 0
}

main().then((code) => process.exit(code), (e) => {
  console.error(e)
  process.exit(1)
})
