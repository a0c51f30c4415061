/**
 * Each durable app process is a runner of @effect/cluster, so any number of
 * replicas of one app share its shards: the library's own socket transport
 * (`SocketRunner` with `NodeClusterSocket`'s client protocol, msgpack), the
 * library's ping-based `RunnerHealth`, and runtime-core's storage
 * (`SqlMessageStorage` on the app's prefixed tables, `ShardLockStorage` for
 * prefix-scoped shard and presence locks).
 *
 * Where a replica listens, and the address it registers for the others:
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | `RUNNER_HOST` | the address other replicas reach this one at | `127.0.0.1` |
 * | `RUNNER_PORT` | the runner's TCP port; `0` = any free port | `0` |
 * | `RUNNER_LISTEN_HOST` | the interface to listen on (e.g. `0.0.0.0`) | `RUNNER_HOST` |
 *
 * With the defaults, replicas on one machine that differ only in `PORT` just
 * work: each listens on its own free port and registers it. Replicas on
 * several machines set `RUNNER_HOST` to an address the others can reach.
 * The socket is bound BEFORE the runner registers, so the registered port is
 * the real one.
 */
import {
  MessageStorage,
  RunnerAddress,
  RunnerHealth,
  Runners,
  RunnerStorage,
  Sharding,
  ShardingConfig,
  SocketRunner,
  SqlMessageStorage
} from "@effect/cluster"
import { SocketServer } from "@effect/platform/SocketServer"
import { NodeClusterSocket, NodeSocketServer } from "@effect/platform-node"
import { RpcSerialization } from "@effect/rpc"
import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import type { Statement } from "@effect/sql/Statement"
import { Config, Effect, Layer, Option, Scope } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { InvalidRuntimeConfig } from "../RuntimeError.js"
import * as GroupCommit from "./GroupCommit.js"
import * as RunAdmission from "./RunAdmission.js"
import * as RunOutcomes from "./RunOutcomes.js"
import * as SchemaLock from "./SchemaLock.js"
import * as ShardLockStorage from "./ShardLockStorage.js"
import * as TablePrefix from "../TablePrefix.js"

export interface Address {
  /** What other runners connect to. */
  readonly host: string
  /** 0: any free port (the bound one is registered). */
  readonly port: number
  /** The interface to bind; defaults to `host`. */
  readonly listenHost?: string | undefined
}

export const defaultAddress: Address = { host: "127.0.0.1", port: 0 }

// a host name (RFC 1123 labels) or an IPv4/IPv6 literal; no scheme, no port, no spaces
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$/

/** Validates an address; errors name the variable and the rule. */
export const validate = (address: Address): Effect.Effect<Address, InvalidRuntimeConfig> => {
  const bad = (key: string, reason: string) => Effect.fail(new InvalidRuntimeConfig({ key, reason }))
  const hostRule = "must be a host name or an IP address, without scheme or port"
  if (!HOST.test(address.host) || address.host.length > 253) {
    return bad("RUNNER_HOST", `${hostRule}, got ${JSON.stringify(address.host)}`)
  }
  if (address.listenHost !== undefined && (!HOST.test(address.listenHost) || address.listenHost.length > 253)) {
    return bad("RUNNER_LISTEN_HOST", `${hostRule}, got ${JSON.stringify(address.listenHost)}`)
  }
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > 65535) {
    return bad("RUNNER_PORT", `must be an integer between 0 and 65535 (0 = any free port), got ${address.port}`)
  }
  return Effect.succeed(address)
}

const raw = (key: string) => Config.option(Config.string(key))

/** `RUNNER_HOST`, `RUNNER_PORT`, `RUNNER_LISTEN_HOST`, validated. */
export const config: Effect.Effect<Address, InvalidRuntimeConfig | ConfigError> = Effect.gen(function*() {
  const [h, p, l] = yield* Effect.all([raw("RUNNER_HOST"), raw("RUNNER_PORT"), raw("RUNNER_LISTEN_HOST")])
  const nonEmpty = (o: Option.Option<string>) => Option.filter(Option.map(o, (s) => s.trim()), (s) => s !== "")
  const portText = Option.getOrUndefined(nonEmpty(p))
  const port = portText === undefined ? defaultAddress.port : /^\d+$/.test(portText) ? Number(portText) : NaN
  if (Number.isNaN(port)) {
    return yield* new InvalidRuntimeConfig({
      key: "RUNNER_PORT",
      reason: `must be an integer between 0 and 65535 (0 = any free port), got ${JSON.stringify(portText)}`
    })
  }
  return yield* validate({
    host: Option.getOrElse(nonEmpty(h), () => defaultAddress.host),
    port,
    listenHost: Option.getOrUndefined(nonEmpty(l))
  })
})

export type ShardingOptions = Partial<ShardingConfig.ShardingConfig["Type"]>

/**
 * Our defaults on top of @effect/cluster's:
 *
 * - assignments are re-computed every second, which costs nothing while a
 *   runner is alone (`ShardLockStorage` caches the ring and hears of
 *   newcomers over NOTIFY) and finds a dead replica within a second when
 *   there are several;
 * - a shard being handed over (a replica joining or leaving, a SIGTERM)
 *   waits at most 5 s (library: 15 s) for the runs on it to stop: a run in
 *   the middle of an activity does not see its entity's end until that
 *   timeout, so with 15 s every rebalancing stalled such runs for 15 s. A
 *   plain activity cut short runs again on the new owner (at-least-once,
 *   as after a crash); a transactional one commits once either way.
 */
export const defaults: ShardingOptions = {
  refreshAssignmentsInterval: "1 second",
  entityTerminationTimeout: "5 seconds"
}

/**
 * The library's `SqlMessageStorage` on the app's cluster tables, with the writes
 * of concurrent runs grouped (`GroupCommit`, living as long as the layer): runs
 * started together share an INSERT of their start messages, and runs ending
 * together one statement for their final replies (each with its
 * `replyCompanion`, the runs ledger's final write). A lone write goes at once,
 * alone, as before; one inside a SQL transaction (a start through the runs API)
 * commits with that transaction.
 */
export const groupedMessageStorage = (
  prefix: TablePrefix.TablePrefix,
  replyCompanion?: ((requestId: string) => Statement<unknown> | undefined) | undefined
): Layer.Layer<MessageStorage.MessageStorage, never, SqlClient.SqlClient | ShardingConfig.ShardingConfig> =>
  Layer.unwrapScoped(Effect.map(Effect.scope, (scope) =>
    SqlMessageStorage.layerWith({
      prefix: TablePrefix.clusterPrefix(prefix),
      replyCompanion,
      group: (spec) =>
        Scope.extend(
          Effect.map(GroupCommit.make({ ...spec, maxBatch: 200, maxBytes: GroupCommit.MAX_BYTES }), (group) => group.submit),
          scope
        )
    })))

/**
 * Sharding, the runner transport and the prefixed storage for `prefix`.
 * Storage construction (which creates the cluster tables) runs under the
 * prefix's schema lock, so replicas starting together do not race.
 */
export const layer = (
  prefix: TablePrefix.TablePrefix,
  options?: {
    readonly address?: Address | undefined
    readonly sharding?: ShardingOptions | undefined
    readonly locks?: ShardLockStorage.Options | undefined
    /** Bounds the runs executing here (`RunAdmission`); the engine must be wrapped with the same gate. */
    readonly admission?: RunAdmission.Gate | undefined
    /** Commits each run's final ledger status with its reply (`RunOutcomes`); the runtime takes and files them. */
    readonly outcomes?: RunOutcomes.Outcomes | undefined
  }
): Layer.Layer<
  Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage | ShardLockStorage.Membership,
  InvalidRuntimeConfig,
  SqlClient.SqlClient | PgClient.PgClient
> => {
  const address = options?.address ?? defaultAddress
  const listenHost = address.listenHost ?? address.host

  const server = NodeSocketServer.layer({ host: listenHost, port: address.port }).pipe(
    Layer.mapError((e) =>
      new InvalidRuntimeConfig({
        key: "RUNNER_PORT",
        reason: `cannot listen on ${listenHost}:${address.port}: ${String((e.cause as Error)?.message ?? e.cause)}`
      })
    )
  )

  // the registered address carries the port the socket really got
  const shardingConfig = Layer.unwrapEffect(Effect.map(SocketServer, (s) =>
    ShardingConfig.layer({
      ...defaults,
      ...options?.sharding,
      runnerAddress: Option.some(
        RunnerAddress.make(address.host, s.address._tag === "TcpAddress" ? s.address.port : address.port)
      ),
      runnerListenAddress: Option.none()
    })))

  const gate = options?.admission
  const outcomes = options?.outcomes
  const messageStorage = groupedMessageStorage(prefix, outcomes?.companion)
  const admitted = gate === undefined ? messageStorage : RunAdmission.storageLayer(gate).pipe(Layer.provide(messageStorage))
  const storage = Layer.merge(
    // the outcomes see only the start messages the runner gets (not those admission holds)
    outcomes === undefined ? admitted : RunOutcomes.storageLayer(outcomes).pipe(Layer.provide(admitted)),
    ShardLockStorage.layer(prefix, options?.locks)
  )
  const lockedStorage: Layer.Layer<
    MessageStorage.MessageStorage | RunnerStorage.RunnerStorage | ShardLockStorage.Membership,
    never,
    SqlClient.SqlClient | PgClient.PgClient | ShardingConfig.ShardingConfig
  > = Layer.scopedContext(SchemaLock.withSessionLock(prefix, Layer.build(storage)).pipe(Effect.orDie))

  // a client only (`sharding.runnerAddress: Option.none()`, e.g. a tool that starts or
  // signals runs): no socket server, no registration, no shards; it reaches the runners
  if (options?.sharding?.runnerAddress !== undefined && Option.isNone(options.sharding.runnerAddress)) {
    return SocketRunner.layerClientOnly.pipe(
      Layer.provideMerge(lockedStorage),
      Layer.provide(NodeClusterSocket.layerClientProtocol),
      Layer.provide(RpcSerialization.layerMsgPack),
      Layer.provide(ShardingConfig.layer({ ...defaults, ...options.sharding }))
    )
  }

  // the library's health check pings runners over the same transport (its own client pool)
  const health = RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc))

  return SocketRunner.layer.pipe(
    Layer.provide(health),
    Layer.provideMerge(lockedStorage),
    Layer.provide(NodeClusterSocket.layerClientProtocol),
    Layer.provide(RpcSerialization.layerMsgPack),
    Layer.provide(shardingConfig),
    Layer.provide(server)
  )
}