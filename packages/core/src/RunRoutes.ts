/**
 * The run's routes: which WebSocket paths exist (`/agents/<id>`, `/pool/<id>`,
 * `/control`) and the secret that opens each. Every agent and pool member has
 * its own secret, so an agent's credential opens its own path and nothing
 * else; the control secret never reaches an agent. The server asks the routes
 * before it accepts a connection.
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import type { Connection } from "@ramure/protocol/Connection"

export interface Route {
  /** The credential a client must present for this path. */
  readonly secret: string
  /** Serve an accepted connection until it closes. */
  readonly serve: (connection: Connection) => Effect.Effect<void>
}

export class RunRoutes extends Context.Tag("@ramure/core/RunRoutes")<
  RunRoutes,
  {
    /** Serve `path` until the scope closes. */
    readonly register: (path: string, route: Route) => Effect.Effect<void, never, Scope.Scope>
    readonly lookup: (path: string) => Effect.Effect<Option.Option<Route>>
  }
>() {}

/** A fresh random secret (256 bits, base64url). */
export const makeSecret = (): string => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")

export const layer: Layer.Layer<RunRoutes> = Layer.sync(RunRoutes, () => {
  const routes = new Map<string, Route>()
  return {
    register: (path, route) =>
      Effect.acquireRelease(
        Effect.sync(() => void routes.set(path, route)),
        () => Effect.sync(() => void (routes.get(path) === route && routes.delete(path)))
      ),
    lookup: (path) => Effect.sync(() => Option.fromNullable(routes.get(path)))
  }
})
