/**
 * One log line per event. `LOG_FORMAT`:
 * - `text` (default): logfmt, one line per event
 *   (`timestamp=... level=INFO fiber=#12 message="..." app=knowledge workflow=IngestDocument executionId=...`)
 * - `json`: one JSON object per line, for machines (`Logger.jsonLogger`)
 * - `pretty`: Effect's coloured multi-line logger, for a terminal
 *
 * `LOG_LEVEL` (`all`, `trace`, `debug`, `info`, `warning`, `error`, `fatal`,
 * `none`; default `info`) is the minimum level written. HTTP request lines are
 * at `debug` (`AppServer`). A workflow's lines carry `app`, `workflow` and
 * `executionId` annotations (`WorkflowLayer`).
 */
import { Config, ConfigError, Effect, Either, Layer, Logger, LogLevel } from "effect"
import { InvalidRuntimeConfig } from "./RuntimeError.js"

export type Format = "text" | "json" | "pretty"

export const formatConfig = Config.literal("text", "json", "pretty", "logfmt")("LOG_FORMAT").pipe(
  Config.withDefault("text" as const),
  Config.map((f): Format => f === "logfmt" ? "text" : f)
)

const levels: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None,
  off: LogLevel.None
}

export const levelConfig: Config.Config<LogLevel.LogLevel> = Config.string("LOG_LEVEL").pipe(
  Config.withDefault("info"),
  Config.mapOrFail((s) => {
    const level = levels[s.trim().toLowerCase()]
    return level === undefined
      ? Either.left(ConfigError.InvalidData(["LOG_LEVEL"], `must be one of ${Object.keys(levels).join(", ")}, got ${JSON.stringify(s)}`))
      : Either.right(level)
  })
)

/** The process's logger for `format` (written to stdout). */
export const logger = (format: Format): Layer.Layer<never> =>
  format === "json" ? Logger.json : format === "pretty" ? Logger.pretty : Logger.logFmt

export const layer = (options: { readonly format: Format; readonly level: LogLevel.LogLevel }): Layer.Layer<never> =>
  Layer.merge(logger(options.format), Logger.minimumLogLevel(options.level))

/** `layer` from `LOG_FORMAT` and `LOG_LEVEL`. */
export const layerConfig: Layer.Layer<never, InvalidRuntimeConfig> = Layer.unwrapEffect(
  Effect.map(Config.all({ format: formatConfig, level: levelConfig }), layer).pipe(
    Effect.mapError((error) => new InvalidRuntimeConfig({ key: "LOG_FORMAT/LOG_LEVEL", reason: String(error) }))
  )
)
