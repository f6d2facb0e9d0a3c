/**
 * Property-based fuzzing of the wire decoder: whatever a peer sends,
 * `Protocol.decode` answers with a well-typed message or a typed
 * `DecodeError` — it never throws — and what it accepts, the runtime can
 * re-encode and log.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, Either, Schema } from "effect"
import * as fc from "fast-check"
import * as net from "node:net"
import * as path from "node:path"
import WebSocket from "ws"
import * as Agent from "../src/Agent.js"
import * as Process from "../src/Process.js"
import * as Protocol from "@ramure/protocol/Protocol"
import { sessionOf } from "../src/internal/agent.js"
import { readDirectory } from "@ramure/node/JsonlLogSink"
import * as Registry from "@ramure/node/Registry"
import { Run } from "../src/Run.js"
import { RunInfo } from "../src/RunInfo.js"
import type { Driver } from "@ramure/testing/ScriptedAgents"
import { scripted, tempHome } from "./helpers.js"

const cases = (n: number) => `(${n.toLocaleString("en-US")} cases)`
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const TAGS = [
  "Hello",
  "ToolCall",
  "Event",
  "Entry",
  "Synced",
  "PoolHello",
  "Assign",
  "ProtocolError"
] as const
const KNOWN_TAGS: ReadonlySet<string> = new Set(TAGS)
/** Fields typed `Schema.Unknown`: any JSON value is valid there. */
const UNKNOWN_FIELDS: ReadonlySet<string> = new Set(["args", "parameters"])

const isMessage = Schema.is(Protocol.Message)

/** decode's whole contract, for any input; returns the result for further checks. */
const decodeChecked = (raw: string): Either.Either<Protocol.Message, Protocol.DecodeError> => {
  const result = Protocol.decode(raw) // a throw fails the property
  if (Either.isRight(result)) {
    expect(isMessage(result.right)).toBe(true)
    // What the decoder accepts, the runtime re-encodes (replies, replays) and logs (JSON lines).
    expect(() => Protocol.encode(result.right)).not.toThrow()
    expect(() => JSON.stringify(result.right)).not.toThrow()
  } else {
    expect(result.left).toBeInstanceOf(Protocol.DecodeError)
    expect(["malformed", "unknown_message"]).toContain(result.left.code)
    expect(typeof result.left.message).toBe("string")
  }
  return result
}

/** The value JSON carries for `value`: finite numbers (no -0), no `undefined` in arrays, no `undefined` properties. */
const toJsonValue = (value: unknown): unknown => {
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0) ? value : 0
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : toJsonValue(item)))
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).filter(([, item]) => item !== undefined).map(([key, item]) => [key, toJsonValue(item)])
    )
  }
  return value
}

/** Every schema-valid message, as generated from `Protocol.Message` itself. */
const anyMessage = Arbitrary.make(Protocol.Message)
/** The messages JSON can carry (Schema.Number also admits NaN and ±Infinity, which JSON has no words for). */
const jsonMessage = anyMessage.map((message) => toJsonValue(message) as Protocol.Message)

const jsonType = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value)

/** Every path to a value inside `value`, not descending into `Schema.Unknown` fields. */
const pathsOf = (value: unknown, prefix: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return []
  return Object.entries(value).flatMap(([key, item]) =>
    UNKNOWN_FIELDS.has(key) ? [[...prefix, key]] : [[...prefix, key], ...pathsOf(item, [...prefix, key])]
  )
}

const setPath = (value: any, path: ReadonlyArray<string>, replacement: unknown): any => {
  const [key, ...rest] = path
  return { ...value, [key!]: rest.length === 0 ? replacement : setPath(value[key!], rest, replacement) }
}
const getPath = (value: any, path: ReadonlyArray<string>): unknown => path.reduce((v, key) => v?.[key], value)

/** Objects whose own keys shadow Object.prototype: `String(x)` on them throws. */
const hostileObject = fc.oneof(
  fc.constant('{"toString":1}'),
  fc.constant('{"toString":null,"valueOf":null}'),
  fc.constant('{"valueOf":{},"toString":[]}'),
  fc.constant('{"constructor":null}'),
  fc.constant('{"__proto__":{"_tag":"Hello"}}'),
  fc.dictionary(fc.constantFrom("toString", "valueOf", "constructor", "__proto__", "_tag"), fc.jsonValue(), { minKeys: 1 })
    .map((object) => JSON.stringify(object))
)

describe("Protocol.decode fuzzing", () => {
  const RANDOM = 3_000
  it(`random bytes and strings never throw: a typed message or a DecodeError ${cases(RANDOM)}`, () => {
    const raw = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.string({ unit: "grapheme" }),
      fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes).toString("utf8")),
      fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes).toString("latin1")),
      fc.json(),
      fc.jsonValue().map((value) => JSON.stringify({ _tag: "Hello", value })),
      fc.constantFrom("", " ", "null", "[]", "{}", "0", "\"Hello\"", "1e999", "-1e999", "{\"_tag\":null}", "\u0000binary")
    )
    fc.assert(fc.property(raw, (text) => void decodeChecked(text)), { numRuns: RANDOM })
  })

  const PREFIX = 1_000
  it(`every strict prefix of a valid message is malformed ${cases(PREFIX)}`, () => {
    fc.assert(
      fc.property(jsonMessage, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (message, cut) => {
        const text = Protocol.encode(message)
        const result = decodeChecked(text.slice(0, Math.floor(cut * text.length)))
        expect(Either.isLeft(result) && result.left.code).toBe("malformed")
      }),
      { numRuns: PREFIX }
    )
  })

  const WRONG = 1_500
  it(`valid JSON with a field of the wrong type is unknown_message, never a mistyped message ${cases(WRONG)}`, () => {
    const mutation = jsonMessage.chain((message) => {
      const encoded = JSON.parse(Protocol.encode(message))
      const paths = pathsOf(encoded)
      return fc.tuple(fc.constant(encoded), fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 3 }))
    })
    fc.assert(
      fc.property(mutation, ([encoded, path, replacement]) => {
        const result = decodeChecked(JSON.stringify(setPath(encoded, path, replacement)))
        const typed = !path.some((key) => UNKNOWN_FIELDS.has(key))
        if (typed && jsonType(replacement) !== jsonType(getPath(encoded, path))) {
          expect(Either.isLeft(result) && result.left.code).toBe("unknown_message")
        }
      }),
      { numRuns: WRONG }
    )
  })

  const UNKNOWN = 1_000
  it(`unknown and non-string _tags are unknown_message ${cases(UNKNOWN)}`, () => {
    const tag = fc.oneof(
      fc.string().filter((s) => !KNOWN_TAGS.has(s)).map((s) => JSON.stringify(s)),
      fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== "string").map((v) => JSON.stringify(v)),
      hostileObject
    )
    const rest = fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
    fc.assert(
      fc.property(tag, rest, (tagJson, fields) => {
        const body = JSON.stringify(fields).slice(1, -1)
        const result = decodeChecked(`{${body}${body === "" ? "" : ","}"_tag":${tagJson}}`)
        expect(Either.isLeft(result) && result.left.code).toBe("unknown_message")
      }),
      { numRuns: UNKNOWN }
    )
  })

  const HOSTILE = 300
  it(`objects shadowing toString/valueOf/constructor anywhere in a message never throw ${cases(HOSTILE)}`, () => {
    fc.assert(
      fc.property(hostileObject, (object) => {
        decodeChecked(`{"_tag":"Hello","protocol":${object},"agentId":"a","after":0}`)
        decodeChecked(`{"_tag":"ToolCall","callId":"c","tool":"t","args":${object}}`)
        decodeChecked(`{"_tag":"Synced","seq":1,"extra":${object}}`)
        decodeChecked(`{"_tag":"Event","event":{"_tag":${object}}}`)
      }),
      { numRuns: HOSTILE }
    )
  })

  const DEEP = 300
  it(`deeply nested values never throw, and what is accepted can be encoded and logged ${cases(DEEP)}`, () => {
    const depth = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 300, max: 200_000 }))
    const nest = fc.constantFrom("array", "object")
    const where = fc.constantFrom(...(["top", "args", "protocol", "tag", "event", "parameters"] as const))
    fc.assert(
      fc.property(depth, nest, where, (n, kind, place) => {
        const nested = kind === "array" ? "[".repeat(n) + "]".repeat(n) : '{"a":'.repeat(n) + "1" + "}".repeat(n)
        const frames: Record<typeof place, string> = {
          top: nested,
          args: `{"_tag":"ToolCall","callId":"c","tool":"t","args":${nested}}`,
          protocol: `{"_tag":"Hello","protocol":${nested},"agentId":"a","after":0}`,
          tag: `{"_tag":${nested}}`,
          event: `{"_tag":"Event","event":${nested}}`,
          parameters: `{"_tag":"Entry","seq":1,"body":{"_tag":"ToolAdded","tool":{"name":"t","description":"","parameters":${nested}}}}`
        }
        const result = decodeChecked(frames[place])
        const depthOfFrame = place === "top" ? n : place === "parameters" ? n + 3 : n + 1
        if (depthOfFrame > Protocol.maxDepth) expect(Either.isLeft(result) && result.left.code).toBe("malformed")
        else if (place === "args" || place === "parameters") expect(Either.isRight(result)).toBe(true)
      }),
      { numRuns: DEEP }
    )
  })

  const HUGE = 16
  it(`huge values decode (or are refused) without throwing ${cases(HUGE)}`, () => {
    const size = fc.integer({ min: 100_000, max: 2_000_000 })
    const shape = fc.constantFrom(...(["string", "array", "object", "bad-field", "no-tag"] as const))
    fc.assert(
      fc.property(size, shape, (n, kind) => {
        const frames: Record<typeof kind, () => string> = {
          string: () => JSON.stringify({ _tag: "ToolCall", callId: "c", tool: "t", args: { text: "x".repeat(n) } }),
          array: () => JSON.stringify({ _tag: "ToolCall", callId: "c", tool: "t", args: range(n / 10) }),
          object: () => JSON.stringify({ _tag: "Synced", seq: 1, extra: Object.fromEntries(range(n / 100).map((i) => [`k${i}`, i])) }),
          "bad-field": () => JSON.stringify({ _tag: "Hello", protocol: 1, agentId: "a", after: "x".repeat(n) }),
          "no-tag": () => JSON.stringify({ text: "x".repeat(n) })
        }
        const result = decodeChecked(frames[kind]())
        if (kind === "string" || kind === "array" || kind === "object") expect(Either.isRight(result)).toBe(true)
        else expect(Either.isLeft(result) && result.left.code).toBe("unknown_message")
      }),
      { numRuns: HUGE }
    )
  })

  const ROUND = 2_000
  it(`valid messages round-trip through encode and decode ${cases(ROUND)}`, () => {
    fc.assert(
      fc.property(jsonMessage, (message) => {
        const decoded = decodeChecked(Protocol.encode(message))
        expect(Either.isRight(decoded) && decoded.right).toEqual(message)
      }),
      { numRuns: ROUND }
    )
  })

  const RAW = 1_000
  it(`encode never throws on a schema-valid message, and decode never accepts a mangled one ${cases(RAW)}`, () => {
    fc.assert(
      fc.property(anyMessage, (message) => {
        const text = Protocol.encode(message)
        const decoded = decodeChecked(text)
        // NaN and ±Infinity (which Schema.Number admits) travel as null: such a message is refused, not mangled.
        if (Either.isRight(decoded)) expect(decoded.right).toEqual(JSON.parse(text))
      }),
      { numRuns: RAW }
    )
  })
})

// ---------------------------------------------------------------------------
// The live server

/** The run's frame cap in these tests (`Runtime.layer({ maxMessageBytes })`). */
const MAX_BYTES = 64 * 1024

type Frame =
  | { readonly _tag: "text"; readonly text: string }
  | { readonly _tag: "binary"; readonly bytes: Uint8Array }
  /** A text frame above the cap: the server closes with 1009. */
  | { readonly _tag: "oversize"; readonly bytes: number }
  /** A text frame that is not UTF-8: the server closes with 1007. */
  | { readonly _tag: "invalidUtf8" }

const text = (t: string): Frame => ({ _tag: "text", text: t })
const hello = (after: string, agentId = "a", protocol = Protocol.version) =>
  text(`{"_tag":"Hello","protocol":${protocol},"agentId":${JSON.stringify(agentId)},"after":${after}}`)

/** `after` as a peer might send it: negative, fractional, huge, out of range, duplicated, not a number at all. */
const oddAfter = fc.oneof(
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map(String),
  fc.integer({ min: 0, max: 40 }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.constantFrom("0", "-1", "1e999", "-1e999", "9007199254740993", "0.5", "1e-320", "NaN", "null", '"3"', "[]", "Infinity")
)

const garbage: fc.Arbitrary<Frame> = fc.oneof(
  fc.string().map(text),
  fc.string({ unit: "binary", maxLength: 40 }).map(text),
  fc.json({ maxDepth: 3 }).map(text),
  hostileObject.map(text),
  fc.integer({ min: Protocol.maxDepth, max: 1_000 }).map((n) => text(`{"_tag":"ToolCall","callId":"c","tool":"t","args":${"[".repeat(n)}${"]".repeat(n)}}`)),
  fc.uint8Array({ maxLength: 40 }).map((bytes): Frame => ({ _tag: "binary", bytes }))
)

/** Valid agent-protocol messages. */
const validMessage: fc.Arbitrary<Frame> = jsonMessage.map((message) => text(Protocol.encode(message)))

/**
 * Valid control (`@effect/rpc`) messages that leave the run as it is: a ping, a
 * `Status`, a `Send` to an agent that does not exist. Each gets one answer.
 */
const rpcMessage: fc.Arbitrary<Frame> = fc.oneof(
  fc.constant(text(`{"_tag":"Ping"}`)),
  fc.tuple(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom("Status", "Send")).map(([id, tag]) =>
    text(JSON.stringify({
      _tag: "Request",
      id: String(id),
      tag,
      payload: tag === "Send" ? { agent: "ghost", text: "hi" } : {},
      headers: []
    })))
)

const closingFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.integer({ min: MAX_BYTES + 1, max: 4 * MAX_BYTES }).map((bytes): Frame => ({ _tag: "oversize", bytes })),
  fc.constant<Frame>({ _tag: "invalidUtf8" })
)

const agentFrame: fc.Arbitrary<Frame> = fc.oneof(
  { arbitrary: garbage, weight: 4 },
  { arbitrary: validMessage, weight: 3 },
  { arbitrary: oddAfter.map((after) => hello(after)), weight: 1 },
  { arbitrary: fc.tuple(oddAfter, fc.constantFrom("b", "ghost", "")).map(([after, id]) => hello(after, id)), weight: 1 },
  { arbitrary: fc.integer({ min: -3, max: 9 }).filter((v) => v !== Protocol.version).map((v) => hello("0", "a", v)), weight: 1 }
)
/** Request ids are unique on a connection: number each request by its place in the case. */
const uniqueRequestId = (frame: Frame, i: number): Frame =>
  frame._tag === "text" && frame.text.startsWith(`{"_tag":"Request"`)
    ? text(JSON.stringify({ ...JSON.parse(frame.text), id: String(i + 1) }))
    : frame

const controlFrame: fc.Arbitrary<Frame> = fc.oneof({ arbitrary: garbage, weight: 1 }, { arbitrary: rpcMessage, weight: 3 })

/** `arbitrary` in about one case out of six, else `null`. */
const sometimes = <A>(arbitrary: fc.Arbitrary<A>) =>
  fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, { arbitrary, weight: 1 })

interface FuzzCase {
  readonly target: "agent" | "control"
  readonly frames: ReadonlyArray<Frame>
}
const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  fc.record({
    target: fc.constant("agent" as const),
    frames: fc.tuple(fc.array(agentFrame, { minLength: 1, maxLength: 5 }), sometimes(closingFrame))
      .map(([frames, last]) => (last === null ? frames : [...frames, last]))
  }),
  fc.record({
    target: fc.constant("control" as const),
    frames: fc.tuple(fc.array(controlFrame, { minLength: 1, maxLength: 5 }), sometimes(closingFrame))
      .map(([frames, last]) => (last === null ? frames : [...frames, last]).map(uniqueRequestId))
  })
)

/** The answer a control frame gets: `pong`, a request id, or none (the server closes the connection). */
const controlAnswerOf = (frame: string): string | undefined => {
  let message: unknown
  try {
    message = JSON.parse(frame)
  } catch {
    return undefined
  }
  if (typeof message !== "object" || message === null || !("_tag" in message)) return undefined
  if (message._tag === "Ping") return "pong"
  return message._tag === "Request" && "id" in message && typeof message.id === "string" ? message.id : undefined
}

/** The control answers in what the server sent: `pong` for a pong, the request id of each `Exit`. */
const controlAnswersIn = (received: ReadonlyArray<string>): Array<string> =>
  received.flatMap((frame) => {
    const message = JSON.parse(frame) as { readonly _tag: string; readonly requestId?: string }
    return message._tag === "Pong" ? ["pong"] : message._tag === "Exit" && message.requestId !== undefined ? [message.requestId] : []
  })

/**
 * What the server must answer to a case: on an agent connection, a
 * ProtocolError per bad frame, or a close; on the control channel, an answer
 * per request until the first frame that is not one, which closes the
 * connection (1007). Oversize and non-UTF-8 frames are refused by the
 * WebSocket layer as soon as they are read, possibly before the frames ahead
 * of them are answered.
 */
const expectationsOf = (fuzz: FuzzCase) => {
  let errors = 0
  let claims = false
  const replies: Array<string> = []
  const closeCodes = new Set<number>()
  for (const frame of fuzz.frames) {
    if (frame._tag === "oversize") closeCodes.add(1009)
    if (frame._tag === "invalidUtf8") closeCodes.add(1007)
  }
  for (const frame of fuzz.frames) {
    if (frame._tag === "oversize" || frame._tag === "invalidUtf8") break
    if (fuzz.target === "control") {
      const answer = frame._tag === "text" ? controlAnswerOf(frame.text) : undefined
      if (answer === undefined) {
        closeCodes.add(Protocol.CloseCode.invalidPayload)
        break
      }
      replies.push(answer)
      continue
    }
    if (frame._tag === "binary") {
      errors++
      continue
    }
    const decoded = Protocol.decode(frame.text)
    if (Either.isLeft(decoded)) {
      errors++
      continue
    }
    const message = decoded.right
    if (message._tag === "Hello") {
      if (message.protocol !== Protocol.version) {
        closeCodes.add(Protocol.CloseCode.protocolVersion)
        break
      }
      if (message.agentId === "a") claims = true
      else errors++
    } else if (!claims || (message._tag !== "ToolCall" && message._tag !== "Event")) errors++ // nothing counts before a Hello
  }
  // A connection that took the agent's place is itself replaced when the real agent reconnects.
  if (claims) closeCodes.add(Protocol.CloseCode.replaced)
  return { errors, claims, replies, closeCodes, closes: closeCodes.size > 0 && !(claims && closeCodes.size === 1) }
}

interface Outcome {
  readonly received: ReadonlyArray<string>
  /** Set when the server closed the connection before the case was answered. */
  readonly serverClose: { readonly code: number; readonly reason: string } | undefined
  readonly answered: boolean
}

/**
 * Open a connection, send the frames and a probe, and wait until `answered`
 * says the server has answered everything (or the server closes; 5 s at most).
 */
const play = (
  url: string,
  token: string,
  frames: ReadonlyArray<Frame>,
  probe: string | undefined,
  answered: (received: ReadonlyArray<string>) => boolean
) =>
  new Promise<Outcome>((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { [Protocol.TOKEN_HEADER]: token } })
    const received: Array<string> = []
    let done = false
    let closing = false
    let serverClose: Outcome["serverClose"]
    const timer = setTimeout(() => {
      closing = true
      socket.terminate()
    }, 5_000)
    socket.on("message", (data) => {
      received.push(data.toString())
      if (!done && answered(received)) {
        done = true
        closing = true
        socket.close(1000, "case done")
      }
    })
    socket.on("close", (code, reason) => {
      if (!closing) serverClose = { code, reason: reason.toString() }
      clearTimeout(timer)
      resolve({ received, serverClose, answered: done })
    })
    socket.on("error", () => {})
    socket.on("unexpected-response", (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)))
    socket.on("open", () => {
      for (const frame of frames) {
        if (frame._tag === "text") socket.send(frame.text)
        else if (frame._tag === "binary") socket.send(frame.bytes, { binary: true })
        else if (frame._tag === "oversize") socket.send("x".repeat(frame.bytes))
        else socket.send(Buffer.from([0x7b, 0xc3, 0x28, 0xff, 0x7d]), { binary: false })
      }
      if (probe !== undefined) socket.send(probe)
    })
  })

/** A raw HTTP upgrade request (any path, any headers); resolves with the response status. */
const upgradeStatus = (url: string, path: string, headers: ReadonlyArray<readonly [string, string]>) =>
  new Promise<number>((resolve) => {
    const port = Number(new URL(url).port)
    const socket = net.connect(port, "127.0.0.1")
    let data = ""
    const settle = (status: number) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(status)
    }
    const timer = setTimeout(() => settle(-2), 3_000)
    socket.on("connect", () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          headers.map(([name, value]) => `${name}: ${value}\r\n`).join("") + "\r\n"
      ))
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1")
      const match = /^HTTP\/1\.1 (\d{3})/.exec(data)
      if (match) settle(Number(match[1]))
    })
    socket.on("error", () => settle(-1))
    socket.on("close", () => settle(-1))
  })

const NASTY_PATHS = [
  "//x:99999", "//[", "http://[::1", "//a:b@c", "*", "/agents/%E0%A4%A", "/agents/%", "/agents/%ZZ", "/agents/",
  "/agents/a/b", "/agents/a?x=%", "/agents/%61", "/control/", "/control?x=1", "/%2e%2e/control", "/agents/ghost"
]
const URL_CHARS = [..."abcAZ09-._~%/:@!$&'()*+,;=?[]"]
const anyPath = fc.oneof(
  fc.constantFrom(...NASTY_PATHS),
  fc.string({ unit: fc.constantFrom(...URL_CHARS), maxLength: 30 }).map((path) => `/${path}`),
  fc.string({ unit: fc.constantFrom(...URL_CHARS), maxLength: 12 }).map((id) => `/agents/${id}`)
)

const waitUntil = (check: () => boolean, what: string) =>
  Effect.gen(function* () {
    for (let i = 0; !check(); i++) {
      if (i > 1_000) return yield* Effect.dieMessage(`timed out waiting until ${what}`)
      yield* Effect.sleep("5 millis")
    }
  })

/**
 * Agent "a" is attacked, "b" stands by; both call a tool in a loop and check
 * every result. Decision on connections for an agent's id: the token is the
 * trust boundary, and a connection takes the agent's place only when it says
 * a valid `Hello` for it (that is how an agent reconnects over a half-open
 * socket). Garbage, a wrong agent id or a wrong protocol version never
 * displace the live agent; a valid `Hello` does, and the real agent then
 * reconnects and loses nothing.
 */
describe("Runtime server fuzzing", () => {
  const WS_CASES = 250
  const BAD_TOKEN = 150
  const GOOD_TOKEN = 100
  it.live(
    `garbage on an agent id, on /control and with bad tokens: a typed answer or a reasoned close; both agents keep working ` +
      `(${WS_CASES} connection cases, ${BAD_TOKEN} bad-token and ${GOOD_TOKEN} odd-path upgrades)`,
    () => {
      const drivers = new Map<string, Driver>()
      /** Handler invocations per logical call (`agent:i`). */
      const invocations = new Map<string, number>()
      const served = { a: 0, b: 0 }
      const wrong: Array<string> = []
      let stop = false
      const Echo = Schema.Struct({ agent: Schema.String, i: Schema.Number })
      const Finished = Schema.Struct({ agent: Schema.String, calls: Schema.Number })

      /** Call `echo` in a loop, checking every result, until the fuzzing is over; then report. */
      const caller = (driver: Driver) =>
        Effect.gen(function* () {
          drivers.set(driver.agentId, driver)
          yield* driver.waitForTool("finish")
          let i = 0
          while (!stop) {
            i++
            const result = yield* driver.call("echo", { agent: driver.agentId, i })
            if (result.isError || result.text !== `${driver.agentId}:${i}`) wrong.push(`${driver.agentId}:${i} → ${result.text}`)
            served[driver.agentId as "a" | "b"]++
          }
          yield* driver.call("finish", { agent: driver.agentId, calls: i })
        })

      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const { url } = yield* Run
          const { executionId, home } = yield* RunInfo
          const controlToken = (yield* Registry.list(home)).find((item) => item.entry.execution_id === executionId)!.entry.token
          const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })
          const finished = new Map<string, number>()
          for (const agent of [a!, b!]) {
            yield* agent.on("echo", { description: "", parameters: Echo }, ({ agent: id, i }) =>
              Effect.sync(() => invocations.set(`${id}:${i}`, (invocations.get(`${id}:${i}`) ?? 0) + 1)).pipe(
                Effect.zipRight(Effect.sleep("1 millis")),
                Effect.as(`${id}:${i}`)
              ))
            yield* agent.on("finish", { description: "", parameters: Finished }, ({ agent: id, calls }) =>
              Effect.sync(() => finished.set(id, calls)))
          }
          const session = sessionOf(a!)
          const agentToken = session.secret
          /** The agent's current connection, if it is connected. */
          const current = () =>
            Effect.runSync(Effect.map(session.lifecycle, (state) => (state._tag === "Connected" ? state.connection : undefined)))
          const agentUrl = `${url}${Protocol.agentPath("a")}`
          const controlUrl = `${url}${Protocol.controlPath}`
          yield* waitUntil(() => served.a > 0 && served.b > 0, "both agents are calling tools")
          const servedBefore = { ...served }
          const counts = { claims: 0, oversizeAgent: 0, oversizeControl: 0 }
          let probes = 0

          const property = fc.asyncProperty(fuzzCase, async (fuzz) => {
            const expected = expectationsOf(fuzz)
            if (expected.claims) counts.claims++
            if (fuzz.frames.some((f) => f._tag === "oversize")) {
              if (fuzz.target === "agent") counts.oversizeAgent++
              else counts.oversizeControl++
            }
            // The real agent is connected (it reconnects after a case that took its place).
            if (fuzz.target === "agent") {
              await Effect.runPromise(waitUntil(() => current()?.isOpen() === true && drivers.get("a")!.connected(), "a is back"))
            }
            const before = current()
            const probeTag = `Probe-${++probes}`
            const control = fuzz.target === "control"
            // The probe: on an agent connection an unknown message (a ProtocolError names it), on the control channel a ping.
            const probeAnswered = (received: ReadonlyArray<string>) =>
              control
                ? controlAnswersIn(received).length > expected.replies.length
                : received.some((frame) => frame.includes(probeTag) && frame.includes("ProtocolError"))
            const outcome = await play(
              control ? controlUrl : agentUrl,
              control ? controlToken : agentToken,
              fuzz.frames,
              expected.closes ? undefined : control ? `{"_tag":"Ping"}` : `{"_tag":"${probeTag}"}`,
              probeAnswered
            )

            // Everything the server said is a typed message (of the agent protocol, or of @effect/rpc on /control).
            const messages = control ? [] : outcome.received.map((frame) => {
              const decoded = Protocol.decode(frame)
              expect(Either.isRight(decoded), frame.slice(0, 200)).toBe(true)
              return (decoded as Either.Right<never, Protocol.Message>).right
            })
            if (control) {
              for (const frame of outcome.received) expect(["Pong", "Exit"]).toContain((JSON.parse(frame) as { _tag: string })._tag)
            }
            // Every entry it replicated is the agent's log entry with that seq, whatever `after` was asked for.
            const log = await Effect.runPromise(session.entries)
            for (const message of messages) {
              if (message._tag !== "Entry") continue
              expect(Number.isInteger(message.seq) && message.seq >= 1).toBe(true)
              expect(message.body).toEqual(JSON.parse(JSON.stringify(log[message.seq - 1])))
            }
            // A typed ProtocolError for every bad frame, or a close with a reason.
            if (outcome.serverClose !== undefined) {
              expect([...expected.closeCodes]).toContain(outcome.serverClose.code)
              if (outcome.serverClose.code >= 4000) expect(outcome.serverClose.reason).not.toBe("")
            } else {
              expect(outcome.answered, `no answer to ${JSON.stringify(fuzz).slice(0, 300)}`).toBe(true)
              const errors = messages.filter((m) => m._tag === "ProtocolError" && !m.message.includes(probeTag))
              expect(errors.length).toBe(expected.errors)
              if (control) expect(controlAnswersIn(outcome.received).sort()).toEqual([...expected.replies, "pong"].sort())
            }
            // Garbage never displaces the live agent; only a valid Hello for it takes its place.
            if (fuzz.target === "agent" && !expected.claims) expect(current()).toBe(before)
          })
          yield* Effect.promise(() => fc.assert(property, { numRuns: WS_CASES, endOnFailure: true }))

          // Bad or missing secrets on the paths that exist: refused before the upgrade.
          const near = (secret: string) =>
            fc.oneof(
              fc.constant<string | undefined>(undefined),
              fc.constant(""),
              fc.string({ unit: fc.char(), minLength: 1, maxLength: 80 }).map((t) => t.trim()).filter((t) => t !== secret),
              fc.nat({ max: secret.length - 1 }).map((i) => secret.slice(0, i) + (secret[i] === "A" ? "B" : "A") + secret.slice(i + 1)),
              fc.constant(secret + "x"),
              fc.constant(secret.slice(1))
            )
          const badToken = fc.oneof(
            fc.tuple(fc.constant(Protocol.agentPath("a")), near(agentToken)),
            fc.tuple(fc.constant(Protocol.controlPath), near(controlToken)),
            // Another path's secret.
            fc.tuple(fc.constant(Protocol.agentPath("b")), fc.constantFrom<string | undefined>(agentToken, controlToken)),
            fc.tuple(fc.constant(Protocol.controlPath), fc.constant<string | undefined>(agentToken))
          )
          let refusedHere = 0
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(badToken, async ([path, token]) => {
                const status = await upgradeStatus(url, path, token === undefined ? [] : [[Protocol.TOKEN_HEADER, token]])
                if (status === 401) refusedHere++
                expect(status).toBe(401)
              }),
              { numRuns: BAD_TOKEN, endOnFailure: true }
            ))
          // Any odd path: 404 (or 400 from the HTTP parser, 401 for a real path without its secret), never a crash.
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(anyPath, async (path) => {
                const status = await upgradeStatus(url, path, [[Protocol.TOKEN_HEADER, agentToken]])
                if (status === 401 || status === 404) refusedHere++
                expect([101, 400, 401, 404]).toContain(status)
              }),
              { numRuns: GOOD_TOKEN, endOnFailure: true }
            ))

          const servedDuring = { a: served.a - servedBefore.a, b: served.b - servedBefore.b }
          stop = true
          yield* waitUntil(() => finished.size === 2, "both agents have finished")
          return { counts, servedDuring, finished, refusedHere, executionId }
        }))

      const home = tempHome()
      return main().pipe(
        Effect.provide(scripted({ a: caller, b: caller }, { maxMessageBytes: MAX_BYTES, home })),
        Effect.map(({ counts, executionId, finished, servedDuring, refusedHere }) => {
          const entries = readDirectory(path.join(home, "logs", executionId))
          // Both agents kept being served during the fuzzing, and every call got exactly its own result, once.
          expect(servedDuring.b).toBeGreaterThan(20)
          expect(servedDuring.a).toBeGreaterThan(5)
          expect(wrong).toEqual([])
          for (const agent of ["a", "b"]) {
            const calls = finished.get(agent)!
            expect(calls).toBeGreaterThan(0)
            for (let i = 1; i <= calls; i++) expect(invocations.get(`${agent}:${i}`), `${agent}:${i}`).toBe(1)
          }
          // Oversize frames were refused and logged, on agent connections and on /control alike.
          const tooLarge = entries.flatMap((e) => (e.event._tag === "ProtocolViolation" && e.event.code === "too_large" ? [e.event] : []))
          expect(tooLarge.filter((e) => e.path === Protocol.agentPath("a")).length).toBe(counts.oversizeAgent)
          expect(tooLarge.filter((e) => e.path === Protocol.controlPath).length).toBe(counts.oversizeControl)
          // Refusals are logged at most once a second, each entry counting the ones it stands for.
          const refused = entries.reduce(
            (sum, e) => (e.event._tag === "ConnectionRefused" ? sum + 1 + (e.event.suppressed ?? 0) : sum),
            0
          )
          expect(refused).toBe(refusedHere)
          expect(counts.oversizeAgent + counts.oversizeControl).toBeGreaterThan(0)
          expect(counts.claims).toBeGreaterThan(0)
        })
      )
    },
    60_000
  )
})
