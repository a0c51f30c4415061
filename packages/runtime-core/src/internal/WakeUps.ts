/**
 * Prompt wake-ups for the durable engine, without polling the database fast.
 *
 * The cluster runner reads new messages from storage every
 * `entityMessagePollInterval` (10 s). Messages it sends to entities on its own
 * shards are delivered at once, but three kinds wait for that poll
 * (docs/ARCHITECTURE.md, section 4): a durable clock (its message is due in the future), a deferred
 * completed from another process (a signal over HTTP, a client-only process),
 * and runs started by a process that does not hold the run's shard. This
 * module wraps the engine so that each of those wakes the runner instead:
 *
 * - every process of the app LISTENs on `<prefix>_wake` (its own connection,
 *   re-established with backoff) and polls storage on each notification;
 * - completing a deferred, resuming, interrupting or starting a run
 *   (`discard`) sends `pg_notify('<prefix>_wake')` and polls locally;
 * - scheduling a clock sets a local timer for its wake-up time that does the same;
 * - completing a deferred also names it in the notification, so that the
 *   process where the run is active preempts it if it awaits that deferred
 *   (`DeferredWake`: a signal from another process wins a race too);
 *   interrupting a run (cancel) names the run, so the process where it is
 *   active interrupts it.
 *
 * Notifications are batched (callers wait for a NOTIFY sent after their write,
 * so nothing is lost when a process exits right after signalling), and the
 * slow poll stays as the safety net for a process that died between commit
 * and notify.
 */
import { Sharding } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { WorkflowEngine } from "@effect/workflow"
import { Deferred, Duration, Effect, Layer, Queue } from "effect"
import pg from "pg"
import * as Database from "../Database.js"
import * as Retry from "../Retry.js"
import { DeferredWake } from "./DeferredWake.js"
import * as ShardLockStorage from "./ShardLockStorage.js"
import * as TablePrefix from "../TablePrefix.js"

export const channel = TablePrefix.wakeChannel

/**
 * A deferred completed by process `from`, as a notification payload; with
 * `cancel`, a run cancelled there (`deferredName` is then empty).
 */
interface Completed {
  readonly from: string
  readonly workflowName: string
  readonly executionId: string
  readonly deferredName: string
  readonly cancel?: boolean | undefined
}

const parseCompleted = (payload: string | undefined): Completed | undefined => {
  if (!payload?.startsWith("{")) return undefined
  try {
    const c = JSON.parse(payload) as Partial<Completed>
    return typeof c.from === "string" && typeof c.workflowName === "string" && typeof c.executionId === "string" &&
        typeof c.deferredName === "string"
      ? c as Completed
      : undefined
  } catch {
    return undefined
  }
}

/** Postgres refuses NOTIFY payloads of 8000 bytes or more. */
const MAX_PAYLOAD = 7900

/**
 * Keeps a LISTEN session open and calls `onWake` for every notification (and
 * after each reconnect); `onRunners` too when a runner joined or left, and
 * `onCompleted` for each named deferred completion.
 */
const listen = (
  url: string,
  name: string,
  onWake: Effect.Effect<void>,
  onRunners: () => void,
  onCompleted: (c: Completed) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const wakes = yield* Queue.sliding<void>(1)
    const completions = yield* Queue.unbounded<Completed>()
    const session = Effect.acquireRelease(
      Effect.async<pg.Client, Error>((resume) => {
        const client = new pg.Client({ connectionString: url, application_name: `${name}-listen` })
        // a pg Client emits 'error' whenever its connection breaks, possibly more than once;
        // an 'error' without a listener would crash the process
        client.on("error", () => undefined)
        client.on("notification", (msg) => {
          if (msg.channel !== name) return
          if (msg.payload === "runners") onRunners()
          Queue.unsafeOffer(wakes, undefined)
          const completed = parseCompleted(msg.payload)
          if (completed) Queue.unsafeOffer(completions, completed)
        })
        client.connect()
          .then(() => client.query(`LISTEN ${pg.escapeIdentifier(name)}`))
          .then(() => resume(Effect.succeed(client)), (e) => {
            client.end().catch(() => undefined)
            resume(Effect.fail(e as Error))
          })
      }),
      (client) => Effect.promise(() => client.end().catch(() => undefined))
    )
    // one session until it breaks, then a new one; anything sent meanwhile is caught by the poll below
    const run = Effect.scoped(Effect.gen(function*() {
      const client = yield* session
      onRunners()
      yield* onWake
      return yield* Effect.async<never, Error>((resume) => {
        const fail = (e: unknown) => resume(Effect.fail(e instanceof Error ? e : new Error(String(e))))
        client.on("error", fail)
        client.on("end", () => fail(new Error("LISTEN connection ended")))
      })
    }))
    yield* run.pipe(
      Effect.tapError((e) => Effect.logDebug(`wake-up listener on ${name}: ${e.message}; reconnecting`)),
      Effect.retry(Retry.listener),
      Effect.forkScoped
    )
    yield* Queue.take(wakes).pipe(Effect.zipRight(onWake), Effect.forever, Effect.forkScoped)
    const scope = yield* Effect.scope
    // each in its own fiber: preempting a run waits for it to unwind
    yield* Queue.take(completions).pipe(
      Effect.flatMap((c) => Effect.forkIn(onCompleted(c), scope)),
      Effect.forever,
      Effect.forkScoped
    )
  })

/** The engine below, wrapped so that its storage writes wake the app's runners. */
export const layer = (
  prefix: TablePrefix.TablePrefix
): Layer.Layer<
  WorkflowEngine.WorkflowEngine,
  never,
  WorkflowEngine.WorkflowEngine | DeferredWake | Sharding.Sharding | PgClient.PgClient
> =>
  Layer.scoped(
    WorkflowEngine.WorkflowEngine,
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine.WorkflowEngine
      const sharding = yield* Sharding.Sharding
      const deferredWake = yield* DeferredWake
      const client = yield* PgClient.PgClient
      const sql = (client as SqlClient.SqlClient).withoutTransforms()
      const name = channel(prefix)
      const scope = yield* Effect.scope

      const membership = yield* Effect.serviceOption(ShardLockStorage.Membership)
      const onRunners = () => {
        if (membership._tag === "Some") Effect.runSync(membership.value.invalidate)
      }
      // this process's own completions were handled by DeferredWake already
      const self = crypto.randomUUID()
      yield* listen(Database.urlOf(client), name, sharding.pollStorage, onRunners, (c) =>
        c.from === self
          ? Effect.void
          : c.cancel === true
          ? deferredWake.cancelled(c.workflowName, c.executionId)
          : deferredWake.completedElsewhere(c.workflowName, c.executionId, c.deferredName))

      // Outgoing notifications. A caller waits until a NOTIFY issued after its own write has
      // been sent (a process about to exit must not lose it); callers arriving while one is in
      // flight share the next one, so a burst of writes costs a couple of NOTIFYs, not one each.
      const outgoing = yield* Queue.unbounded<Deferred.Deferred<void>>()
      yield* Queue.take(outgoing).pipe(
        Effect.flatMap((first) =>
          Effect.flatMap(Queue.takeAll(outgoing), (rest) =>
            sql`SELECT pg_notify(${name}, 'wake')`.pipe(
              Effect.catchAllCause((cause) => Effect.logDebug("wake-up notify failed", cause)),
              Effect.zipRight(Effect.forEach([first, ...rest], (d) => Deferred.succeed(d, undefined)))
            ))
        ),
        Effect.forever,
        Effect.forkScoped
      )
      const notify = Effect.flatMap(Deferred.make<void>(), (d) =>
        Effect.zipRight(Queue.offer(outgoing, d), Deferred.await(d).pipe(Effect.timeout("5 seconds"), Effect.ignore)))
      const wake = Effect.zipRight(sharding.pollStorage, notify)

      // a completed deferred is named in its own notification (sent after the write)
      const notifyCompleted = (c: Omit<Completed, "from">) => {
        const payload = JSON.stringify({ from: self, ...c })
        return Buffer.byteLength(payload) > MAX_PAYLOAD
          ? notify
          : sql`SELECT pg_notify(${name}, ${payload})`.pipe(
            Effect.catchAllCause((cause) => Effect.logDebug("wake-up notify failed", cause)),
            Effect.asVoid
          )
      }

      return WorkflowEngine.WorkflowEngine.of({
        ...engine,
        execute: (workflow, options) =>
          options.discard ? Effect.tap(engine.execute(workflow, options), () => wake) : engine.execute(workflow, options),
        deferredDone: (deferred, options) =>
          Effect.zipLeft(
            engine.deferredDone(deferred, options),
            Effect.zipRight(
              sharding.pollStorage,
              notifyCompleted({
                workflowName: options.workflowName,
                executionId: options.executionId,
                deferredName: options.deferredName
              })
            )
          ),
        resume: (workflow, executionId) => Effect.zipLeft(engine.resume(workflow, executionId), wake),
        // the run may be active in another process: it is named, so that process interrupts it
        interrupt: (workflow, executionId) =>
          Effect.zipLeft(
            engine.interrupt(workflow, executionId),
            Effect.zipRight(
              wake,
              notifyCompleted({ workflowName: workflow.name, executionId, deferredName: "", cancel: true })
            )
          ),
        scheduleClock: (workflow, options) =>
          Effect.zipLeft(
            engine.scheduleClock(workflow, options),
            // due at now + duration: wake the runner then, not at its next poll
            wake.pipe(
              Effect.delay(Duration.sum(options.clock.duration, Duration.millis(5))),
              Effect.forkIn(scope)
            )
          )
      })
    })
  )
