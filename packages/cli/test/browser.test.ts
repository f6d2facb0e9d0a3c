/**
 * `ramure web` in a real browser (Debian's Chromium, driven by
 * playwright-core) against a real run: pi agents in tmux and the scripted
 * model (fixtures/web-run.ts). The page shows the agents and their states,
 * the timeline grows as they work, a message from an agent's box reaches the
 * agent, a call from an endpoint's form reaches the endpoint, and the stop
 * button ends the run. With RAMURE_WEB_SCREENSHOT=<file>, the page is saved
 * there as it is after the run has worked (the README's screenshot).
 */
import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { chromium, type Page } from "playwright-core"
import { build, eventually, readJsonl, serveWeb, startRun, tempHome, tmuxSocket } from "./helpers.js"

/** Chromium as this machine runs it headless, with a fresh profile; closed with the scope. */
const browserPage = Effect.acquireRelease(
  Effect.promise(async () => {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-chromium-"))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      viewport: { width: 1360, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
    const page = context.pages()[0] ?? (await context.newPage())
    const problems: Array<string> = []
    page.on("pageerror", (error) => problems.push(error.message))
    page.on("console", (message) => message.type() === "error" && problems.push(message.text()))
    return { context, page, profile, problems }
  }),
  ({ context, profile }) =>
    Effect.promise(async () => {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    })
)

const count = (page: Page, selector: string) => Effect.promise(() => page.locator(selector).count())
/** Wait (polling the page from here: its policy allows no script of ours in it) until `check` holds. */
const waitFor = (what: string, check: Effect.Effect<boolean>) =>
  eventually(what, Effect.map(check, (ok) => (ok ? true : undefined)), "60 seconds")
const text = (page: Page, selector: string) => Effect.promise(() => page.locator(selector).innerText())
const bars = (page: Page, kind: string, agent: string) => count(page, `#timeline [data-kind=${kind}][data-agent=${agent}]`)
const is = <A>(effect: Effect.Effect<A>, predicate: (a: A) => boolean) => Effect.map(effect, predicate)

it.scopedLive("in Chromium, against pi agents in tmux: agents and states, a growing timeline, a message, an endpoint call, stop", () =>
  Effect.gen(function* () {
    yield* build
    const home = yield* tempHome
    const socket = yield* tmuxSocket
    const run = yield* startRun(home, [], { RAMURE_TMUX_SOCKET: socket }, "web-run.ts")
    const url = yield* serveWeb(home, [run.id.slice(0, 8)])
    const { page, problems } = yield* browserPage
    yield* Effect.promise(() => page.goto(url))

    // The agents, ready after their first work (the page has caught up with the log: the builder's
    // three turns and the auditor's two are drawn), with their model, machine and tmux session.
    yield* waitFor("the builder's first turns", is(bars(page, "turn", "builder"), (n) => n === 3))
    yield* waitFor("the auditor's first turns", is(bars(page, "turn", "auditor"), (n) => n === 2))
    yield* waitFor("both agents ready", is(count(page, "article[data-state=idle]"), (n) => n === 2))
    expect(yield* count(page, "article form.message >> visible=true")).toBe(2)
    const builder = yield* text(page, "article[data-agent=builder]")
    expect(builder).toContain("ready")
    expect(builder).toContain("ramure-scripted/scripted · tmux")
    expect(builder).toContain(`ramure-${run.id.slice(0, 8)}-builder`)
    expect(builder).toMatch(/1 tool call\b/)
    expect(builder).toMatch(/\$0\.0\d{3}/)
    expect(builder).toMatch(/budget: cost \$0\.0\d{3}\/\$1\.0000 · on exceeded: fail · ok/)
    expect(yield* text(page, "article[data-agent=auditor]")).not.toContain("budget:")
    expect(yield* text(page, "#run-state")).toBe("live")
    expect(yield* text(page, "#processes")).toMatch(/review\s+running/)

    // The timeline: the builder's three turns (bash, submit, text) and the auditor's two, the tools in them.
    expect(yield* count(page, "#timeline [data-kind=turn][data-agent=builder]")).toBe(3)
    expect(yield* count(page, "#timeline [data-kind=turn][data-agent=auditor]")).toBe(2)
    expect(yield* count(page, "#timeline [data-kind=tool][data-agent=builder]")).toBe(1)
    expect(yield* count(page, "#timeline [data-kind=pitool][data-agent=builder]")).toBe(1)
    expect(yield* count(page, "#timeline [data-kind=pitool][data-agent=auditor]")).toBe(1)
    expect(yield* Effect.promise(() => page.locator("#timeline [data-kind=tool][data-agent=builder] title").textContent())).toContain("submit")

    // A message from the builder's box reaches the builder, whose answer is a fourth turn.
    yield* Effect.promise(() => page.fill("article[data-agent=builder] input[name=message]", "hello from the page"))
    yield* Effect.promise(() => page.click("article[data-agent=builder] button[type=submit]"))
    yield* waitFor("the message to be delivered", is(text(page, "article[data-agent=builder] [data-result]"), (t) => t === "delivered"))
    yield* waitFor("the builder's fourth turn", is(bars(page, "turn", "builder"), (n) => n === 4))
    yield* waitFor("the builder's answer in the log", is(text(page, "#log"), (t) => t.includes("assistant: Hello, page!")))
    const builderLog = readJsonl(path.join(home, "logs", run.id, "builder.jsonl"))
    expect(builderLog.filter((entry) => entry.event._tag === "MessageDelivered").map((entry) => entry.event))
      .toContainEqual({ _tag: "MessageDelivered", text: "hello from the page", via: "control" })

    // A call from the endpoint's form reaches the endpoint; the auditor then works on the task.
    yield* Effect.promise(() => page.fill("form[data-endpoint=assign] input[name=task]", "ship the docs"))
    yield* Effect.promise(() => page.fill("form[data-endpoint=assign] input[name=priority]", "2"))
    yield* Effect.promise(() => page.check("form[data-endpoint=assign] input[name=urgent]"))
    yield* Effect.promise(() => page.click("form[data-endpoint=assign] button[type=submit]"))
    yield* waitFor("the endpoint's answer", is(text(page, "form[data-endpoint=assign] [data-result]"), (t) => t === '→ "assigned to auditor"'))
    const called = yield* eventually("the endpoint call in the log", Effect.sync(() =>
      readJsonl(path.join(home, "logs", run.id, "_runtime.jsonl")).find((entry) => entry.event._tag === "EndpointCalled")))
    expect(called.event).toEqual({ _tag: "EndpointCalled", name: "assign", args: { task: "ship the docs", priority: 2, urgent: true }, caller: "cli" })
    yield* waitFor("the auditor's turns on the task", is(bars(page, "turn", "auditor"), (n) => n === 4))
    yield* waitFor("the auditor's bash on the task", is(bars(page, "pitool", "auditor"), (n) => n === 2))
    yield* waitFor("the auditor idle again", is(count(page, "article[data-agent=auditor][data-state=idle]"), (n) => n === 1))
    expect(yield* text(page, "#log")).toContain("Task: ship the docs (priority 2, urgent)")

    // The log's filters.
    yield* Effect.promise(() => page.selectOption("#log-agent", "auditor"))
    yield* Effect.promise(() => page.selectOption("#log-kind", "tools"))
    const filtered = yield* Effect.promise(() => page.locator("#log li .subject").allInnerTexts())
    expect(filtered.length).toBeGreaterThan(0)
    expect(new Set(filtered)).toEqual(new Set(["auditor"]))
    yield* Effect.promise(() => page.selectOption("#log-agent", ""))
    yield* Effect.promise(() => page.selectOption("#log-kind", ""))

    const screenshot = process.env.RAMURE_WEB_SCREENSHOT
    if (screenshot !== undefined && screenshot !== "") {
      yield* Effect.promise(() => page.screenshot({ path: screenshot, fullPage: true }))
    }

    // Stop (two clicks) ends the run; the page says how it ended and offers no more commands.
    yield* Effect.promise(() => page.click("#stop"))
    expect(yield* text(page, "#stop")).toBe("Really stop?")
    yield* Effect.promise(() => page.click("#stop"))
    yield* run.process.exited
    yield* waitFor("the run's end", is(text(page, "#run-state"), (t) => t === "cancelled"))
    expect(yield* Effect.promise(() => page.locator("#stop").isHidden())).toBe(true)
    expect(yield* count(page, "article form.message >> visible=true")).toBe(0)
    expect(yield* count(page, "form[data-endpoint] >> visible=true")).toBe(0)
    expect(yield* text(page, "#processes")).toMatch(/review\s+cancelled/)
    expect(problems).toEqual([])
  }), 240_000)
