/**
 * The environment `PiAgents` starts a pi with is what ramure's extension
 * reads back as that agent (or pool member), with the launcher's options.
 */
import { describe, expect, it } from "@effect/vitest"
import * as AgentEnvironment from "@ramure/protocol/AgentEnvironment"
import { Duration } from "effect"
import * as PiAgents from "../src/PiAgents.js"

const run = { url: "ws://127.0.0.1:9/", secret: "ramure_secret_x", executionId: "e1" }
const files = { address: "/runs/.pi/w/ramure-run.json", codeCache: "/home/cache" }

describe("the environment PiAgents gives pi", () => {
  it("is read back by the extension as the agent, with the default text cap and unreachable timeout", () => {
    const env = PiAgents.piEnvironment({}, undefined, "/runs/.pi/w", run, { agentId: "w" }, files)
    expect(env.PI_CODING_AGENT_DIR).toBe("/runs/.pi/w")
    expect(AgentEnvironment.parse(env)).toEqual({
      url: run.url,
      agentId: "w",
      token: run.secret,
      executionId: "e1",
      textCap: 4000,
      addressFile: files.address,
      unreachableTimeout: Duration.seconds(60),
      codeCache: files.codeCache
    })
    expect(PiAgents.addressOf(env)).toEqual({ url: run.url, token: run.secret })
  })

  it("carries the launcher's text cap and unreachable timeout to a pool member; its extra environment wins", () => {
    const options = { textCap: 123, unreachableTimeout: "1500 millis", env: { RAMURE_URL: "ws://127.0.0.1:10/" } } as const
    const env = PiAgents.piEnvironment(options, undefined, "/runs/.pi/_pool-1", run, { memberId: "_pool-1" }, { ...files, codeCache: undefined })
    expect(AgentEnvironment.parse(env)).toMatchObject({
      memberId: "_pool-1",
      url: "ws://127.0.0.1:10/",
      textCap: 123,
      unreachableTimeout: Duration.millis(1500),
      codeCache: undefined
    })
    expect(env).not.toHaveProperty("RAMURE_AGENT_ID")
  })
})
