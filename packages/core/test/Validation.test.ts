import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Agent from "../src/Agent.js"
import { idFor } from "../src/AgentSessions.js"
import { InvalidArgument } from "../src/Errors.js"
import * as Machine from "../src/Machine.js"
import * as Process from "../src/Process.js"
import { RunInfo } from "../src/RunInfo.js"
import { RunLog } from "../src/RunLog.js"
import { readJsonl, scripted, tempHome } from "./helpers.js"

describe("Bad options are refused, not ignored", () => {
  it.live("Agent.make with both a machine and a host is an InvalidArgument, and starts nothing", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const machine = yield* Machine.make({ name: "shared" })
        return yield* Effect.flip(Agent.make("worker", { machine, host: "gpu" }))
      }))
    return main().pipe(
      Effect.map((error) => {
        expect(error).toBeInstanceOf(InvalidArgument)
        expect(error.message).toBe("agent worker: give either a machine or a host, not both (the machine shared decides its host)")
      }),
      Effect.provide(scripted({}))
    )
  })

  it.live("connect with a direction other than both, a->b and b->a is an InvalidArgument, and connects nothing", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")])
        const error = yield* Effect.flip(Agent.connect(a, b, { direction: "a<-b" as Agent.Direction }))
        return { error, connections: (yield* (yield* RunLog).status).connections }
      }))
    return main().pipe(
      Effect.map(({ connections, error }) => {
        expect(error).toBeInstanceOf(InvalidArgument)
        expect(error.message).toBe(`unknown direction "a<-b" (use "both", "a->b" or "b->a")`)
        expect(connections).toEqual([])
      }),
      Effect.provide(scripted({}))
    )
  })
})

describe("Agent names", () => {
  it("map to ids that are safe file, tmux and URL names", () => {
    expect([".", "..", "_runtime", "a/b", "../../etc", "x".repeat(60), "ok-name_1.2"].map(idFor)).toEqual([
      "agent",
      "agent",
      "runtime",
      "a-b",
      "etc",
      "x".repeat(48),
      "ok-name_1.2"
    ])
  })

  it.live("such names start agents whose logs stay apart from the run's own log", () => {
    const home = tempHome()
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const agents = yield* Effect.forEach([".", "..", "_runtime", "a/b"], (name) => Agent.make(name))
        return { ids: agents.map((agent) => agent.id), executionId: (yield* RunInfo).executionId }
      }))
    return main().pipe(
      Effect.map(({ executionId, ids }) => {
        expect(ids).toEqual(["agent", "agent-2", "runtime", "a-b"])
        const logs = path.join(home, "logs", executionId)
        expect(fs.readdirSync(logs).filter((name) => name.endsWith(".jsonl")).sort()).toEqual(["_runtime.jsonl", "a-b.jsonl", "agent-2.jsonl", "agent.jsonl", "runtime.jsonl"])
        expect(readJsonl(path.join(logs, "_runtime.jsonl")).filter((entry) => entry.agent !== undefined)).toEqual([])
        const created = readJsonl(path.join(logs, "runtime.jsonl")).find((entry) => entry.event._tag === "AgentCreated")
        expect(created.event.name).toBe("_runtime")
      }),
      Effect.provide(scripted({}, { home }))
    )
  })
})
