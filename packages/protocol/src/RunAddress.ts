/**
 * Where an agent finds its run: a small file in the agent's private pi
 * directory, `{ "url": "ws://127.0.0.1:<port>", "token": "<secret>" }`
 * (0600), where the token is the agent's own secret (it opens the agent's
 * path only). The launcher writes it; the agent's extension reads it before
 * every connection attempt. Rewriting it (`write`: a temporary file beside
 * it, then a rename) points a waiting agent at a run that came back at
 * another address, with the agent's new secret, within its unreachable
 * timeout.
 */
import { Effect, Queue, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Address } from "./AgentClient.js"

/** The file's name in the agent's pi directory (`PI_CODING_AGENT_DIR`). */
export const fileName = "ramure-run.json"

/** The file's content. */
export const render = (address: Address): string => `${JSON.stringify({ url: address.url, token: address.token })}\n`

/** The address in `text`, if it holds one. */
export const parse = (text: string): Address | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value !== "object" || value === null) return undefined
    const { token, url } = value as Record<string, unknown>
    return typeof url === "string" && url.length > 0 && typeof token === "string" && token.length > 0 ? { url, token } : undefined
  } catch {
    return undefined
  }
}

/** The address in `file`; `undefined` when it is missing or holds none (the caller keeps what it knows). */
export const read = (file: string): Effect.Effect<Address | undefined> =>
  Effect.sync(() => {
    try {
      return parse(fs.readFileSync(file, "utf8"))
    } catch {
      return undefined
    }
  })

/** Point the agent whose address file is `file` at `address` (atomically, 0600). */
export const write = (file: string, address: Address): Effect.Effect<void, Error> =>
  Effect.try({
    try: () => {
      const temporary = `${file}.${process.pid}.tmp`
      fs.writeFileSync(temporary, render(address), { mode: 0o600 })
      fs.renameSync(temporary, file)
    },
    catch: (error) => (error instanceof Error ? error : new Error(String(error)))
  })

/**
 * Rewrites of `file`, while the scope is open: the effect returned waits for
 * the next one (or one since the last wait). A waiting agent reconnects as
 * soon as its run has come back, instead of at its next retry. No watch can
 * be set up (the directory is gone): it never completes.
 */
export const changes = (file: string): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const changed = yield* Queue.sliding<void>(1)
    const name = path.basename(file)
    const watcher = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          const watcher = fs.watch(path.dirname(file), { persistent: false }, (_event, changedName) => {
            if (changedName === null || changedName === name) Queue.unsafeOffer(changed, undefined)
          })
          watcher.on("error", () => watcher.close())
          return watcher
        } catch {
          return undefined
        }
      }),
      (watcher) => Effect.sync(() => watcher?.close())
    )
    return watcher === undefined ? Effect.never : Queue.take(changed)
  })
