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
 * database. Options (each also read from the environment; `--help` lists them):
 *   --prefix <p>      APP_PREFIX        the app's table prefix (required)
 *   --role <name>     APP_DB_ROLE       the role to create; defaults to the prefix
 *   --password <pw>   APP_DB_PASSWORD   its password (prefer the variable: arguments show in `ps`)
 *   --show-url                          print the app URL with the password instead of ****
 *   --observer                          create the read-only observer role instead (no --prefix;
 *                                       --role defaults to duraflow_observer): what `duraflow apps`
 *                                       and `doctor` need to look at every app
 *
 * Exit codes: 0 done, 1 provisioning failed (nothing changed), 2 usage.
 */
import { Database, Provisioning } from "@duraflow/runtime-core"
import { Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Data, Effect, Option, Redacted } from "effect"

class Usage extends Data.TaggedError("Usage")<{ readonly problem: string }> {}
class Failed extends Data.TaggedError("Failed")<{ readonly problem: string }> {}

const fromEnv = <A>(options: Options.Options<A>, variable: Config.Config<A>, description: string) =>
  options.pipe(Options.withFallbackConfig(variable), Options.optional, Options.withDescription(description))

const nonEmpty = (value: Option.Option<string>) => Option.filter(value, (s) => s !== "")

/** The failure's message; a SQL error with the server's own message. */
const detail = (error: { readonly _tag: string; readonly message: string; readonly cause?: unknown }) => {
  const cause = (error.cause as { message?: string } | undefined)?.message
  return error._tag === "SqlError" && cause ? `${error.message}: ${cause}` : error.message
}

const provision = Command.make("provision", {
  prefix: fromEnv(Options.text("prefix"), Config.string("APP_PREFIX"), "the app's table prefix (required)"),
  role: fromEnv(Options.text("role"), Config.string("APP_DB_ROLE"), "the role to create; defaults to the prefix"),
  password: fromEnv(Options.redacted("password"), Config.redacted("APP_DB_PASSWORD"), "its password (required)"),
  showUrl: Options.boolean("show-url").pipe(Options.withDescription("print the app URL with the password")),
  observer: Options.boolean("observer").pipe(
    Options.withDescription("create the read-only observer role (for duraflow apps/doctor) instead of an app role")
  )
}, (args) =>
  Effect.gen(function*() {
    const adminUrl = nonEmpty(yield* Config.option(Config.string("DATABASE_URL")))
    if (Option.isNone(adminUrl)) {
      return yield* new Usage({ problem: "DATABASE_URL (the administrator's connection) is not set" })
    }
    const admin = Database.layer({ url: Redacted.make(adminUrl.value), applicationName: "duraflow-provision", maxConnections: 1 })
    if (args.observer) {
      if (Option.isNone(args.password)) return yield* new Usage({ problem: "--password (or APP_DB_PASSWORD) is required" })
      const observer = yield* Provisioning.provisionObserver({
        role: Option.getOrUndefined(nonEmpty(args.role)),
        password: args.password.value
      }).pipe(
        Effect.provide(admin),
        Effect.mapError((error) => new Failed({ problem: `provisioning failed: ${detail(error)}` }))
      )
      const url = Provisioning.appUrl(adminUrl.value, observer.role, Redacted.value(args.password.value))
      console.log(`observer role ${observer.role}: ${observer.created ? "created" : "updated"}; reads every app, writes nothing`)
      console.log(`DATABASE_URL=${args.showUrl ? url : Provisioning.maskUrl(url)}`)
      return
    }
    const prefix = nonEmpty(args.prefix)
    if (Option.isNone(prefix)) return yield* new Usage({ problem: "--prefix (or APP_PREFIX) is required" })
    if (Option.isNone(args.password)) return yield* new Usage({ problem: "--password (or APP_DB_PASSWORD) is required" })
    const password = args.password.value
    const result = yield* Provisioning.provisionApp({
      prefix: prefix.value,
      role: Option.getOrUndefined(nonEmpty(args.role)),
      password
    }).pipe(
      Effect.provide(admin),
      Effect.mapError((error) => new Failed({ problem: `provisioning failed: ${detail(error)}` }))
    )
    const url = Provisioning.appUrl(adminUrl.value, result.role, Redacted.value(password))
    console.log(
      `role ${result.role} for prefix ${result.prefix}: ${result.created ? "created" : "updated"}; ` +
        `owns ${result.ownedRelations} ${result.prefix}_* relation(s), ${result.transferred} taken over`
    )
    console.log(`DATABASE_URL=${args.showUrl ? url : Provisioning.maskUrl(url)}`)
  })).pipe(Command.withDescription("Creates the database role an app runs as: privileges on its own <prefix>_* tables"))

Command.run(provision, { name: "provision", version: "0.1.0" })(
  // `pnpm start -- --prefix x` may pass the separator through
  process.argv.filter((arg, i) => i < 2 || arg !== "--")
).pipe(
  Effect.catchTags({
    Usage: ({ problem }) =>
      Effect.sync(() => {
        console.error(`${problem}\n(provision --help lists the options)`)
        process.exitCode = 2
      }),
    Failed: ({ problem }) =>
      Effect.sync(() => {
        console.error(problem)
        process.exitCode = 1
      })
  }),
  // @effect/cli has printed the problem
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => void (process.exitCode = 2))),
  Effect.catchAllCause((cause) =>
    Effect.sync(() => {
      console.error(Cause.pretty(cause))
      process.exitCode = 1
    })
  ),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disablePrettyLogger: true, teardown: (_exit, onExit) => onExit(Number(process.exitCode ?? 0)) })
)
