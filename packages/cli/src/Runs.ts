/**
 * `duraflow runs ...`: a run's life through the app that owns it. Actions go
 * to the app's HTTP API (the app keeps the authority: its token, its ledger),
 * with the client `HttpApiClient` derives from runtime-core's runs group.
 *
 *   duraflow runs list    --app URL [--workflow W] [--status S] [--limit N] [--cursor C]
 *   duraflow runs get     --app URL WORKFLOW EXECUTION_ID
 *   duraflow runs steps   --app URL WORKFLOW EXECUTION_ID
 *   duraflow runs cancel | resume | retry --app URL WORKFLOW EXECUTION_ID
 *   duraflow runs signal  --app URL WORKFLOW EXECUTION_ID SIGNAL [--value JSON]
 *
 * `--app` defaults to DURAFLOW_APP_URL; the operator token (for actions and
 * signals) comes from DURAFLOW_OPERATOR_TOKEN. `--json` prints the API's answer.
 * An app that does not answer within DURAFLOW_HTTP_TIMEOUT (default 30 s) is an
 * error, not a hang.
 */
import { RunsApi } from "@duraflow/runtime-core"
import { Args, Command, Options } from "@effect/cli"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Config, Console, Duration, Effect, Option, Redacted } from "effect"
import { table, Usage } from "./Table.js"

/** The routes every runtime-core app serves, whatever its workflows. */
class OperatorApi extends HttpApi.make("duraflow").add(RunsApi.HealthGroup).add(RunsApi.RunsGroup) {}

const app = Options.text("app").pipe(
  Options.withFallbackConfig(Config.string("DURAFLOW_APP_URL")),
  Options.withDescription("the app's base URL (default: DURAFLOW_APP_URL)")
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON instead of a table"))
const workflow = Args.text({ name: "WORKFLOW" })
const executionId = Args.text({ name: "EXECUTION_ID" })

const token = Effect.map(Config.option(Config.redacted("DURAFLOW_OPERATOR_TOKEN")), Option.filter((t) => Redacted.value(t) !== ""))

/** The typed client of the app at `baseUrl`, sending the operator token when there is one. */
const clientOf = (baseUrl: string) =>
  Effect.gen(function*() {
    const bearer = yield* token
    return yield* HttpApiClient.make(OperatorApi, {
      baseUrl,
      transformClient: (client) =>
        Option.match(bearer, {
          onNone: () => client,
          onSome: (t) => HttpClient.mapRequest(client, HttpClientRequest.bearerToken(Redacted.value(t)))
        })
    })
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** An answer the API declares (4xx, 503) becomes the command's failure, with its message. */
const failed = (e: { readonly _tag: string; readonly message?: string | undefined }) =>
  new Usage({ problem: `${e._tag}${e.message ? `: ${e.message}` : ""}` })

/** The app versions that ran it: the one that started it, then the others that resumed it. */
const versions = (r: RunsApi.Run) => [r.startedBy ?? "?", ...(r.resumedBy ?? [])].join(" -> ")
const runRow = (r: RunsApi.Run) => [
  r.workflow,
  r.executionId,
  r.status,
  r.createdAt,
  r.updatedAt,
  r.retryOf ?? r.retriedBy ?? "",
  versions(r)
]
const runHeader = ["workflow", "execution id", "status", "started", "updated", "retry link", "versions"]

const print = (asJson: boolean, value: unknown, text: () => string) => Console.log(asJson ? JSON.stringify(value, null, 2) : text())

const list = Command.make("list", {
  app,
  json,
  workflow: Options.text("workflow").pipe(Options.optional),
  status: Options.choice("status", ["running", "suspended", "succeeded", "failed", "cancelled"]).pipe(Options.optional),
  limit: Options.integer("limit").pipe(Options.withDefault(50)),
  cursor: Options.text("cursor").pipe(Options.optional)
}, (args) =>
  Effect.gen(function*() {
    const client = yield* clientOf(args.app)
    const runs = yield* client.runs.list({
      urlParams: {
        workflow: Option.getOrUndefined(args.workflow),
        status: Option.getOrUndefined(args.status),
        limit: args.limit,
        cursor: Option.getOrUndefined(args.cursor)
      }
    }).pipe(Effect.mapError(failed))
    yield* print(args.json, runs, () =>
      runs.length === 0 ? "no runs" : `${table(runHeader, runs.map(runRow))}${
        runs.length === args.limit ? `\nnext page: --cursor ${runs[runs.length - 1]!.cursor}` : ""
      }`)
  })).pipe(Command.withDescription("The app's runs, newest first"))

const get = Command.make("get", { app, json, workflow, executionId }, (args) =>
  Effect.gen(function*() {
    const client = yield* clientOf(args.app)
    const run = yield* client.runs.get({ path: { workflow: args.workflow, executionId: args.executionId } }).pipe(
      Effect.mapError(failed)
    )
    yield* print(args.json, run, () =>
      `${table(runHeader, [runRow(run)])}\n${run.result !== undefined ? `result: ${JSON.stringify(run.result)}` : ""}${
        run.error !== undefined ? `error: ${JSON.stringify(run.error)}` : ""
      }`.trimEnd())
  })).pipe(Command.withDescription("One run: status, result or error, retry links"))

const steps = Command.make("steps", { app, json, workflow, executionId }, (args) =>
  Effect.gen(function*() {
    const client = yield* clientOf(args.app)
    const found = yield* client.runs.steps({ path: { workflow: args.workflow, executionId: args.executionId } }).pipe(
      Effect.mapError(failed)
    )
    yield* print(args.json, found, () =>
      table(["step", "name", "when", "outcome"], found.steps.flatMap((s): Array<Array<string>> => {
        switch (s._tag) {
          case "Activity":
            return s.attempts.map((a) => [
              `activity #${a.attempt}`,
              s.name,
              `${a.startedAt} .. ${a.endedAt ?? ""}`,
              a.outcome === "succeeded" ? `ok ${JSON.stringify(a.result ?? null)}` : a.outcome === "failed"
                ? `failed ${JSON.stringify(a.error ?? null)}`
                : a.outcome
            ])
          case "Sleep":
            return [["sleep", s.name, `until ${s.wakeUpAt}`, s.woken ? "woken" : "waiting"]]
          case "Signal":
            return [["signal", s.name, s.receivedAt ?? "", s.received ? "received" : "awaited"]]
          case "ChildRun":
            return [["child run", `${s.workflow}/${s.executionId}`, s.startedAt ?? "", ""]]
        }
      })))
  })).pipe(Command.withDescription("A run's steps: activities with attempts, sleeps, signals, child runs"))

const action = (name: "cancel" | "resume" | "retry", description: string) =>
  Command.make(name, { app, json, workflow, executionId }, (args) =>
    Effect.gen(function*() {
      const client = yield* clientOf(args.app)
      const path = { workflow: args.workflow, executionId: args.executionId }
      const answer: unknown = yield* name === "cancel"
        ? Effect.mapError(client.runs.cancel({ path }), failed)
        : name === "resume"
        ? Effect.mapError(client.runs.resume({ path }), failed)
        : Effect.mapError(client.runs.retry({ path }), failed)
      yield* print(args.json, answer, () =>
        name === "retry"
          ? `retried as ${(answer as typeof RunsApi.Retried.Type).executionId}`
          : name === "resume"
          ? "resumed"
          : `cancelled ${args.workflow}/${args.executionId}`)
    })).pipe(Command.withDescription(description))

const signal = Command.make("signal", {
  app,
  json,
  workflow,
  executionId,
  name: Args.text({ name: "SIGNAL" }),
  value: Options.text("value").pipe(Options.withDefault("null"), Options.withDescription("the signal's value, JSON"))
}, (args) =>
  Effect.gen(function*() {
    const body = yield* Effect.try({
      try: () => JSON.parse(args.value) as unknown,
      catch: () => new Usage({ problem: `--value is not JSON: ${args.value}` })
    })
    const bearer = yield* token
    const url = `${args.app.replace(/\/$/, "")}/runs/${encodeURIComponent(args.workflow)}/${
      encodeURIComponent(args.executionId)
    }/signals/${encodeURIComponent(args.name)}`
    const response = yield* HttpClientRequest.post(url).pipe(
      HttpClientRequest.bodyUnsafeJson(body),
      (req) => Option.match(bearer, { onNone: () => req, onSome: (t) => HttpClientRequest.bearerToken(req, Redacted.value(t)) }),
      HttpClient.execute,
      Effect.flatMap((r) => Effect.map(r.json, (answer) => ({ status: r.status, answer }))),
      Effect.provide(FetchHttpClient.layer),
      Effect.mapError((e) => new Usage({ problem: `could not reach ${args.app}: ${e.message}` }))
    )
    if (response.status >= 400) {
      const answer = response.answer as { _tag?: string; message?: string }
      return yield* new Usage({ problem: `${response.status} ${answer._tag ?? ""}${answer.message ? `: ${answer.message}` : ""}` })
    }
    yield* print(args.json, response.answer, () => `signal ${args.name} delivered`)
  })).pipe(Command.withDescription("Completes a signal (DurableDeferred) the run's workflow declares"))

/** Every call to an app answers or fails within this (an app may answer 503 itself sooner). */
const deadline = Config.duration("DURAFLOW_HTTP_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30)))

const withDeadline = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>) =>
  Command.transformHandler(command, (effect, config) =>
    Effect.flatMap(Effect.orDie(deadline), (duration) =>
      Effect.timeoutFail(effect, {
        duration,
        onTimeout: () =>
          new Usage({
            problem: `no answer from ${(config as { app?: string }).app ?? "the app"} within ${Duration.format(duration)}`
          })
      })))

export const runs = Command.make("runs").pipe(
  Command.withDescription("A run's life through the app that owns it (actions need DURAFLOW_OPERATOR_TOKEN when the app sets one)"),
  Command.withSubcommands([
    withDeadline(list),
    withDeadline(get),
    withDeadline(steps),
    withDeadline(action("cancel", "Cancels a running or suspended run")),
    withDeadline(action("resume", "Resumes a suspended run now")),
    withDeadline(action("retry", "Starts a failed or cancelled run again, as a new execution linked to it")),
    withDeadline(signal)
  ])
)
