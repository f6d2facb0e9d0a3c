/**
 * End-to-end behaviour of real pi agents (scripted model, real tmux or local
 * processes), shared by the tmux and local test files.
 */
import * as Command from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import type { RunEvent } from "@ramure/core/RunEvent"
import { RunLog } from "@ramure/core/RunLog"
import * as Process from "@ramure/core/Process"
import * as RunInfo from "@ramure/core/RunInfo"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { currentSocket } from "@ramure/node/TmuxMachineProvider"
import { Deferred, Effect, Exit, Fiber, Schema, Stream } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import {
  agentPid,
  connectedAgents,
  countOf,
  dropFromServer,
  eventsOf,
  eventually,
  expectToolResults,
  finish,
  finishTool,
  noLeftovers,
  piRun,
  type Provider,
  tempHome,
  turnsOf,
  userTexts
} from "./helpers.js"


/**
 * Run `body` against a scripted model server and a pi run on `provider`;
 * afterwards the model must have seen every scripted turn's expectation met.
 */
const scenario = <A, E>(
  provider: Provider,
  scripts: Record<string, ScriptedModel.Script>,
  body: (server: ScriptedModel.ScriptedModelServer) => Effect.Effect<A, E, any>,
  env?: Record<string, string>
) =>
  Effect.gen(function* () {
    // After the last tool call pi asks the model once more, unless the run has already ended.
    const server = yield* ScriptedModel.make({
      scripts: Object.fromEntries(Object.entries(scripts).map(([agent, script]) => [agent, [...script, { text: "(done)" }]]))
    })
    const home = yield* tempHome
    const result = yield* body(server).pipe(Effect.provide(piRun(server, provider, home, env === undefined ? {} : { env })))
    expect(yield* server.failures).toEqual([])
    return result
  }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)) as Effect.Effect<A, E | ScriptedModel.ScriptedModelError>

const tags = (events: ReadonlyArray<RunEvent>) => events.map((event) => event._tag)

/**
 * The tests for `provider`. `subset` keeps those whose outcome depends on how
 * pi runs (interactive in tmux, rpc mode locally); the rest exercise the same
 * code on every machine.
 */
export const suite = (provider: Provider, options: { readonly subset?: boolean } = {}) =>
  describe(`pi agents on ${provider} machines`, () => {
    /** A test that `subset` leaves out. */
    const full = options.subset ? (..._: Parameters<typeof it.live>) => {} : it.live
    it.live("pi connects, its tools reach the model, and a tool call round-trips through the model", () => {
      let worker: Agent.Agent | undefined
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          worker = yield* Agent.make("worker", { systemPrompt: "You are a test worker." })
          yield* worker.on(
            "add",
            { description: "Add two numbers", parameters: Schema.Struct({ a: Schema.Number, b: Schema.NumberFromString }) },
            ({ a, b }) => Effect.succeed({ sum: a + b })
          )
          yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* worker.send("Add 2 and 3, then finish.")
          return yield* Process.wait()
        })
      )
      return scenario(
        provider,
        {
          worker: [
            { toolCalls: [{ name: "add", arguments: { a: 2, b: "3" } }] },
            { expect: expectToolResults((r) => r[0] === '{"sum":5}'), toolCalls: [finish("five")] }
          ]
        },
        (server) =>
          Effect.gen(function* () {
            expect(yield* main()).toBe("five")
            const [first] = yield* server.requests("worker")
            expect(first!.tools.map((t) => t.name)).toEqual(expect.arrayContaining(["add", "finish", "bash", "read"]))
            expect(first!.tools.find((t) => t.name === "add")!.parameters).toMatchObject({ required: ["a", "b"] })
            expect(first!.messages[0]!.content).toContain("You are a test worker.")
            expect(userTexts(first!)).toEqual(["Add 2 and 3, then finish."])

            const events = yield* eventsOf(worker!)
            expect(tags(events)).toEqual(expect.arrayContaining([
              "AgentConnected",
              "WorkStarted",
              "TurnStarted",
              "ToolCalled",
              "ToolReturned",
              "TurnEnded"
            ]))
            const messages = events.filter((e) => e._tag === "MessageEnded")
            expect(messages[0]).toMatchObject({ role: "user", text: "Add 2 and 3, then finish." })
            expect(messages[1]).toMatchObject({ role: "assistant", toolCalls: ["add"], usage: { cost: 0 } })
            expect(events.find((e) => e._tag === "ToolReturned")).toMatchObject({
              tool: "add",
              isError: false,
              text: '{"sum":5}'
            })
            // pi reports its own tools only: ramure's are recorded by the run itself.
            expect(events.some((e) => e._tag === "ToolExecutionEnded" && e.tool === "add")).toBe(false)
          })
      )
    })

    full("Schema-invalid arguments come back to the model as a tool error", () => {
      let worker: Agent.Agent | undefined
      let handled = 0
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          worker = yield* Agent.make("worker")
          yield* worker.on(
            "add",
            { description: "Add two numbers", parameters: Schema.Struct({ a: Schema.Number, b: Schema.NumberFromString }) },
            ({ a, b }) => Effect.sync(() => (handled++, a + b))
          )
          yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* worker.send("Add 1 and one.")
          return yield* Process.wait()
        })
      )
      return scenario(
        provider,
        {
          worker: [
            // Valid JSON Schema (b is a string), but not a NumberFromString: only ramure's decoding rejects it.
            { toolCalls: [{ name: "add", arguments: { a: 1, b: "one" } }] },
            {
              expect: expectToolResults((r) => r.length === 1 && r[0]!.includes("invalid arguments for add")),
              toolCalls: [finish("refused")]
            }
          ]
        },
        () =>
          Effect.gen(function* () {
            expect(yield* main()).toBe("refused")
            expect(handled).toBe(0)
            const events = yield* eventsOf(worker!)
            expect(events.find((e) => e._tag === "ToolReturned")).toMatchObject({ tool: "add", isError: true })
          })
      )
    })

    it.live("messages sent while a prompt starts and while the agent works are all delivered", () => {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const worker = yield* Agent.make("worker")
          yield* worker.on("work", { description: "Do some work", parameters: Schema.Struct({}) }, () =>
            // The agent is busy running this tool while the message arrives.
            Effect.as(worker.send("third"), "worked"))
          yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
          // Back to back: the second arrives before the first prompt's agent_start.
          yield* worker.send("first")
          yield* worker.send("second")
          return yield* Process.wait()
        })
      )
      const allThree = (request: ScriptedModel.ChatRequest) => {
        const texts = userTexts(request)
        return ["first", "second", "third"].every((t) => texts.includes(t)) ? undefined : `user messages: ${texts}`
      }
      return scenario(
        provider,
        {
          worker: [
            { toolCalls: [{ name: "work", arguments: {} }] },
            { expect: allThree, toolCalls: [finish("all delivered")] }
          ]
        },
        () => Effect.map(main(), (result) => expect(result).toBe("all delivered"))
      )
    })

    full("tool calls whose ids the model reuses or leaves empty are each run once and each answered", () => {
      const notes: Array<string> = []
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const worker = yield* Agent.make("worker")
          yield* worker.on("note", { description: "Take a note", parameters: Schema.Struct({ text: Schema.String }) }, ({ text }) =>
            Effect.sync(() => (notes.push(text), `noted ${text}`)))
          yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* worker.send("Take notes.")
          return yield* Process.wait()
        })
      )
      const note = (text: string, id: string): ScriptedModel.ToolCallTurn => ({ name: "note", arguments: { text }, id })
      const results = (...expected: Array<string>) => expectToolResults((r) => r.join("|") === expected.join("|"))
      return scenario(
        provider,
        {
          worker: [
            // Two calls in one answer, both without an id; then the same id in two answers.
            { toolCalls: [note("a", ""), note("b", "")] },
            { expect: results("noted a", "noted b"), toolCalls: [note("c", "dup")] },
            { expect: results("noted c"), toolCalls: [note("d", "dup")] },
            { expect: results("noted d"), toolCalls: [finish("all noted")] }
          ]
        },
        () =>
          Effect.gen(function* () {
            expect(yield* main()).toBe("all noted")
            expect(notes).toEqual(["a", "b", "c", "d"])
          })
      )
    })

    full("tools added and removed while the agent runs reach the model", () => {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const worker = yield* Agent.make("worker")
          yield* worker.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* worker.on("unlock", { description: "Unlock the next tool", parameters: Schema.Struct({}) }, () =>
            Effect.as(
              worker.on("secret", { description: "Only after unlock", parameters: Schema.Struct({ word: Schema.String }) }, ({ word }) =>
                Effect.as(worker.removeTool("unlock"), `the secret is ${word}`)),
              "unlocked"
            ))
          yield* worker.send("Unlock, then use the secret tool.")
          return yield* Process.wait()
        })
      )
      const tools = (request: ScriptedModel.ChatRequest) => request.tools.map((t) => t.name)
      return scenario(
        provider,
        {
          worker: [
            {
              expect: (r) => (tools(r).includes("secret") ? "secret offered too early" : undefined),
              toolCalls: [{ name: "unlock", arguments: {} }]
            },
            {
              expect: (r) => (tools(r).includes("secret") ? undefined : `tools: ${tools(r)}`),
              toolCalls: [{ name: "secret", arguments: { word: "swordfish" } }]
            },
            {
              expect: (r) =>
                tools(r).includes("unlock")
                  ? "unlock was removed but is still offered"
                  : expectToolResults((results) => results[0] === "the secret is swordfish")(r),
              toolCalls: [finish("done")]
            }
          ]
        },
        (server) =>
          Effect.gen(function* () {
            expect(yield* main()).toBe("done")
            // Each change ended the run; the run that continued it was started by a message the model never saw.
            const requests = yield* server.requests("worker")
            expect(requests.flatMap((r) => r.messages).filter((m) => m.content.includes("(continue)"))).toEqual([])
          })
      )
    })

    full("a WebSocket dropped during a tool call loses nothing and runs the call once", () => {
      let calls = 0
      let worker: Agent.Agent | undefined
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const started = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          worker = yield* Agent.make("worker")
          const agent = worker
          yield* agent.on("slow", { description: "Takes a while", parameters: Schema.Struct({}) }, () =>
            Effect.gen(function* () {
              calls++
              yield* Deferred.succeed(started, undefined)
              yield* Deferred.await(release)
              return "slow result"
            }))
          yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* agent.send("Call slow.")
          yield* Effect.fork(Effect.gen(function* () {
            yield* Deferred.await(started)
            const disconnects = yield* countOf(agent, "AgentDisconnected")
            yield* dropFromServer(agent)
            yield* eventually(countOf(agent, "AgentDisconnected"), (n) => n > disconnects)
            // The result is logged while the agent is away; the reconnect replays it.
            yield* Deferred.succeed(release, undefined)
          }))
          return yield* Process.wait()
        })
      )
      return scenario(
        provider,
        {
          worker: [
            { toolCalls: [{ name: "slow", arguments: {} }] },
            { expect: expectToolResults((r) => r[0] === "slow result"), toolCalls: [finish("survived")] }
          ]
        },
        () =>
          Effect.gen(function* () {
            expect(yield* main()).toBe("survived")
            expect(calls).toBe(1)
            expect(yield* countOf(worker!, "AgentConnected")).toBeGreaterThanOrEqual(2)
          })
      )
    })

    it.live("pi exiting during start-up fails Agent.make with AgentStartError and pi's output", () => {
      const main = Process.make("main", () => Agent.make("worker", { model: "nope/nothing" }))
      return scenario(provider, {}, () =>
        Effect.gen(function* () {
          const executionId = yield* RunInfo.executionId
          const error = yield* Effect.flip(main())
          expect(error._tag).toBe("AgentStartError")
          expect(error).toMatchObject({ agent: "worker", reason: expect.stringContaining("exited with code 1") })
          expect((error as { output?: string }).output).toContain('Model "nope/nothing" not found')
          expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
        }))
    })

    it.live("a pi that cannot reach its run exits at once, and Agent.make says why", () => {
      const main = Process.make("main", () => Agent.make("worker"))
      return scenario(
        provider,
        {},
        () =>
          Effect.gen(function* () {
            const error = yield* Effect.flip(main())
            expect(error._tag).toBe("AgentStartError")
            expect((error as { output?: string }).output).toContain("ramure: agent worker could not connect to its run")
            expect((error as { output?: string }).output).toContain("401")
          }),
        { RAMURE_TOKEN: "not-the-token" }
      )
    })

    it.live("killing pi (kill -9) fails the process with AgentCrashed within 2 s", () => {
      let killedAt = 0
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          yield* Agent.make("worker")
          const pid = yield* agentPid("worker")
          expect(pid).toBeTypeOf("number")
          killedAt = Date.now()
          process.kill(pid!, "SIGKILL")
          return yield* Process.wait()
        })
      )
      return scenario(provider, {}, () =>
        Effect.gen(function* () {
          const executionId = yield* RunInfo.executionId
          const error = yield* Effect.flip(main())
          expect(error._tag).toBe("AgentCrashed")
          const crashed = (yield* (yield* RunLog).history()).find((entry) => entry.event._tag === "AgentCrashed")
          expect(crashed).toBeDefined()
          expect(Date.parse(crashed!.ts) - killedAt).toBeLessThanOrEqual(2000)
          expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
        }))
    })

    if (provider === "tmux") {
      it.live("killing an agent's tmux session while another agent's lives fails the process with AgentCrashed", () => {
        const main = Process.make("main", () =>
          Effect.gen(function* () {
            const [victim] = yield* Effect.all([Agent.make("victim"), Agent.make("bystander")], { concurrency: "unbounded" })
            yield* Command.make("tmux", "-L", currentSocket(), "kill-session", "-t", `=${victim.session}`).pipe(Command.exitCode)
            return yield* Process.wait()
          })
        )
        return scenario(provider, {}, () =>
          Effect.gen(function* () {
            const executionId = yield* RunInfo.executionId
            const error = yield* Effect.flip(main())
            expect(error).toMatchObject({ _tag: "AgentCrashed", agent: "victim" })
            expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
          }).pipe(Effect.provide(NodeContext.layer)))
      })
    }

    full("a process timeout releases its agents: no tmux session, no pi left", () => {
      const main = Process.make(
        "main",
        () =>
          Effect.gen(function* () {
            yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })
            return yield* Effect.never
          }),
        { timeout: "5 seconds" }
      )
      return scenario(provider, {}, () =>
        Effect.gen(function* () {
          const executionId = yield* RunInfo.executionId
          const error = yield* Effect.flip(main())
          expect(error._tag).toBe("ProcessTimeout")
          expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
        }))
    })

    full("download_file pulls a peer's file to the agent's machine; a FIFO there is refused at once", () => {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const [alice, bob] = yield* Effect.all([Agent.make("alice"), Agent.make("bob")], { concurrency: "unbounded" })
          yield* Agent.connect(alice, bob, { direction: "a->b" })
          yield* bob.exec("echo 'from bob' > notes.md && mkfifo pipe")
          yield* alice.on("finish", finishTool, ({ result }) =>
            Effect.flatMap(alice.exec("cat inbox/notes.md"), (copied) => Process.done({ result, copied: copied.stdout })))
          yield* alice.send("Download notes.md and pipe from bob, then finish.")
          return yield* Process.wait()
        }))
      return scenario(
        provider,
        {
          alice: [
            {
              toolCalls: [
                { name: "download_file", arguments: { from: "bob", path: "notes.md", dest: "inbox/notes.md" } },
                { name: "download_file", arguments: { from: "bob", path: "pipe" } }
              ]
            },
            {
              expect: expectToolResults((r) =>
                r[0] === "downloaded notes.md from bob to inbox/notes.md (9 bytes)" &&
                r[1] === "cannot download pipe from bob: pipe is a FIFO, not a regular file"),
              toolCalls: [finish("downloaded")]
            }
          ],
          bob: []
        },
        (server) =>
          Effect.gen(function* () {
            expect(yield* main()).toEqual({ result: "downloaded", copied: "from bob\n" })
            const [first] = yield* server.requests("alice")
            expect(first!.tools.map((t) => t.name)).toEqual(expect.arrayContaining(["message", "send_file", "download_file"]))
          })
      )
    })

    it.live("interrupting a process releases its agents: no tmux session, no pi left", () => {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })
          return yield* Effect.never
        }))
      return scenario(provider, {}, () =>
        Effect.gen(function* () {
          const executionId = yield* RunInfo.executionId
          const fiber = yield* Effect.fork(main())
          yield* connectedAgents(2)
          const exit = yield* Fiber.interrupt(fiber)
          expect(Exit.isInterrupted(exit)).toBe(true)
          expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
        }))
    })

    if (provider === "tmux") {
      it.live("after /new re-creates the extension, pi resumes: tools work, old messages are not replayed", () => {
        let worker: Agent.Agent | undefined
        const main = Process.make("main", () =>
          Effect.gen(function* () {
            worker = yield* Agent.make("worker")
            const agent = worker
            yield* agent.on("note", { description: "Take a note", parameters: Schema.Struct({ text: Schema.String }) }, () =>
              Effect.succeed("noted"))
            yield* agent.on("finish", finishTool, ({ result }) => Process.done(result))
            yield* agent.send("first")
            const ends = countOf(agent, "WorkEnded")
            yield* eventually(ends, (n) => n === 1)
            const sent = yield* Command.exitCode(
              Command.make("tmux", "-L", currentSocket(), "send-keys", "-t", `=${agent.session}:`, "/new", "Enter")
            )
            expect(sent).toBe(0)
            // The new extension instance connects after the entries the old one applied.
            const resumed = Effect.map(eventsOf(agent), (events) =>
              events.some((e) => e._tag === "AgentConnected" && e.after > 0))
            yield* eventually(resumed, (yes) => yes)
            yield* agent.send("second")
            return yield* Process.wait()
          }))
        return scenario(
          provider,
          {
            worker: [
              { toolCalls: [{ name: "note", arguments: { text: "a" } }] },
              { text: "noted it" },
              {
                expect: (r) => (userTexts(r).join("|") === "second" ? undefined : `user messages: ${userTexts(r)}`),
                toolCalls: [finish("resumed")]
              }
            ]
          },
          () => Effect.map(main(), (result) => expect(result).toBe("resumed"))
        )
      })
    }

    if (provider === "tmux") {
      it.live("an agent shut down in the middle of its work asks the model nothing more", () => {
        // The call's handler ends the process and never returns: the agent is shut down with the call pending.
        const main = Process.make("main", () =>
          Effect.gen(function* () {
            const worker = yield* Agent.make("worker")
            yield* worker.on("hold", { description: "Hold on", parameters: Schema.Struct({}) }, () =>
              Effect.zipRight(Process.done("held"), Effect.never))
            yield* worker.send("Hold on.")
            return yield* Process.wait()
          }))
        return scenario(provider, { worker: [{ toolCalls: [{ name: "hold", arguments: {} }] }] }, (server) =>
          Effect.gen(function* () {
            const executionId = yield* RunInfo.executionId
            expect(yield* main()).toBe("held")
            expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
            // pi (interactive) waits for its work to end before it shuts down: its call's answer must not start another turn.
            expect(turnsOf(yield* server.requests("worker"))).toBe(1)
          }))
      })
    }

    it.live("SIGTERM to a program with live agents leaves no tmux session and no pi", () =>
      Effect.gen(function* () {
        const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "program.ts")
        const proc = yield* Command.make(process.execPath, "--import", "tsx", fixture, provider, yield* tempHome).pipe(
          Command.workingDirectory(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")),
          Command.start
        )
        const line = yield* proc.stdout.pipe(
          Stream.decodeText(),
          Stream.splitLines,
          Stream.filter((line) => line.startsWith("{")),
          Stream.runHead,
          Effect.timeout("45 seconds")
        )
        const { ready: executionId } = JSON.parse(line._tag === "Some" ? line.value : "{}") as { ready: string }
        expect(executionId).toBeTypeOf("string")
        process.kill(proc.pid, "SIGTERM")
        const exitCode = yield* proc.exitCode.pipe(Effect.timeout("20 seconds"), Effect.either)
        expect(exitCode._tag).toBe("Right")
        expect(yield* noLeftovers(executionId)).toEqual({ sessions: [], pids: [] })
      }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
  })
