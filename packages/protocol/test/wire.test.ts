/**
 * The agent's side of the wire (`internal/wire.ts`) decodes without Schema:
 * it must accept exactly the run's messages that `Protocol.decode` accepts,
 * and build the same values; and what an agent sends must be the frames
 * `Protocol.encode` makes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either } from "effect"
import * as fc from "fast-check"
import * as Wire from "../src/internal/wire.js"
import * as Protocol from "../src/Protocol.js"

const cases = (n: number) => `(${n.toLocaleString("en-US")} cases)`

const runTags: ReadonlySet<string> = new Set(["Entry", "Synced", "Budget", "ProtocolError", "Assign"])
const agentTags: ReadonlySet<string> = new Set(["Hello", "ToolCall", "Event", "PoolHello"])

const anyMessage = Arbitrary.make(Protocol.Message)
const runMessage = anyMessage.filter((message) => runTags.has(message._tag))

/** The agent's decoder agrees with `Protocol.decode` on `raw`. */
const agrees = (raw: string) => {
  const expected = Protocol.decode(raw)
  const decoded = Wire.decode(raw)
  if (Either.isRight(expected) && runTags.has(expected.right._tag)) expect(decoded).toEqual(expected.right)
  else expect(decoded).toBeUndefined()
}

/** A JSON object with one of its fields (at any depth) replaced, removed, or joined by an extra one. */
const mutate = (value: unknown): fc.Arbitrary<unknown> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return fc.jsonValue({ maxDepth: 2 })
  const keys = Object.keys(value)
  const record = value as Record<string, unknown>
  return fc.oneof(
    keys.length === 0 ? fc.constant(value) : fc.constantFrom(...keys).chain((key) =>
      fc.oneof(
        mutate(record[key]).map((replacement) => ({ ...record, [key]: replacement })),
        fc.constant(Object.fromEntries(Object.entries(record).filter(([k]) => k !== key)))
      )
    ),
    fc.tuple(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 })).map(([key, extra]) => ({ ...record, [key]: extra }))
  )
}

describe("the agent's side of the wire", () => {
  const VALID = 2_000
  it(`decodes every message a run sends as Protocol.decode does ${cases(VALID)}`, () => {
    fc.assert(fc.property(runMessage, (message) => agrees(Protocol.encode(message))), { numRuns: VALID })
  })

  const MUTATED = 3_000
  it(`accepts a changed message exactly when Protocol.decode does, and then as the same value ${cases(MUTATED)}`, () => {
    const changed = anyMessage.chain((message) => mutate(JSON.parse(Protocol.encode(message))))
    fc.assert(fc.property(changed, (value) => agrees(JSON.stringify(value))), { numRuns: MUTATED })
  })

  const RANDOM = 2_000
  it(`rejects what is not a run's message: any JSON, any text, frames nested too deep ${cases(RANDOM)}`, () => {
    const raw = fc.oneof(
      fc.string(),
      fc.json(),
      fc.constantFrom("", "null", "[]", "{}", "{\"_tag\":null}", "{\"__proto__\":{\"_tag\":\"Synced\",\"seq\":1}}"),
      fc.integer({ min: Protocol.maxDepth - 2, max: Protocol.maxDepth + 2 }).map((depth) =>
        JSON.stringify({ _tag: "Entry", seq: 1, body: { _tag: "ToolAdded", tool: { name: "t", description: "", parameters: JSON.parse("[".repeat(depth) + "]".repeat(depth)) } } })
      )
    )
    fc.assert(fc.property(raw, agrees), { numRuns: RANDOM })
  })

  const SENT = 1_000
  it(`what an agent sends is the frame Protocol.encode makes ${cases(SENT)}`, () => {
    const agentMessage = anyMessage.filter((message): message is Wire.AgentMessage => agentTags.has(message._tag))
    fc.assert(
      fc.property(agentMessage, (message) => {
        const expected = Either.try(() => Protocol.encode(message))
        if (Either.isRight(expected)) expect(Wire.encode(message)).toBe(expected.right)
      }),
      { numRuns: SENT }
    )
  })
})
