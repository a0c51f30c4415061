/**
 * The workflows an app exposes by name, so that generic code (the runs HTTP
 * API, operators' tools) can start, decode and report them without knowing
 * each workflow's types. `WorkflowLayer.make` registers into it when present.
 */
import type { Workflow } from "@effect/workflow"
import { Context, Effect, Layer, Option } from "effect"

export interface Entry {
  readonly name: string
  readonly workflow: Workflow.Any
}

export class WorkflowRegistry extends Context.Tag("@duraflow/runtime-core/WorkflowRegistry")<WorkflowRegistry, {
  readonly register: (workflow: Workflow.Any) => Effect.Effect<void>
  readonly get: (name: string) => Option.Option<Entry>
  readonly names: () => ReadonlyArray<string>
}>() {}

export const make = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  return WorkflowRegistry.of({
    register: (workflow) => Effect.sync(() => void entries.set(workflow.name, { name: workflow.name, workflow })),
    get: (name) => Option.fromNullable(entries.get(name)),
    names: () => Array.from(entries.keys()).sort()
  })
})

export const layer: Layer.Layer<WorkflowRegistry> = Layer.effect(WorkflowRegistry, make)
