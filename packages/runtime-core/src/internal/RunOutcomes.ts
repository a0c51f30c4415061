/**
 * A run's final ledger write commits with its reply.
 *
 * When a run's body ends (succeeded or failed), two writes follow: the runs
 * ledger's final status (`RunStore.finished`) and the engine's reply to the
 * run's start message (which marks that message processed). Written apart,
 * they are two commits on every run's path, one after the other, and a crash
 * between them leaves a run the ledger calls running although its reply
 * exists. Here the ledger's statement is handed to the message storage, which
 * runs it inside the reply's own statement (`SqlMessageStorage`'s
 * `replyCompanion`, a patch of @effect/cluster): one commit, and the two
 * never disagree.
 *
 * How the two meet: the reply knows only its request id. The runner reads
 * every start message of a run from storage, or gets it from this process at
 * once (`deliverLocal`, see `RunAdmission`), so `storage` notes, for each
 * `run` request handed to the runner either way, which run it starts; the execution
 * `take`s that request id when it begins (`WorkflowLayer`) and, when its body
 * ends with an outcome, `file`s the ledger's statement under it; `companion`
 * gives the statement to the reply's write, on each try of it; the saved
 * final reply clears both the statement and any note of the run's start
 * still there (one made after its execution took the first: 100 runs of
 * every burst of 1000 left one for good before, about 170 bytes each). A run whose start this process did not read (there is no
 * such path in the cluster today, but nothing relies on it) writes its status
 * itself, as before.
 */
import { MessageStorage } from "@effect/cluster"
import * as Message from "@effect/cluster/Message"
import type { Statement } from "@effect/sql/Statement"
import { Context, Effect, Layer } from "effect"
import { runKey, workflowEntityType } from "./EngineStorage.js"


export class Outcomes {
  /** Run -> the request id of its start message, as read by this runner. */
  private readonly requests = new Map<string, string>()
  /** Request id -> the ledger statement to commit with that request's reply. */
  private readonly pending = new Map<string, Statement<unknown>>()

  /**
   * Notes the runs that `messages` start (the runner is about to get them); the
   * reply to each such start clears its filed statement once saved.
   */
  observe(messages: ReadonlyArray<Message.Incoming<any>>): Array<Message.Incoming<any>> {
    return messages.map((message) => {
      if (message._tag !== "IncomingRequest" || message.envelope.tag !== "run") return message
      const address = message.envelope.address
      if (!address.entityType.startsWith(workflowEntityType(""))) return message
      const requestId = String(message.envelope.requestId)
      const key = runKey(address.entityType, address.entityId)
      this.requests.set(key, requestId)
      return new Message.IncomingRequest({
        envelope: message.envelope,
        lastSentReply: message.lastSentReply,
        respond: (reply) =>
          Effect.tap(message.respond(reply), () =>
            Effect.sync(() => {
              if (reply.reply._tag !== "WithExit") return
              this.pending.delete(requestId)
              // the run is over: a note of its start made after its execution took the first one
              // (the storage read can return the start of a run still executing, as it must for a
              // run that resumes) would otherwise stay for the life of the process
              if (this.requests.get(key) === requestId) this.requests.delete(key)
            }))
      })
    })
  }

  /**
   * The request id of the start message of the run about to execute, as this
   * runner read it (taken: each read is one execution); undefined when this
   * runner did not read it (the run's ledger writes are its own, then).
   */
  take(workflowName: string, executionId: string): string | undefined {
    const key = runKey(workflowEntityType(workflowName), executionId)
    const requestId = this.requests.get(key)
    if (requestId !== undefined) this.requests.delete(key)
    return requestId
  }

  /** Files `statement` to commit with the reply to `requestId`. */
  file(requestId: string, statement: Statement<unknown>): void {
    this.pending.set(requestId, statement)
  }

  /** The statement to commit with the reply to `requestId` (asked on each try of the reply's write). */
  readonly companion = (requestId: string): Statement<unknown> | undefined => this.pending.get(requestId)

  /** Runs noted and statements filed (for tests). */
  get size(): { readonly requests: number; readonly pending: number } {
    return { requests: this.requests.size, pending: this.pending.size }
  }
}

/** The durable runtime's `Outcomes`, for the runs ledger (absent on the memory engine). */
export class RunOutcomes extends Context.Tag("@duraflow/runtime-core/RunOutcomes")<RunOutcomes, Outcomes>() {}

export const make = (): Outcomes => new Outcomes()

/** The runner's storage: the start messages it reads are noted (`observe`). */
export const storage = (
  outcomes: Outcomes,
  underlying: MessageStorage.MessageStorage["Type"]
): MessageStorage.MessageStorage["Type"] => ({
  ...underlying,
  unprocessedMessages: (shardIds) =>
    Effect.map(underlying.unprocessedMessages(shardIds), (messages) => outcomes.observe(messages)),
  // a start the runner hands to its entity at once is noted as one it read
  deliverLocal: underlying.deliverLocal === undefined ? undefined : (message) => {
    const delivered = underlying.deliverLocal!(message)
    return delivered === undefined ? undefined : outcomes.observe([delivered])[0] as typeof delivered
  }
})

/** The runner's `MessageStorage` (from context) wrapped by `storage`. */
export const storageLayer = (
  outcomes: Outcomes
): Layer.Layer<MessageStorage.MessageStorage, never, MessageStorage.MessageStorage> =>
  Layer.effect(MessageStorage.MessageStorage, Effect.map(MessageStorage.MessageStorage, (underlying) => storage(outcomes, underlying)))
