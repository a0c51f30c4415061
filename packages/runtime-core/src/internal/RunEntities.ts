/**
 * A run's entity lives while the run has something to do, not a minute after.
 *
 * Why: the cluster engine hosts each run in an entity (its RPC server, mailbox,
 * scope and latches: about 20 KB once idle), and @effect/cluster keeps an idle
 * entity for `entityMaxIdleTime` (1 minute) before its reaper, which looks every
 * 30 s, closes it. So every finished run stayed in memory for one to one and a
 * half minutes: at 200 runs a second, 12,000 to 18,000 entities; after a burst
 * of 1000, a SIGTERM closed them all at once (0.5 s and 35 MB of heap on the
 * benchmark's machine). A finished or suspended run keeps nothing in its entity
 * that the next message for it needs: a signal, a clock or a resume builds the
 * entity again, and the engine replays the run from storage.
 *
 * How: the engine registers its entities (the workflows' and the durable
 * clock's) with `maxIdleTime: 0`, which the @effect/cluster patch reads as
 * "release when idle": when an entity's last request is answered and no
 * keep-alive holds it, the entity manager removes it, as its reaper would.
 * Other entities (an app's own) keep the configured idle time.
 */
import { Sharding } from "@effect/cluster"
import { Effect, Layer } from "effect"

/** Sharding as the engine sees it: its entities are released when idle. */
export const layer: Layer.Layer<Sharding.Sharding, never, Sharding.Sharding> = Layer.effect(
  Sharding.Sharding,
  Effect.map(Sharding.Sharding, (sharding) =>
    Sharding.Sharding.of({
      ...sharding,
      registerEntity: (entity, handlers, options) =>
        sharding.registerEntity(entity, handlers, { ...options, maxIdleTime: options?.maxIdleTime ?? 0 })
    }))
)
