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
  /**
   * Serve an accepted connection until it closes. `hello` is a frame that
   * came with the upgrade request (an agent's `Hello`, see `Protocol.HELLO_HEADER`).
   */
  readonly serve: (connection: Connection, hello?: string) => Effect.Effect<void>
}

export class RunRoutes extends Context.Tag("@ramure/core/RunRoutes")<
  RunRoutes,
  {
    /** Serve `path` until the scope closes. */
    readonly register: (path: string, route: Route) => Effect.Effect<void, never, Scope.Scope>
    readonly lookup: (path: string) => Effect.Effect<Option.Option<Route>>
  }
>() {}

/**
 * Every secret starts with this: one that turns up where it must not (an
 * agent that prints its environment, a tool's arguments) can be recognized
 * and kept out of the run's log files, which every agent could read.
 */
export const secretPrefix = "ramure_secret_"

/** A fresh random secret: the prefix and 256 bits, base64url. */
export const makeSecret = (): string =>
  `${secretPrefix}${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`

/** The prefix and whatever part of a secret follows it (a cut-off secret is still partly secret). */
const secretPattern = new RegExp(`${secretPrefix}[A-Za-z0-9_-]*`, "g")

/** `text` with every secret in it (whole or cut off) replaced by `ramure_secret_[redacted]`. */
export const redactSecrets = (text: string): string =>
  text.includes(secretPrefix) ? text.replace(secretPattern, `${secretPrefix}[redacted]`) : text

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
