/**
 * Admission control for the durable engine: at most `limit` runs execute at
 * once in one process; the others wait in storage, started and durable.
 *
 * Why: each executing run holds its entity (an RPC server, a mailbox, a
 * scope), its fibers and its continuations, about 150 KB. Unbounded, a burst
 * of 1000 starts builds all of them at once: the heap grows with the burst,
 * and so does the garbage collector's work. Bounded, memory stays flat and
 * the CPU goes to runs (docs/ARCHITECTURE.md, section 5; the figures are in
 * the README's Benchmark).
 *
 * How: the runner's storage poll reads the unprocessed messages of the shards
 * it holds (`MessageStorage.unprocessedMessages`). `storage` wraps that read:
 * a `run` request of a registered workflow that is not executing here is
 * handed to the runner only while fewer than `limit` runs execute; the others
 * are held here, oldest first. When an execution ends (completes, fails or
 * suspends, see `engine`), the runner polls again, and the next held run is
 * handed over. A run started in this process goes to its entity as soon as
 * its start message is saved, without waiting for a read, when a slot is
 * free and no run is held (`deliverLocal`, a patch of @effect/cluster;
 * `admitLocal`). Nothing is lost if the process dies: a held request is still
 * unprocessed in storage, and the next owner of its shard reads it (shards
 * are reset on acquisition); a held request whose shard moved away is
 * dropped here for the same reason.
 *
 * Never held:
 * - messages to a run that executes here (an interrupt, a reply): they add no run;
 * - child runs: their parent waits for them while it holds its own slot, so
 *   holding them could deadlock a process full of parents;
 * - other entities' messages (the engine's durable clock, user entities).
 *
 * A run started by another replica whose shard is here, and held, answers its
 * caller through storage instead of the runner socket (the library's own
 * fallback), so that caller sees the result a little later, not an error.
 *
 * A read can return a start that is already done. Between the end of a
 * run's execution and the commit of its final reply (a grouped write: under
 * a burst, most of a second), its start is still unprocessed in storage, and
 * a read whose snapshot came before that commit returns it. The runner skips
 * such a start when it gets it in the same pass (it knows the request as in
 * progress or answered, until its next read). Held, it would have been
 * handed over after a later read, when the runner has forgotten it, and the
 * run would have executed a second time and failed to save its reply again
 * (the reply's key exists), on every try of that write. So a start is no
 * new run while its run is `finishing` (its execution ended, its reply not
 * saved yet), and a read drops the starts whose reply was saved while it was
 * in flight.
 *
 * A read can also return a start this process has just saved before the
 * runner offers it to `admitLocal` (its snapshot came after the commit), or
 * one it never offers (sent with `discard`). It is a new run all the same,
 * with nothing recorded, so the read marks it fresh as the offer would have
 * (`saving`, `noteSaved`); before, its first execution read its record of
 * steps, and a test that counts those reads was flaky.
 */
import { MessageStorage, Sharding } from "@effect/cluster"
import * as Message from "@effect/cluster/Message"
import type * as ShardId from "@effect/cluster/ShardId"
import { WorkflowEngine } from "@effect/workflow"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Metric, Option } from "effect"
import { Metrics } from "../Telemetry.js"
import { PARENT_KEY, runKey, workflowEntityType } from "./EngineStorage.js"


/**
 * An admitted run whose execution has not started after this long is not
 * counted any more: the runner dropped its message (its shard moved, or the
 * entity was closing), and the slot must not stay taken.
 */
const admittedTimeoutMillis = 10_000

/**
 * Drops the entries of `marks` (key -> when) older than `admittedTimeoutMillis`,
 * oldest first (a Map keeps the order keys were added): it stops at the first
 * younger one, so a burst of marks costs no scan per mark.
 */
const dropExpired = (marks: Map<string, number>, now: number): void => {
  for (const [key, at] of marks) {
    if (now - at <= admittedTimeoutMillis) return
    marks.delete(key)
  }
}


export class Gate {
  /** Runs executing here: key -> number of executions (normally one). */
  private readonly executing = new Map<string, number>()
  /** Runs handed to the runner whose execution has not started yet: key -> when. */
  private readonly admitted = new Map<string, number>()
  /** Requests waiting for a slot, oldest first: request id -> message. */
  private readonly held = new Map<string, Message.IncomingRequest<any>>()
  /** Runs whose start message this process saved just now, not executed yet: key -> when. */
  private readonly fresh = new Map<string, number>()
  /**
   * Start messages this process is saving, until it offers them to `admitLocal`: request id ->
   * when. A read may return one first (its snapshot came after the commit, before the offer);
   * it is then a new run all the same, saved just now (a duplicate start has another id).
   */
  private readonly saving = new Map<string, number>()
  /** Entity types of the registered workflows (only their runs are held). */
  private readonly workflows = new Set<string>()
  /**
   * Runs whose execution ended here and whose final reply is not saved yet: key -> when it
   * ended. A read in that window may return their start; it starts no run. (A run whose reply
   * never comes, its entity stopped first, is forgotten after `admittedTimeoutMillis`.)
   */
  private readonly finishing = new Map<string, number>()
  /** Storage reads in flight, and the requests answered meanwhile (those reads may return them). */
  private reads = 0
  private readonly answeredWhileReading = new Set<string>()
  /** Polls storage again (set by `engine`, which has the runner). */
  wake: Effect.Effect<void> = Effect.void
  /** Whether the runner holds a shard (set by `layer`, which has the runner; until then: no). */
  holds: (shardId: ShardId.ShardId) => boolean = () => false

  constructor(
    /** At most this many runs execute at once; `Infinity`: no bound. */
    readonly limit: number
  ) {}

  /** Runs executing, or handed over and about to. */
  get inFlight(): number {
    return this.executing.size + this.admitted.size
  }

  /** Runs waiting for a slot. */
  get waiting(): number {
    return this.held.size
  }

  registered(workflowName: string): void {
    this.workflows.add(workflowEntityType(workflowName))
  }

  /** The run a message starts: a `run` request of a registered workflow that does not execute here. */
  private startsRun(message: Message.Incoming<any>): { readonly key: string; readonly child: boolean } | undefined {
    if (message._tag !== "IncomingRequest") return undefined
    const envelope = message.envelope
    if (envelope.tag !== "run" || !this.workflows.has(envelope.address.entityType)) return undefined
    const key = runKey(envelope.address.entityType, envelope.address.entityId)
    if (this.executing.has(key) || this.admitted.has(key) || this.finishing.has(key)) return undefined
    const payload = envelope.payload as Record<string, unknown> | null
    return { key, child: typeof payload === "object" && payload !== null && payload[PARENT_KEY] !== undefined }
  }

  private isHoldable(message: Message.Incoming<any>): message is Message.IncomingRequest<any> {
    const run = this.startsRun(message)
    return run !== undefined && !run.child
  }

  /**
   * A run this process just started (its start message saved): whether the
   * runner may hand it to its entity at once (`MessageStorage.deliverLocal`,
   * a patch of @effect/cluster) instead of waiting for its storage read to
   * return it. Yes for a new run while a slot is free and no run waits for
   * one (a child run takes no slot, as in `admit`); otherwise the storage
   * read delivers it, or holds it in turn.
   */
  admitLocal(message: Message.IncomingRequest<any>): boolean {
    const run = this.startsRun(message)
    if (run === undefined) return false
    const now = Date.now()
    // offered only for a start saved just now (not a duplicate): its first execution, here
    // at once or after a wait in storage, has nothing recorded (`firstExecution`); a mark
    // whose execution does not come soon (its shard moved, a long wait) is dropped
    dropExpired(this.fresh, now)
    this.fresh.set(run.key, now)
    if (!run.child && this.limit !== Infinity) {
      if (this.held.size > 0 || this.inFlight >= this.limit) return false
      this.admitted.set(run.key, now)
    }
    return true
  }

  /**
   * A start message is about to be saved (`saveRequest`). Only a start of a run on a shard held
   * here: another runner may execute one it holds, and record steps, before its shard moves here.
   */
  startSaving(envelope: Message.Outgoing<any>["envelope"]): void {
    if (envelope._tag !== "Request" || envelope.tag !== "run" || !this.holds(envelope.address.shardId)) return
    const now = Date.now()
    dropExpired(this.saving, now)
    this.saving.set(String(envelope.requestId), now)
  }

  /** Forgets a start being saved: not saved (a duplicate, or an error), or offered to `admitLocal`. */
  forgetSaving(requestId: unknown): void {
    this.saving.delete(String(requestId))
  }

  /** Marks the starts among `messages` that this process saved just now (see `saving`) as fresh. */
  noteSaved(messages: ReadonlyArray<Message.Incoming<any>>): void {
    if (this.saving.size === 0) return
    for (const message of messages) {
      if (message._tag !== "IncomingRequest" || !this.saving.delete(String(message.envelope.requestId))) continue
      const address = message.envelope.address
      this.fresh.set(runKey(address.entityType, address.entityId), Date.now())
    }
  }

  /**
   * Whether this execution is the first of a run whose start this process saw
   * saved just now (`admitLocal`, `noteSaved`; asked once per execution: the
   * answer is taken).
   */
  firstExecution(workflowName: string, executionId: string): boolean {
    return this.fresh.delete(runKey(workflowEntityType(workflowName), executionId))
  }

  /**
   * `message`, handed to the runner, telling the gate when its final reply is saved: the run's
   * start is then processed in storage, and a read that returns it after all is stale.
   */
  answering(message: Message.IncomingRequest<any>): Message.IncomingRequest<any> {
    const address = message.envelope.address
    const key = runKey(address.entityType, address.entityId)
    const requestId = String(message.envelope.requestId)
    return new Message.IncomingRequest({
      envelope: message.envelope,
      lastSentReply: message.lastSentReply,
      respond: (reply) =>
        // (a reply that fails to save is tried again by the runner; the run stays finishing)
        reply.reply._tag !== "WithExit" ? message.respond(reply) : Effect.tap(message.respond(reply), () =>
          Effect.sync(() => {
            this.finishing.delete(key)
            if (this.reads > 0) this.answeredWhileReading.add(requestId)
          }))
    })
  }

  /** A storage read begins (`admit` takes what it returns). */
  readStarted(): void {
    this.reads++
  }

  /** A storage read ended, whatever its outcome. */
  readEnded(): void {
    this.reads = Math.max(0, this.reads - 1)
    if (this.reads === 0) this.answeredWhileReading.clear()
  }

  /** The replies to `requestId` were cleared (a run resumed): its start is unprocessed again. */
  cleared(requestId: string): void {
    this.answeredWhileReading.delete(requestId)
  }

  /** What the runner gets of one storage read of `shards` (begun with `readStarted`); the rest is held. */
  admit(messages: ReadonlyArray<Message.Incoming<any>>, shards: ReadonlySet<string>): Array<Message.Incoming<any>> {
    const now = Date.now()
    dropExpired(this.admitted, now)
    dropExpired(this.finishing, now)
    this.noteSaved(messages)
    const out: Array<Message.Incoming<any>> = []
    for (const message of messages) {
      // answered since this read's snapshot: processed, whatever the read says
      if (message._tag === "IncomingRequest" && this.answeredWhileReading.has(String(message.envelope.requestId))) continue
      // a request read again (held for longer than the storage's read lease) keeps its place
      if (this.isHoldable(message)) this.held.set(String(message.envelope.requestId), message)
      else out.push(message)
    }
    for (const [id, message] of this.held) {
      if (this.inFlight >= this.limit) break
      this.held.delete(id)
      const address = message.envelope.address
      const key = runKey(address.entityType, address.entityId)
      if (!shards.has(shardKey(address.shardId))) {
        // its next owner runs it, and may record steps before it comes back here
        this.fresh.delete(key)
        continue
      }
      if (!this.executing.has(key)) this.admitted.set(key, now)
      out.push(this.answering(message))
    }
    return out
  }

  /** `effect` is one execution of a run: counted while it runs; its end admits the next. */
  track<A, E, R>(workflowName: string, executionId: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    const key = runKey(workflowEntityType(workflowName), executionId)
    // counted and released as a resource: an interruption cannot come between the two
    return Effect.acquireUseRelease(
      Effect.sync(() => {
        this.admitted.delete(key)
        this.executing.set(key, (this.executing.get(key) ?? 0) + 1)
      }),
      () => effect,
      () =>
        Effect.suspend(() => {
          const left = (this.executing.get(key) ?? 1) - 1
          if (left > 0) this.executing.set(key, left)
          else {
            this.executing.delete(key)
            // (moved to the end: the map stays in the order of the times, for `dropExpired`)
            this.finishing.delete(key)
            this.finishing.set(key, Date.now())
          }
          return this.held.size > 0 && this.inFlight < this.limit ? this.wake : Effect.void
        })
    )
  }
}

const shardKey = (shardId: ShardId.ShardId): string => `${shardId.group}:${shardId.id}`

/** A gate for at most `limit` executing runs (`undefined`, `0` or `Infinity`: no bound). */
export const make = (limit: number | undefined): Gate =>
  new Gate(limit === undefined || limit === 0 ? Infinity : limit)

/** The runner's storage, its reads of new messages passed through `gate`. */
export const storage = (
  gate: Gate,
  underlying: MessageStorage.MessageStorage["Type"]
): MessageStorage.MessageStorage["Type"] => {
  // Start messages saved inside a SQL transaction (by their envelope: the runner offers a start
  // with the envelope it saved). Such a start is not delivered at once: until the transaction
  // commits, the run's own statements could not see it, and the transaction may roll back; the
  // storage read delivers it once it is committed, as before.
  const inTransaction = new WeakSet<object>()
  const offered: Partial<MessageStorage.MessageStorage["Type"]> = {
    saveRequest: (message) =>
      Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) => {
        // (one saved in a transaction is never fresh: a start through the runs API writes its
        // ledger row in that transaction, and an operator may cancel it before it executes)
        if (Option.isSome(transaction)) {
          inTransaction.add(message.envelope)
          return underlying.saveRequest(message)
        }
        gate.startSaving(message.envelope)
        return Effect.onExit(underlying.saveRequest(message), (exit) =>
          Effect.sync(() => {
            if (exit._tag === "Failure" || exit.value._tag !== "Success") gate.forgetSaving(message.envelope.requestId)
          }))
      }),
    deliverLocal: (message) => {
      if (inTransaction.has(message.envelope)) return undefined
      gate.forgetSaving(message.envelope.requestId)
      if (!gate.admitLocal(message)) return undefined
      return gate.limit === Infinity ? message : gate.answering(message)
    }
  }
  if (gate.limit === Infinity) {
    return {
      ...underlying,
      ...offered,
      unprocessedMessages: (shardIds) =>
        Effect.tap(underlying.unprocessedMessages(shardIds), (messages) => gate.noteSaved(messages))
    }
  }
  return {
    ...underlying,
    ...offered,
    unprocessedMessages: (shardIds) => {
      const list = Array.from(shardIds)
      const shards = new Set(list.map(shardKey))
      return Effect.acquireUseRelease(
        Effect.sync(() => gate.readStarted()),
        () => Effect.map(underlying.unprocessedMessages(list), (messages) => gate.admit(messages, shards)),
        () => Effect.sync(() => gate.readEnded())
      ).pipe(Effect.tap(() => Metric.set(Metrics.runsWaiting, gate.waiting)))
    },
    clearReplies: (requestId) => Effect.tap(underlying.clearReplies(requestId), () => gate.cleared(String(requestId)))
  }
}

/** The runner's `MessageStorage` (from context) wrapped by `storage`. */
export const storageLayer = (
  gate: Gate
): Layer.Layer<MessageStorage.MessageStorage, never, MessageStorage.MessageStorage> =>
  Layer.effect(MessageStorage.MessageStorage, Effect.map(MessageStorage.MessageStorage, (underlying) => storage(gate, underlying)))

/** The engine, each execution of a registered workflow counted by `gate`; `wake` polls storage. */
export const engine = (
  gate: Gate,
  underlying: WorkflowEngine.WorkflowEngine["Type"],
  wake: Effect.Effect<void>
): WorkflowEngine.WorkflowEngine["Type"] => {
  gate.wake = wake
  return {
    ...underlying,
    register: (workflow, execute) =>
      Effect.suspend(() => {
        gate.registered(workflow.name)
        // without a bound nothing is counted (the gate still knows the workflows, for `admitLocal`)
        return underlying.register(
          workflow,
          gate.limit === Infinity ? execute : (payload, executionId) =>
            gate.track(workflow.name, executionId, execute(payload, executionId))
        )
      })
  }
}

/** Wraps the engine in context (`engine`); needs the runner, to poll storage when a slot frees. */
export const layer = (
  gate: Gate
): Layer.Layer<WorkflowEngine.WorkflowEngine, never, WorkflowEngine.WorkflowEngine | Sharding.Sharding> =>
  Layer.effect(
    WorkflowEngine.WorkflowEngine,
    Effect.gen(function*() {
      const sharding = yield* Sharding.Sharding
      gate.holds = (shardId) => sharding.hasShardId(shardId)
      return engine(gate, yield* WorkflowEngine.WorkflowEngine, sharding.pollStorage)
    })
  )
