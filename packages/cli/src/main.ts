/** The `duraflow` command (see `Cli`): `npx -y pnpm@10.34.8 duraflow <command>` in the workspace. */
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit } from "effect"
import { duraflow } from "./Cli.js"

Command.run(duraflow, { name: "duraflow", version: "0.1.0" })(
  // `pnpm duraflow -- doctor` may pass the separator through
  process.argv.filter((arg, i) => i < 2 || arg !== "--")
).pipe(
  Effect.catchTags({
    Usage: ({ problem }) => Effect.zipRight(Console.error(`${problem}\n(duraflow --help lists the commands)`), Effect.sync(() => process.exit(2))),
    Unhealthy: ({ problem }) => Effect.zipRight(Console.error(problem), Effect.sync(() => process.exit(1)))
  }),
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => process.exit(2))),
  Effect.provide(NodeContext.layer),
  Effect.exit,
  Effect.flatMap((exit) =>
    Exit.isFailure(exit)
      ? Effect.zipRight(Console.error(Cause.pretty(exit.cause).split("\n")[0]), Effect.sync(() => process.exit(1)))
      : Effect.void
  ),
  NodeRuntime.runMain
)
