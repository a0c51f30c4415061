/**
 * What the cluster engine's own storage looks like, for the modules that read
 * it (a run's steps, the upgrade check, admission, run outcomes): the entity
 * type of a workflow's runs and of durable clocks, the payload key of a child's
 * parent pointer, the deferreds the engine uses itself, and tolerant JSON
 * parsing of stored text.
 */

/** The entity type of durable clocks (`ClusterWorkflowEngine`'s ClockEntity). */
export const CLOCK_ENTITY = "Workflow/-/DurableClock"

/** The entity type of a workflow's runs (`ClusterWorkflowEngine`: one entity per run). */
export const workflowEntityType = (workflowName: string): string => `Workflow/${workflowName}`

/** One run as a key: its entity type and entity id (the execution id). */
export const runKey = (entityType: string, entityId: string): string => `${entityType}\u0000${entityId}`

/** The key under which a child run's payload names its parent. */
export const PARENT_KEY = "~@effect/workflow/parent"

/** Deferreds the engine uses itself: a durable clock's, and the interruption of a cancelled run. */
export const internalDeferred = (name: string): boolean =>
  name.startsWith("DurableClock/") || name === "Workflow/InterruptSignal"

/** Stored JSON text as a value; undefined when absent or not JSON. */
export const parse = (text: string | null): any => {
  if (text === null) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
