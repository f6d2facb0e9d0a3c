/**
 * Child process of figure 3: one run with `count` live agents.
 * `node --expose-gc --import tsx bench/lib/scaleChild.ts <count> <in-process|remote>`
 *
 * Reports to the parent: `live` (start time, memory before/after), `burst`
 * (in-process mode: every agent calls `echo` once, all at once), `stopped`
 * (time to release every agent).
 */
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import * as Ramure from "ramure/Ramure"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import { Deferred, Effect, Queue } from "effect"
import { now } from "./Figure.js"
import { parentMessages, runChild, toParent } from "./child.js"
import { addEcho, handOver, tempDirectory } from "./harness.js"
import { TEXT } from "./load.js"
import * as RemoteDrivers from "./remoteDrivers.js"

export type Mode = "in-process" | "remote"

export type ToChild = { readonly type: "burst" } | { readonly type: "stop" }
export interface Live {
  readonly type: "live"
  readonly startMs: number
  readonly rssBefore: number
  readonly rssAfter: number
  readonly heapBefore: number
  readonly heapAfter: number
}
export type FromChild =
  | RemoteDrivers.LaunchRequest
  | Live
  | { readonly type: "burst"; readonly ms: number }
  | { readonly type: "stopped"; readonly ms: number }

const memory = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let i = 0; i < 3; i++) gc?.()
  return process.memoryUsage()
}

const count = Number(process.argv[2])
const mode = process.argv[3] as Mode

const program = Effect.gen(function* () {
  // A parent that goes away (failed or interrupted) stops the run like a `stop`.
  const inbox = yield* parentMessages<ToChild>({ type: "stop" })
  const home = yield* tempDirectory("scale")
  const drivers = new Map<string, Deferred.Deferred<ScriptedAgents.Driver>>()
  const ids = Array.from({ length: count }, (_, i) => `w${i}`)
  for (const id of ids) drivers.set(id, yield* Deferred.make<ScriptedAgents.Driver>())
  const options = { home, program: "bench-scale" }
  const layer = mode === "remote"
    ? Ramure.make({ ...options, launcher: RemoteDrivers.layer })
    : Ramure.layerScripted(handOver(drivers), options)

  let stopping = 0
  const main = Process.make("scale", () =>
    Effect.gen(function* () {
      const before = memory()
      const started = now()
      yield* Effect.forEach(ids, (id) => Effect.flatMap(Agent.make(id), addEcho), { concurrency: "unbounded", discard: true })
      const startMs = now() - started
      const after = memory()
      yield* toParent({
        type: "live",
        startMs,
        rssBefore: before.rss,
        rssAfter: after.rss,
        heapBefore: before.heapUsed,
        heapAfter: after.heapUsed
      } satisfies FromChild)
      let message = yield* Queue.take(inbox)
      if (message.type === "burst") {
        const all = yield* Effect.forEach(ids, (id) => Deferred.await(drivers.get(id)!))
        const burstStarted = now()
        yield* Effect.forEach(all, (driver) => driver.call("echo", { text: TEXT }), { concurrency: "unbounded", discard: true })
        yield* toParent({ type: "burst", ms: now() - burstStarted } satisfies FromChild)
        message = yield* Queue.take(inbox)
      }
      stopping = now()
    }))
  yield* main().pipe(Effect.provide(layer))
  yield* toParent({ type: "stopped", ms: now() - stopping } satisfies FromChild)
})

runChild(program)
