import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { built, eventually, ramure, readJsonl, startRun, tempHome, type FixtureRun } from "./helpers.js"

/** A live run of fixtures/discovery.ts. */
class Run extends Context.Tag("cli-test/DiscoveryRun")<Run, { readonly home: string; readonly run: FixtureRun }>() {}

const live = Layer.scoped(
  Run,
  Effect.gen(function* () {
    const home = yield* tempHome
    return { home, run: yield* startRun(home, [], {}, "discovery.ts") }
  })
).pipe(Layer.provideMerge(built))

layer(live, { timeout: "180 seconds", excludeTestServices: true })("ramure discovers what a run offers", (it) => {
  it.effect("status lists each endpoint with its signature and the first line of its description, one row each", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      const status = yield* ramure(home, ["status", run.id.slice(0, 8)])
      expect(status.code).toBe(0)
      const lines = status.stdout.split("\n")
      const endpoints = lines.slice(lines.indexOf("endpoints") + 1).filter((line) => line.length > 0)
      expect(endpoints).toEqual([
        "  main  add(a: number, b: number) — Add two numbers",
        "  main  echo(text: string, times?: integer = 1) — Echo the text back.",
        "  main  tag(labels: string[], strict: boolean) — Tag with labels"
      ])
      expect(status.stdout).not.toContain("Second line")
      expect(lines[1]).toBe("Tries discovery")
    }))

  it.effect("call makes key=value into the endpoint's types: a string stays a string, numbers, booleans and arrays are parsed", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      const id = run.id.slice(0, 8)
      const echoed = yield* ramure(home, ["call", id, "echo", "text=123", "times=2"])
      expect(echoed.code).toBe(0)
      expect(JSON.parse(echoed.stdout)).toEqual({ text: "123", type: "string", times: 2 })
      const tagged = yield* ramure(home, ["call", id, "tag", `labels=["a","b"]`, "strict=true"])
      expect(JSON.parse(tagged.stdout)).toEqual({ labels: ["a", "b"], strict: true })
      expect((yield* ramure(home, ["call", id, "add", "a=2", "b=40"])).stdout).toBe("42\n")
      // With one live run the id is optional.
      expect((yield* ramure(home, ["call", "echo", "text=true"])).stdout).toContain(`"text": "true"`)
      const log = readJsonl(path.join(home, "logs", run.id, "_runtime.jsonl"))
      const called = log.filter((entry) => entry.event._tag === "EndpointCalled").map((entry) => entry.event)
      expect(called[0]).toEqual({ _tag: "EndpointCalled", name: "echo", args: { text: "123", times: 2 }, caller: "cli" })
      expect(log.some((entry) => entry.event._tag === "EndpointReturned" && entry.event.caller === "cli")).toBe(true)
    }))

  it.effect("call --json prints the value as JSON, a string too", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      const id = run.id.slice(0, 8)
      expect((yield* ramure(home, ["call", "--json", id, "add", "a=1", "b=2"])).stdout).toBe("3\n")
      const echoed = yield* ramure(home, ["call", "--json", id, "echo", "text=hi"])
      expect(JSON.parse(echoed.stdout)).toEqual({ text: "hi", type: "string", times: 1 })
    }))

  it.effect("a word without = is refused: expected key=value", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      for (const args of [["call", "echo", "justakey"], ["call", run.id.slice(0, 8), "echo", "justakey"], ["call", "echo", "text=a", "justakey"]]) {
        const result = yield* ramure(home, args)
        expect(result.code).toBe(1)
        expect(result.stderr).toBe(`ramure: expected key=value, got "justakey"\n`)
      }
    }))

  it.effect("status counts pi's own tool calls beside ramure's, and the run's totals", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      const id = run.id.slice(0, 8)
      yield* ramure(home, ["send", id, "--agent", "solo", "work"])
      yield* eventually("solo's answer", Effect.sync(() =>
        readJsonl(path.join(home, "logs", run.id, "solo.jsonl")).some((entry) => entry.event._tag === "MessageEnded") || undefined))
      const status = (yield* ramure(home, ["status", id])).stdout
      expect(status).toMatch(/AGENT\s+STATE\s+MACHINE\s+TMUX\s+TOOLS\s+PI TOOLS\s+TOKENS IN\/OUT\s+COST/)
      expect(status).toMatch(/solo\s+idle\s+local \S+\s+-\s+0\s+1\s+100\/20\s+\$0\.5000/)
      expect(status).toContain("\ntotal: 0 tool calls, 1 pi tool calls, 1 model turn, 100/20 tokens in/out, $0.5000")
      const json = JSON.parse((yield* ramure(home, ["status", id, "--json"])).stdout)
      expect(json.totals).toEqual({ inputTokens: 100, outputTokens: 20, cost: 0.5, toolCalls: 0, piToolCalls: 1, turns: 1 })
      expect(json.agents.find((agent: { id: string }) => agent.id === "solo").piToolCalls).toBe(1)
    }))

  it.effect("send and connect to an agent that ended say that it ended, and how", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      const id = run.id.slice(0, 8)
      const expected = `ramure: agent gone of run ${id} has ended: released when its process main/helper ended; ` +
        `ramure tail ${id} --agent gone shows what it did\n`
      const sent = yield* ramure(home, ["send", id, "--agent", "gone", "hello?"])
      expect(sent).toMatchObject({ code: 1, stderr: expected })
      const connected = yield* ramure(home, ["connect", id, "--agent", "gone"])
      expect(connected).toMatchObject({ code: 1, stderr: expected })
    }))

  it.effect("ls shows the run's summary", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Run
      const listed = JSON.parse((yield* ramure(home, ["ls", "--json"])).stdout)
      expect(listed).toEqual([expect.objectContaining({ id: run.id, summary: "Tries discovery" })])
      expect((yield* ramure(home, ["ls"])).stdout).toMatch(/live\s+Tries discovery\n$/)
      expect(fs.existsSync(path.join(home, "logs", run.id, "STATUS.md"))).toBe(true)
    }))
})
