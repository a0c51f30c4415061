/**
 * The workflows an app exposes by name, so that generic code (the runs HTTP
 * API, operators' tools) can start, decode and report them without knowing
 * each workflow's types. `WorkflowLayer.make` registers into it when present.
 */
import type { DurableDeferred, Workflow } from "@effect/workflow"
import { Context, Effect, Layer, Option } from "effect"

export interface Entry {
  readonly name: string
  readonly workflow: Workflow.Any
  /** Deferreds that may be completed from outside (the signal route), by name. */
  readonly signals: ReadonlyMap<string, DurableDeferred.Any>
}

export class WorkflowRegistry extends Context.Tag("@duraflow/runtime-core/WorkflowRegistry")<WorkflowRegistry, {
  readonly register: (workflow: Workflow.Any, signals?: ReadonlyArray<DurableDeferred.Any>) => Effect.Effect<void>
  readonly get: (name: string) => Option.Option<Entry>
  readonly names: () => ReadonlyArray<string>
}>() {}

export const make = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  return WorkflowRegistry.of({
    register: (workflow, signals = []) =>
      Effect.sync(() =>
        void entries.set(workflow.name, {
          name: workflow.name,
          workflow,
          signals: new Map(signals.map((d) => [d.name, d]))
        })
      ),
    get: (name) => Option.fromNullable(entries.get(name)),
    names: () => Array.from(entries.keys()).sort()
  })
})

export const layer: Layer.Layer<WorkflowRegistry> = Layer.effect(WorkflowRegistry, make)
