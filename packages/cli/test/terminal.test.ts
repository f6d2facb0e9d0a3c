/**
 * What a run wrote reaches the terminal harmless: the real CLI against a
 * live run whose names and texts carry escape sequences, BEL, C1 controls
 * and bidirectional overrides (fixtures/hostile.ts).
 */
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { built, ramure, startRun, tempHome, type FixtureRun } from "./helpers.js"
import { HOSTILE, VISIBLE_OSC52 } from "./fixtures/hostileText.js"

class Hostile extends Context.Tag("cli-test/Hostile")<Hostile, { readonly home: string; readonly run: FixtureRun }>() {}

const hostile = Layer.scoped(
  Hostile,
  Effect.gen(function* () {
    const home = yield* tempHome
    return { home, run: yield* startRun(home, [], {}, "hostile.ts") }
  })
).pipe(Layer.provideMerge(built))

/** Characters a terminal acts on (or hides), other than the line breaks between lines of output. */
const unsafe = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/gu

const unsafeIn = (text: string) => [...text.matchAll(unsafe)].map((match) => `U+${match[0].codePointAt(0)!.toString(16).padStart(4, "0")}`)

layer(hostile, { timeout: "180 seconds", excludeTestServices: true })("ramure shows what a run wrote harmlessly", (it) => {
  it.effect("ls, status, tail, send, call and errors print no control character: escapes, BEL, C1 and bidi overrides are made visible", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Hostile
      const outputs: Record<string, { stdout: string; stderr: string; code: number | null }> = {}
      for (const args of [
        ["ls"],
        ["ls", "--all"],
        ["status"],
        ["tail", "-n", "100"],
        ["send", `hello ${HOSTILE}`],
        ["call", "evil"],
        ["call", "failing"],
        ["tail", "--agent", `nobody${HOSTILE}`]
      ]) {
        outputs[args.join(" ")] = yield* ramure(home, args)
      }
      for (const [command, output] of Object.entries(outputs)) {
        expect({ command, stdout: unsafeIn(output.stdout), stderr: unsafeIn(output.stderr) }).toEqual({ command, stdout: [], stderr: [] })
      }
      // What was there is shown, made visible.
      expect(outputs["ls"]!.stdout).toContain(`fixture${VISIBLE_OSC52}`)
      expect(outputs["status"]!.stdout).toContain(`main${VISIBLE_OSC52}`)
      expect(outputs["status"]!.stdout).toContain(`endpoint ${VISIBLE_OSC52}`)
      for (const text of [`message ${VISIBLE_OSC52}`, `model ${VISIBLE_OSC52}`, `result ${VISIBLE_OSC52}`, `error ${VISIBLE_OSC52}`, `event${VISIBLE_OSC52}`]) {
        expect(outputs["tail -n 100"]!.stdout).toContain(text)
      }
      expect(outputs["call evil"]).toMatchObject({ code: 0, stdout: `value ${VISIBLE_OSC52.slice(0, -1)}␇␍\nnext\n` })
      expect(outputs["call failing"]!.code).not.toBe(0)
      expect(outputs["call failing"]!.stderr).toMatch(/^ramure: .*failure ␛\]52;c;aGFja2Vk␇.*next\n$/)
      expect(outputs["tail --agent nobody" + HOSTILE]!.stderr).toContain(`no agent "nobody${VISIBLE_OSC52}`)
      expect(outputs["tail --agent nobody" + HOSTILE]!.stderr.trimEnd().split("\n")).toHaveLength(1)
      // The message sent went through unchanged.
      const tail = yield* ramure(home, ["tail", "-n", "100", "--json"])
      const messages = tail.stdout.trim().split("\n").map((line) => JSON.parse(line)).filter((entry) => entry.event._tag === "MessageDelivered")
      expect(messages.map((entry) => entry.event.text)).toContain(`hello ${HOSTILE}`)
      expect(run.id).toMatch(/^[0-9a-f-]{36}$/)
    }))

  it.effect("tables stay tables: a line break in a name or a text keeps every row on its own line", () =>
    Effect.gen(function* () {
      const { home } = yield* Hostile
      const ls = (yield* ramure(home, ["ls"])).stdout.trimEnd().split("\n")
      expect(ls).toHaveLength(2)
      expect(ls[1]).toContain(" ⏎ next")
      const status = (yield* ramure(home, ["status"])).stdout.split("\n")
      const section = (name: string) => {
        const start = status.indexOf(name) + 1
        const end = status.indexOf("", start)
        return status.slice(start, end === -1 ? undefined : end)
      }
      expect(section("processes")).toHaveLength(1)
      expect(section("agents")).toHaveLength(2)
      expect(section("endpoints")).toHaveLength(2)
      for (const line of (yield* ramure(home, ["tail", "-n", "100"])).stdout.trimEnd().split("\n")) {
        expect(line).toMatch(/^\d\d:\d\d:\d\d /)
      }
    }))

  it.effect("--json stays valid JSON that gives back the exact strings, with no raw control character", () =>
    Effect.gen(function* () {
      const { home, run } = yield* Hostile
      const ls = yield* ramure(home, ["ls", "--json"])
      const status = yield* ramure(home, ["status", "--json"])
      const tail = yield* ramure(home, ["tail", "-n", "100", "--json"])
      for (const output of [ls, status, tail]) expect(unsafeIn(output.stdout)).toEqual([])
      expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ id: run.id, program: `fixture${HOSTILE}` })])
      const parsed = JSON.parse(status.stdout)
      expect(parsed.program).toBe(`fixture${HOSTILE}`)
      expect(parsed.processes.map((p: { path: string }) => p.path)).toEqual([`main${HOSTILE}`])
      expect(parsed.endpoints.map((e: { description: string }) => e.description)).toContain(`endpoint ${HOSTILE}`)
      const entries = tail.stdout.trim().split("\n").map((line) => JSON.parse(line))
      const texts = entries.flatMap((entry) => [entry.event.text, entry.event.args?.text]).filter((text) => typeof text === "string")
      expect(texts).toEqual(expect.arrayContaining([`message ${HOSTILE}`, `model ${HOSTILE}`, HOSTILE, `result ${HOSTILE}`, `error ${HOSTILE}`]))
    }))
})
