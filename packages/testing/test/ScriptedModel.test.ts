import { Command, FileSystem, Path } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Stream, String as Str } from "effect"
import { fileURLToPath } from "node:url"
import * as ScriptedModel from "../src/ScriptedModel.js"

const post = (url: string, body: unknown) =>
  Effect.promise(() =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
  )

const chat = (server: ScriptedModel.ScriptedModelServer, agent: string, body: object = {}) =>
  post(`${server.baseUrl(agent)}/chat/completions`, {
    model: "scripted",
    messages: [{ role: "user", content: "hi" }],
    ...body
  })

/** The `data:` payloads of an SSE body, `[DONE]` kept as a string. */
const sse = (response: Response) =>
  Effect.promise(() => response.text()).pipe(
    Effect.map((text) =>
      text
        .split("\n\n")
        .filter((event) => event.length > 0)
        .map((event) => event.replace(/^data: /, ""))
        .map((data) => (data === "[DONE]" ? data : JSON.parse(data)))
    )
  )

const json = (response: Response) => Effect.promise(() => response.json() as Promise<any>)

describe("ScriptedModel", () => {
  it.scoped("streams a text turn as SSE: deltas, finish_reason stop, usage, [DONE]", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({ scripts: { alice: [{ text: "hello there" }] } })
      const response = yield* chat(server, "alice", { stream: true })
      assert.strictEqual(response.status, 200)
      assert.include(response.headers.get("content-type"), "text/event-stream")
      const events = yield* sse(response)
      assert.strictEqual(events.at(-1), "[DONE]")
      const chunks = events.slice(0, -1)
      const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")
      assert.strictEqual(text, "hello there")
      assert.strictEqual(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, "stop")
      const usage = chunks.at(-1).usage
      assert.isAbove(usage.prompt_tokens, 0)
      assert.isAbove(usage.completion_tokens, 0)
      assert.strictEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)
      assert.deepStrictEqual(yield* server.failures, [])
    }))

  it.scoped("a turn reports the usage it is given; an endless script answers every request, by its index, until it ends", () =>
    Effect.gen(function*() {
      const endless: ScriptedModel.EndlessScript = (turn) =>
        turn < 50 ? { toolCalls: [{ name: "step", arguments: { n: turn } }], usage: { input: 1000, output: 100 + turn } } : undefined
      const server = yield* ScriptedModel.make({ scripts: { loop: endless } })
      for (let turn = 0; turn < 50; turn++) {
        const body = yield* Effect.flatMap(chat(server, "loop"), json)
        assert.deepStrictEqual(JSON.parse(body.choices[0].message.tool_calls[0].function.arguments), { n: turn })
        assert.deepStrictEqual(body.usage, { prompt_tokens: 1000, completion_tokens: 100 + turn, total_tokens: 1100 + turn })
      }
      assert.deepStrictEqual(yield* server.failures, [])
      const after = yield* Effect.flatMap(chat(server, "loop"), json)
      assert.strictEqual(after.choices[0].message.content, ScriptedModel.finishedText)
      assert.deepStrictEqual((yield* server.failures).map((f) => f.message), ["request after the script ran out"])
    }))

  it.scoped("piModelsJson prices the model as given (dollars per million tokens), free by default", () =>
    Effect.sync(() => {
      const priced = ScriptedModel.piModelsJson("http://127.0.0.1:1/v1", { cost: { input: 3, output: 15 } }) as any
      const free = ScriptedModel.piModelsJson("http://127.0.0.1:1/v1") as any
      assert.deepStrictEqual(priced.providers[ScriptedModel.piProvider].models[0].cost, { input: 3, output: 15, cacheRead: 0, cacheWrite: 0 })
      assert.deepStrictEqual(free.providers[ScriptedModel.piProvider].models[0].cost, { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 })
    }))

  it.live("a turn with a delay answers no sooner than that, as a slow model would", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ScriptedModel.make({ scripts: { alice: [{ text: "slow", delay: "300 millis" }, { text: "quick" }] } })
      const [took, body] = yield* Effect.timed(Effect.flatMap(chat(server, "alice"), json))
      assert.strictEqual(body.choices[0].message.content, "slow")
      // A lower bound only: the answer waited for the delay, however loaded the machine is.
      assert.isAtLeast(Duration.toMillis(took), 300)
      assert.strictEqual((yield* Effect.flatMap(chat(server, "alice"), json)).choices[0].message.content, "quick")
    })))

  it.scoped("streams tool calls with call_<n> ids, arguments in pieces, finish_reason tool_calls", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({
        scripts: {
          bob: [{
            toolCalls: [{ name: "bash", arguments: { command: "ls" } }, { name: "read", arguments: { path: "a.txt" } }]
          }]
        }
      })
      const events = yield* chat(server, "bob", { stream: true }).pipe(Effect.flatMap(sse))
      const calls = new Map<number, { id: string; name: string; arguments: string }>()
      for (const chunk of events.slice(0, -1)) {
        for (const delta of chunk.choices[0]?.delta?.tool_calls ?? []) {
          const call = calls.get(delta.index) ?? { id: "", name: "", arguments: "" }
          calls.set(delta.index, {
            id: delta.id ?? call.id,
            name: delta.function?.name ?? call.name,
            arguments: call.arguments + (delta.function?.arguments ?? "")
          })
        }
      }
      assert.deepStrictEqual([...calls.values()], [
        { id: "call_1", name: "bash", arguments: JSON.stringify({ command: "ls" }) },
        { id: "call_2", name: "read", arguments: JSON.stringify({ path: "a.txt" }) }
      ])
      assert.isAbove(events.filter((e) => e !== "[DONE]" && e.choices[0]?.delta?.tool_calls).length, 2)
      assert.strictEqual(events.find((e) => e.choices?.[0]?.finish_reason)?.choices[0].finish_reason, "tool_calls")
    }))

  it.scoped("answers stream: false with a plain JSON completion", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({
        scripts: { carol: [{ text: "ok", toolCalls: [{ name: "bash", arguments: { command: "pwd" } }] }] }
      })
      const body = yield* chat(server, "carol", { stream: false }).pipe(Effect.flatMap(json))
      assert.strictEqual(body.object, "chat.completion")
      assert.deepStrictEqual(body.choices[0].message, {
        role: "assistant",
        content: "ok",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "bash", arguments: "{\"command\":\"pwd\"}" } }]
      })
      assert.strictEqual(body.choices[0].finish_reason, "tool_calls")
      assert.isAbove(body.usage.total_tokens, 0)
    }))

  it.scoped("replays each agent's turns in order and records decoded requests", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({
        scripts: { a: [{ text: "a1" }, { text: "a2" }], b: [{ text: "b1" }] }
      })
      const text = (agent: string) => chat(server, agent).pipe(Effect.flatMap(json), Effect.map((b) => b.choices[0].message.content))
      assert.strictEqual(yield* text("a"), "a1")
      assert.strictEqual(yield* text("b"), "b1")
      yield* post(`${server.baseUrl("a")}/chat/completions`, {
        model: "scripted",
        stream: false,
        messages: [{ role: "system", content: "sys" }, { role: "user", content: [{ type: "text", text: "part 1" }, { type: "text", text: " part 2" }] }],
        tools: [{ type: "function", function: { name: "bash", description: "run", parameters: { type: "object" } } }]
      }).pipe(Effect.flatMap(json), Effect.tap((b) => assert.strictEqual(b.choices[0].message.content, "a2")))
      const requests = yield* server.requests("a")
      assert.strictEqual(requests.length, 2)
      assert.strictEqual(ScriptedModel.lastUserText(requests[1]!), "part 1 part 2")
      assert.deepStrictEqual(requests[1]!.tools, [{ name: "bash", description: "run", parameters: { type: "object" } }])
      assert.deepStrictEqual(yield* server.requests("nobody"), [])
      assert.deepStrictEqual(yield* server.failures, [])
    }))

  it.scoped("answers a finished text and records a failure once the script is exhausted", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({ scripts: { dan: [{ text: "only" }] } })
      yield* chat(server, "dan", { stream: true }).pipe(Effect.flatMap(sse))
      const events = yield* chat(server, "dan", { stream: true }).pipe(Effect.flatMap(sse))
      const text = events.slice(0, -1).map((c) => c.choices[0]?.delta?.content ?? "").join("")
      assert.strictEqual(text, ScriptedModel.finishedText)
      assert.strictEqual(events.find((e) => e.choices?.[0]?.finish_reason)?.choices[0].finish_reason, "stop")
      assert.deepStrictEqual(yield* server.failures, [{ agent: "dan", turn: 1, message: "request after the script ran out" }])
    }))

  it.scoped("checks expectations against the request, e.g. the last tool results", () =>
    Effect.gen(function*() {
      const expectResult = (needle: string) => (request: ScriptedModel.ChatRequest) =>
        ScriptedModel.lastToolResults(request).some((r) => r.content.includes(needle)) ? undefined : `no ${needle}`
      const server = yield* ScriptedModel.make({
        scripts: { eve: [{ text: "good", expect: expectResult("42") }, { text: "bad", expect: expectResult("43") }] }
      })
      const messages = [
        { role: "user", content: "go" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "bash", arguments: "{}" } }] },
        { role: "tool", tool_call_id: "call_1", content: "answer: 42" }
      ]
      yield* chat(server, "eve", { messages })
      yield* chat(server, "eve", { messages })
      const [request] = yield* server.requests("eve")
      assert.deepStrictEqual(ScriptedModel.lastToolResults(request!), [{ toolCallId: "call_1", content: "answer: 42" }])
      assert.deepStrictEqual(yield* server.failures, [{ agent: "eve", turn: 1, message: "no 43" }])
    }))

  it.scoped("records unknown agents, uses the fallback script, and routes /v1 by the model field", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({
        fallback: (agent) => (agent.startsWith("auto") ? [{ text: `hi ${agent}` }] : undefined)
      })
      const content = (response: Response) => json(response).pipe(Effect.map((b) => b.choices[0].message.content))
      assert.strictEqual(yield* chat(server, "auto 1").pipe(Effect.flatMap(content)), "hi auto 1")
      assert.strictEqual(
        yield* post(`${server.url}/v1/chat/completions`, { model: "auto2", messages: [] }).pipe(Effect.flatMap(content)),
        "hi auto2"
      )
      assert.strictEqual(yield* chat(server, "stranger").pipe(Effect.flatMap(content)), ScriptedModel.finishedText)
      const failures = yield* server.failures
      assert.deepStrictEqual(failures.map((f) => f.agent), ["stranger"])
      assert.include(failures[0]!.message, "unknown agent")
      assert.strictEqual((yield* server.requests("auto 1")).length, 1)
    }))

  it.scoped("setScript replaces a script and starts it over", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({ scripts: { fay: [{ text: "first" }] } })
      const content = chat(server, "fay").pipe(Effect.flatMap(json), Effect.map((b) => b.choices[0].message.content))
      assert.strictEqual(yield* content, "first")
      yield* server.setScript("fay", [{ text: "second" }])
      assert.strictEqual(yield* content, "second")
      assert.deepStrictEqual(yield* server.failures, [])
    }))

  it.scoped("serves /health, 404 on unknown paths and 400 on malformed bodies", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make()
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      const health = yield* Effect.promise(() => fetch(`${server.url}/health`))
      assert.strictEqual(health.status, 200)
      const missing = yield* post(`${server.url}/nope`, {})
      assert.strictEqual(missing.status, 404)
      assert.isString((yield* json(missing)).error.message)
      const malformed = yield* post(`${server.baseUrl("a")}/chat/completions`, "{not json")
      assert.strictEqual(malformed.status, 400)
      assert.isString((yield* json(malformed)).error.message)
      const invalid = yield* post(`${server.baseUrl("a")}/chat/completions`, { messages: "no" })
      assert.strictEqual(invalid.status, 400)
      assert.deepStrictEqual(yield* server.failures, [])
    }))

  it.scoped("speaks Anthropic's messages API: streamed events, tool_use input in pieces, stop_reason, usage", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({
        scripts: { ann: [{ text: "let me look", toolCalls: [{ name: "bash", arguments: { command: "ls" } }] }, { text: "done" }] }
      })
      assert.strictEqual(server.baseUrl("ann", "anthropic-messages"), `${server.url}/ann`)
      const response = yield* post(`${server.baseUrl("ann", "anthropic-messages")}/v1/messages`, {
        model: "scripted",
        stream: true,
        system: [{ type: "text", text: "You are terse." }],
        messages: [{ role: "user", content: "go" }],
        tools: [{ name: "bash", description: "run", input_schema: { type: "object", properties: { command: { type: "string" } }, required: ["command"] } }]
      })
      assert.include(response.headers.get("content-type"), "text/event-stream")
      const events = (yield* Effect.promise(() => response.text())).split("\n\n").filter((e) => e.length > 0).map((event) => {
        const [name, data] = event.split("\n")
        return { name: name!.replace(/^event: /, ""), data: JSON.parse(data!.replace(/^data: /, "")) }
      })
      assert.deepStrictEqual(events.map((e) => e.name), [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop"
      ])
      assert.deepStrictEqual(events[4]!.data.content_block, { type: "tool_use", id: "call_1", name: "bash", input: {} })
      const input = events.filter((e) => e.data.delta?.type === "input_json_delta").map((e) => e.data.delta.partial_json).join("")
      assert.deepStrictEqual(JSON.parse(input), { command: "ls" })
      assert.strictEqual(events[2]!.data.delta.text, "let me look")
      assert.strictEqual(events[8]!.data.delta.stop_reason, "tool_use")
      assert.isAbove(events[0]!.data.message.usage.input_tokens, 0)

      // The tool result comes back in a user turn: decoded as OpenAI's tool message.
      const second = yield* post(`${server.baseUrl("ann", "anthropic-messages")}/v1/messages`, {
        model: "scripted",
        messages: [
          { role: "user", content: [{ type: "text", text: "go" }] },
          { role: "assistant", content: [{ type: "text", text: "let me look" }, { type: "tool_use", id: "call_1", name: "bash", input: { command: "ls" } }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "call_1", content: [{ type: "text", text: "a.txt" }], is_error: false }] }
        ]
      }).pipe(Effect.flatMap(json))
      assert.deepStrictEqual(second.content, [{ type: "text", text: "done" }])
      assert.strictEqual(second.stop_reason, "end_turn")
      const requests = yield* server.requests("ann")
      assert.strictEqual(requests[0]!.api, "anthropic-messages")
      assert.deepStrictEqual(requests[0]!.messages[0], { role: "system", content: "You are terse." })
      assert.deepStrictEqual(requests[0]!.tools[0], {
        name: "bash",
        description: "run",
        parameters: { type: "object", properties: { command: { type: "string" } }, required: ["command"] }
      })
      assert.deepStrictEqual(ScriptedModel.lastToolResults(requests[1]!), [{ toolCallId: "call_1", content: "a.txt" }])
      assert.deepStrictEqual(requests[1]!.messages[1]!.tool_calls, [
        { id: "call_1", type: "function", function: { name: "bash", arguments: JSON.stringify({ command: "ls" }) } }
      ])
    }))

  it.scoped("is available as a layer", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.ScriptedModel
      const body = yield* chat(server, "g").pipe(Effect.flatMap(json))
      assert.strictEqual(body.choices[0].message.content, "from layer")
    }).pipe(Effect.provide(ScriptedModel.layer({ scripts: { g: [{ text: "from layer" }] } }))))
})

// ---------------------------------------------------------------------------------------------
// End to end with the real pi binary

const piBin = fileURLToPath(new URL("../../../node_modules/.bin/pi", import.meta.url))

/** Runs `pi -p` against the scripted server for `agent` with stdin closed (empty); returns exit code and output. */
const runPi = (server: ScriptedModel.ScriptedModelServer, agent: string, prompt: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const agentDir = yield* fs.makeTempDirectoryScoped({ prefix: "ramure-pi-agent-" })
    const cwd = yield* fs.makeTempDirectoryScoped({ prefix: "ramure-pi-cwd-" })
    yield* fs.writeFileString(
      path.join(agentDir, "models.json"),
      JSON.stringify(ScriptedModel.piModelsJson(server.baseUrl(agent)), null, 2)
    )
    const command = Command.make(
      piBin,
      "-p",
      prompt,
      "--no-extensions",
      "--no-skills",
      "--no-prompt-templates",
      "--no-context-files",
      "--no-session",
      "--model",
      `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`
    ).pipe(
      Command.feed(""),
      Command.workingDirectory(cwd),
      Command.env({ PI_CODING_AGENT_DIR: agentDir, PI_OFFLINE: "1", PI_SKIP_VERSION_CHECK: "1", PI_TELEMETRY: "0" })
    )
    const process = yield* Command.start(command)
    const collect = (stream: Stream.Stream<Uint8Array, unknown>) => stream.pipe(Stream.decodeText(), Stream.mkString)
    const [stdout, stderr, exitCode] = yield* Effect.all(
      [collect(process.stdout), collect(process.stderr), process.exitCode],
      { concurrency: "unbounded" }
    )
    return { stdout, stderr, exitCode }
  }).pipe(Effect.scoped, Effect.timeout(Duration.seconds(45)))

describe("ScriptedModel with the real pi", () => {
  it.scopedLive("drives pi -p through a bash tool call and a checked final answer", () =>
    Effect.gen(function*() {
      const server = yield* ScriptedModel.make({
        scripts: {
          "pi agent": [
            {
              expect: (request) =>
                ScriptedModel.lastUserText(request)?.includes("say hello") ? undefined : "prompt not received",
              toolCalls: [{ name: "bash", arguments: { command: "echo hello-from-pi" } }]
            },
            {
              expect: (request) => {
                const results = ScriptedModel.lastToolResults(request)
                return results.length === 1 && results[0]!.toolCallId === "call_1" &&
                    results[0]!.content.includes("hello-from-pi")
                  ? undefined
                  : `unexpected tool results: ${JSON.stringify(results)}`
              },
              text: "done"
            }
          ]
        }
      })
      const result = yield* runPi(server, "pi agent", "say hello")
      assert.strictEqual(result.exitCode, 0, result.stderr)
      assert.strictEqual(Str.trim(result.stdout), "done")
      assert.deepStrictEqual(yield* server.failures, [])
      const requests = yield* server.requests("pi agent")
      assert.strictEqual(requests.length, 2)
      assert.isTrue(requests.every((r) => r.stream && r.model === ScriptedModel.piModel))
      assert.isTrue(requests[0]!.tools.some((t) => t.name === "bash"))
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 60_000 })
})
