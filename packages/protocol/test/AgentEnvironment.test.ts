/**
 * The `RAMURE_*` environment: what a launcher renders is what the extension
 * reads back, and an environment that is not a ramure run's reads as none.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import * as fc from "fast-check"
import * as AgentEnvironment from "../src/AgentEnvironment.js"

const text = fc.string({ minLength: 1 }).filter((value) => !value.includes("\0"))
const optionalText = fc.option(text, { nil: undefined })

const connection = fc.record({
  url: text,
  token: text,
  executionId: fc.string(),
  textCap: fc.integer({ min: 1, max: 1 << 30 }),
  addressFile: optionalText,
  unreachableTimeout: fc.integer({ min: 1, max: 1e9 }).map(Duration.millis),
  codeCache: optionalText
})

const settings: fc.Arbitrary<AgentEnvironment.Settings> = fc.oneof(
  fc.tuple(connection, text).map(([rest, agentId]) => ({ ...rest, agentId })),
  fc.tuple(connection, text).map(([rest, memberId]) => ({ ...rest, memberId }))
)

const agent = { RAMURE_URL: "ws://127.0.0.1:1", RAMURE_AGENT_ID: "a", RAMURE_TOKEN: "t" }

describe("AgentEnvironment", () => {
  it("what the launcher renders, the extension parses back: agents and pool members (1,000 cases)", () => {
    fc.assert(
      fc.property(settings, (value) => {
        const env = AgentEnvironment.render(value)
        expect(Object.keys(env).every((name) => name.startsWith("RAMURE_"))).toBe(true)
        expect(AgentEnvironment.parse(env)).toEqual(value)
      }),
      { numRuns: 1_000 }
    )
  })

  it("an agent's settings with their defaults; nothing without a url, a token, or an agent or pool member", () => {
    expect(AgentEnvironment.parse({ ...agent, RAMURE_EXECUTION_ID: "e" })).toEqual({
      url: "ws://127.0.0.1:1",
      agentId: "a",
      token: "t",
      executionId: "e",
      textCap: 4000,
      addressFile: undefined,
      unreachableTimeout: Duration.seconds(60),
      codeCache: undefined
    })
    expect(AgentEnvironment.parse({})).toBeUndefined()
    for (const missing of ["RAMURE_URL", "RAMURE_AGENT_ID", "RAMURE_TOKEN"] as const) {
      expect(AgentEnvironment.parse({ ...agent, [missing]: undefined })).toBeUndefined()
      expect(AgentEnvironment.parse({ ...agent, [missing]: "" })).toBeUndefined()
    }
    expect(AgentEnvironment.parse({ RAMURE_POOL_MEMBER: "_pool-1" })).toBeUndefined()
  })

  it("numbers that are not positive integers are their defaults", () => {
    for (const bad of ["", "0", "-5", "1.5", "soon", "Infinity"]) {
      const parsed = AgentEnvironment.parse({ ...agent, RAMURE_TEXT_CAP: bad, RAMURE_UNREACHABLE_TIMEOUT_MS: bad })
      expect(parsed?.textCap).toBe(AgentEnvironment.defaultTextCap)
      expect(parsed?.unreachableTimeout).toEqual(AgentEnvironment.defaultUnreachableTimeout)
    }
    expect(AgentEnvironment.parse({ ...agent, RAMURE_TEXT_CAP: "10", RAMURE_UNREACHABLE_TIMEOUT_MS: "1500" })).toMatchObject({
      textCap: 10,
      unreachableTimeout: Duration.millis(1500)
    })
  })

  it("a pre-started pi of a warm pool is its pool member until it drops the variable", () => {
    const env = { RAMURE_URL: "u", RAMURE_TOKEN: "t", RAMURE_EXECUTION_ID: "e", RAMURE_ADDRESS_FILE: "/pi/ramure-run.json" }
    expect(AgentEnvironment.parse({ ...env, RAMURE_POOL_MEMBER: "_pool-1" })).toEqual({
      url: "u",
      memberId: "_pool-1",
      token: "t",
      executionId: "e",
      textCap: 4000,
      addressFile: "/pi/ramure-run.json",
      unreachableTimeout: Duration.seconds(60),
      codeCache: undefined
    })
    // Once it has become agent "w", its environment names that agent alone.
    expect(AgentEnvironment.parse({ ...env, RAMURE_POOL_MEMBER: "_pool-1", RAMURE_AGENT_ID: "w" })).toMatchObject({ memberId: "_pool-1" })
    expect(AgentEnvironment.parse({ ...env, RAMURE_AGENT_ID: "w" })).toMatchObject({ agentId: "w" })
  })

  it("leaves out the settings a pi does without", () => {
    const env = AgentEnvironment.render({
      url: "u",
      agentId: "a",
      token: "t",
      executionId: "e",
      textCap: 4000,
      addressFile: undefined,
      unreachableTimeout: Duration.seconds(60),
      codeCache: undefined
    })
    expect(env).toEqual({
      RAMURE_URL: "u",
      RAMURE_AGENT_ID: "a",
      RAMURE_TOKEN: "t",
      RAMURE_EXECUTION_ID: "e",
      RAMURE_TEXT_CAP: "4000",
      RAMURE_UNREACHABLE_TIMEOUT_MS: "60000"
    })
  })
})
