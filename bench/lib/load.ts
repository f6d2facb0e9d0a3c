/**
 * Tool-call load: `agents` scripted agents in one run, each calling `echo`
 * in a closed loop (next call as soon as the last result arrived).
 */
import * as Agent from "@ramure/core/Agent"
import type * as AgentClient from "@ramure/protocol/AgentClient"
import type * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import { Deferred, Effect } from "effect"
import { now } from "./Figure.js"
import { addEcho, handOver } from "./harness.js"

export const TEXT = "x".repeat(64)

/** Start `count` agents with the `echo` tool and return their drivers (inside a scripted run). */
export const startEchoAgents = (count: number, drivers: Map<string, Deferred.Deferred<ScriptedAgents.Driver>>) =>
  Effect.gen(function* () {
    const ids = Array.from({ length: count }, (_, i) => `w${i}`)
    for (const id of ids) drivers.set(id, yield* Deferred.make<ScriptedAgents.Driver>())
    yield* Effect.forEach(ids, (id) => Effect.flatMap(Agent.make(id), addEcho), { concurrency: "unbounded", discard: true })
    return yield* Effect.forEach(ids, (id) => Deferred.await(drivers.get(id)!))
  })

/** Scripts for `startEchoAgents`: each hands its driver over once it has `echo`. */
export const echoScripts = () => {
  const drivers = new Map<string, Deferred.Deferred<ScriptedAgents.Driver>>()
  return { drivers, scripts: handOver(drivers) }
}

export interface LoadResult {
  readonly calls: number
  readonly seconds: number
}

/** Every client calls `echo` back to back until `durationMs` has passed. */
export const closedLoop = (drivers: ReadonlyArray<Pick<AgentClient.AgentClient, "call">>, durationMs: number) =>
  Effect.gen(function* () {
    let calls = 0
    const started = now()
    const deadline = started + durationMs
    yield* Effect.forEach(
      drivers,
      (driver) =>
        Effect.gen(function* () {
          while (now() < deadline) {
            yield* driver.call("echo", { text: TEXT })
            calls++
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    return { calls, seconds: (now() - started) / 1000 } satisfies LoadResult
  })
