/**
 * Workflow layers with their dependencies provided BEFORE registration.
 *
 * `Workflow.toLayer(handler)` leaves the activities' services as requirements
 * of the returned layer; providing them later is easy to get wrong, and a
 * workflow resumed by the engine then fails at run time with a missing
 * service. `WorkflowLayer.make` takes the dependencies up front and types the
 * handler against exactly what they provide, so a handler (or one of its
 * activities) that needs a service the dependencies do not provide is a
 * compile-time error at the call site.
 */
import type { Workflow, WorkflowEngine } from "@effect/workflow"
import type { Effect, Schema, Scope } from "effect"
import { Layer } from "effect"

/** What the engine itself provides to a running workflow. */
export type EngineProvided<Name extends string> =
  | WorkflowEngine.WorkflowEngine
  | WorkflowEngine.WorkflowInstance
  | Workflow.Execution<Name>
  | Scope.Scope

export const make = <
  Name extends string,
  Payload extends Workflow.AnyStructSchema,
  Success extends Schema.Schema.Any,
  Error extends Schema.Schema.All,
  ROut,
  E,
  RIn
>(
  workflow: Workflow.Workflow<Name, Payload, Success, Error>,
  options: {
    /** Everything the handler and its activities need. */
    readonly dependencies: Layer.Layer<ROut, E, RIn>
    /** May only require what `dependencies` provides (checked by the compiler). */
    readonly execute: (
      payload: Payload["Type"],
      executionId: string
    ) => Effect.Effect<Success["Type"], Error["Type"], NoInfer<ROut> | EngineProvided<Name>>
  }
): Layer.Layer<
  never,
  E,
  WorkflowEngine.WorkflowEngine | RIn | Payload["Context"] | Success["Context"] | Error["Context"]
> =>
  Layer.provide(
    workflow.toLayer(options.execute) as Layer.Layer<
      never,
      never,
      WorkflowEngine.WorkflowEngine | ROut | Payload["Context"] | Success["Context"] | Error["Context"]
    >,
    options.dependencies
  ) as Layer.Layer<never, E, WorkflowEngine.WorkflowEngine | RIn | Payload["Context"] | Success["Context"] | Error["Context"]>
