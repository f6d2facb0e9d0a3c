/**
 * A local pi loads the extension as users get it: the built file (the tests
 * build it first when a source changed), compiled from a V8 code cache that
 * the first pi writes in the run's home — not the TypeScript source.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as PiExtension from "../../pi/src/internal/piExtension.js"
import { eventually, piRun, tempHome } from "./helpers.js"

describe("the extension a local pi loads", () => {
  it.live("is the built file, compiled from the code cache the first pi wrote in the run's home (replacing older builds' caches)", () =>
    Effect.gen(function* () {
      const server = yield* ScriptedModel.make({ fallback: () => [] })
      const home = yield* tempHome
      const directory = PiExtension.packageDirectory()!
      const built = path.join(directory, "dist", PiExtension.bundleName)
      const { digest } = JSON.parse(fs.readFileSync(path.join(directory, "dist", "ramure-pi-extension.json"), "utf8"))
      const cache = path.join(home, "cache", `pi-extension-${digest}-${process.version}-${process.arch}.v8`)
      // A cache of an older build, which the new one replaces.
      const stale = path.join(home, "cache", `pi-extension-0123456789abcdef-${process.version}-${process.arch}.v8`)
      fs.mkdirSync(path.dirname(stale), { mode: 0o700 })
      fs.writeFileSync(stale, "old", { mode: 0o600 })
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          yield* Agent.make("worker")
          // Only the built file's loader writes it, once the pi has synced: wait for it while the agent lives.
          yield* eventually(Effect.sync(() => fs.existsSync(cache)), (written) => written, "30 seconds")
        }))
      // The sources are not newer than the built file: that is what PiAgents starts pi with.
      expect(PiExtension.resolve(directory)).toEqual({ kind: "bundle", path: built })
      yield* main().pipe(Effect.provide(piRun(server, "tmux", home)))
      expect(fs.statSync(cache).mode & 0o777).toBe(0o600)
      expect(fs.existsSync(stale)).toBe(false)
      expect(fs.statSync(path.dirname(cache)).mode & 0o777).toBe(0o700)
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
})
