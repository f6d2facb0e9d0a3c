/**
 * `ramure web` over HTTP, against live runs of scripted agents: the page and
 * its API open only with the secret of the printed address, only for this
 * server's own Host and only on 127.0.0.1; a live run streams its entries and
 * status and is steered through its control channel; a finished run is read
 * from its logs.
 */
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { built, eventually, ramure, readJsonl, serveWeb, startRun, tempHome, type FixtureRun } from "./helpers.js"

interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** A plain HTTP request, with any headers (Host and Origin too). */
const request = (url: string, options: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string } = {}) =>
  Effect.async<Answer>((resume) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers ?? {} }, (response) => {
      let body = ""
      response.on("data", (chunk) => (body += chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, headers: response.headers, body })))
    })
    req.on("error", (error) => resume(Effect.succeed({ status: 0, headers: {}, body: String(error) })))
    req.end(options.body)
    return Effect.sync(() => req.destroy())
  })

const post = (url: string, body: unknown) =>
  Effect.map(
    request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    (answer) => ({ status: answer.status, ...JSON.parse(answer.body) as { ok: boolean; value?: unknown; error?: string } })
  )

interface SseEvent {
  readonly event: string
  readonly data: any
}

/** Read a run's event stream (into `seen`) until `until` holds for the events so far, or the stream ends; the events read. */
const events = (url: string, until: (events: ReadonlyArray<SseEvent>) => boolean, seen: Array<SseEvent> = []) =>
  Effect.async<ReadonlyArray<SseEvent>>((resume) => {
    let buffer = ""
    const req = http.get(url, (response) => {
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        buffer += chunk
        let at: number
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, at)
          buffer = buffer.slice(at + 2)
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message"
          const data = /^data: (.*)$/m.exec(block)?.[1]
          seen.push({ event, data: data === undefined ? undefined : JSON.parse(data) })
        }
        if (until(seen)) {
          req.destroy()
          resume(Effect.succeed(seen))
        }
      })
      response.on("end", () => resume(Effect.succeed(seen)))
    })
    return Effect.sync(() => req.destroy())
  })

const lastStatus = (seen: ReadonlyArray<SseEvent>) => seen.filter((e) => e.event === "batch").at(-1)?.data.status

class Web extends Context.Tag("cli-test/Web")<Web, { readonly home: string; readonly run: FixtureRun; readonly url: string }>() {}

const web = Layer.scoped(
  Web,
  Effect.gen(function* () {
    const home = yield* tempHome
    const run = yield* startRun(home)
    const url = yield* serveWeb(home, [run.id.slice(0, 8)])
    return { home, run, url }
  })
).pipe(Layer.provideMerge(built))

layer(web, { timeout: "180 seconds", excludeTestServices: true })("ramure web", (it) => {
  it.effect("prints an address with a secret and the run; only that address opens the page, for this Host, on 127.0.0.1", () =>
    Effect.gen(function* () {
      const { run, url } = yield* Web
      expect(url).toMatch(new RegExp(`#${run.id}$`))
      const base = url.replace(/#.*$/, "")
      const page = yield* request(base)
      expect(page.status).toBe(200)
      expect(page.body).toContain('<script src="app.js"')
      expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
      expect(page.headers["referrer-policy"]).toBe("no-referrer")
      expect((yield* request(`${base}app.js`)).status).toBe(200)

      const { port, secret } = /^http:\/\/127\.0\.0\.1:(?<port>\d+)\/(?<secret>[^/]+)\/$/.exec(base)!.groups!
      const other = `${secret!.slice(0, -1)}${secret!.endsWith("A") ? "B" : "A"}`
      for (const wrong of [`http://127.0.0.1:${port}/`, `http://127.0.0.1:${port}/${other}/`, `http://127.0.0.1:${port}/${other}/api/runs`, `http://127.0.0.1:${port}/api/runs`]) {
        const answer = yield* request(wrong)
        expect(answer.status).toBe(404)
        expect(answer.body).toBe("not found")
      }
      // A page of another site, reaching this port through a DNS name of its own, is refused.
      expect((yield* request(base, { headers: { host: `attacker.example:${port}` } })).status).toBe(403)
      expect((yield* request(base, { headers: { host: `localhost:${port}` } })).status).toBe(200)
      // Commands only come as JSON from this page's own origin.
      const call = `${base}api/runs/${run.id}/call`
      const body = JSON.stringify({ endpoint: "add", args: { a: 1, b: 2 } })
      expect((yield* request(call, { method: "POST", headers: { "content-type": "text/plain" }, body })).status).toBe(403)
      expect((yield* request(call, { method: "POST", headers: { "content-type": "application/json", origin: "http://attacker.example" }, body })).status).toBe(403)
      // Nothing listens on this machine's other addresses.
      const addresses = Object.values(os.networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === "IPv4")
      for (const address of addresses) {
        const answer = yield* request(`http://${address!.address}:${port}/${secret}/`)
        expect(answer.status).toBe(0)
        expect(answer.body).toContain("ECONNREFUSED")
      }
    }))

  it.effect("lists the runs of its home; a live run streams its entries and status; call and send reach the run, errors say why", () =>
    Effect.gen(function* () {
      const { home, run, url } = yield* Web
      const base = url.replace(/#.*$/, "")
      const runs = JSON.parse((yield* request(`${base}api/runs`)).body)
      expect(runs).toEqual([expect.objectContaining({ id: run.id, program: "fixture", live: true, agents: 2 })])

      const seen = yield* events(`${base}api/runs/${run.id}/events`, (seen) => lastStatus(seen)?.endpoints.length === 2)
      expect(seen[0]).toEqual({ event: "reset", data: { id: run.id, live: true } })
      const status = lastStatus(seen)
      expect(status.agents.map((agent: any) => [agent.id, agent.state])).toEqual([["alice", "idle"], ["bob", "idle"]])
      expect(status.endpoints.map((endpoint: any) => endpoint.name)).toEqual(["add", "big"])
      expect(status.endpoints[0]).toMatchObject({ process: "main", name: "add", parameters: { type: "object", required: ["a", "b"] } })
      const entries = seen.filter((e) => e.event === "batch").flatMap((e) => e.data.entries)
      expect(entries.map((entry: any) => entry.n)).toEqual(entries.map((_: unknown, i: number) => i + 1))

      const api = `${base}api/runs/${run.id}`
      expect(yield* post(`${api}/call`, { process: "main", endpoint: "add", args: { a: 2, b: 40 } })).toEqual({ status: 200, ok: true, value: 42 })
      const invalid = yield* post(`${api}/call`, { endpoint: "add", args: { a: 2, b: "forty" } })
      expect(invalid).toMatchObject({ status: 409, ok: false })
      expect(invalid.error).toMatch(/^endpoint main\.add failed: invalid arguments/)
      expect(yield* post(`${api}/call`, { endpoint: 7 })).toMatchObject({ status: 409, ok: false, error: "the request's body is not what this call takes" })

      expect(yield* post(`${api}/send`, { agent: "bob", text: "ping from the page" })).toEqual({ status: 200, ok: true, value: null })
      const delivered = yield* eventually("bob's message", Effect.sync(() =>
        readJsonl(path.join(home, "logs", run.id, "bob.jsonl")).find((entry) => entry.event._tag === "MessageDelivered")))
      expect(delivered.event).toEqual({ _tag: "MessageDelivered", text: "ping from the page", via: "control" })
      const unknown = yield* post(`${api}/send`, { agent: "carol", text: "hi" })
      expect(unknown).toMatchObject({ status: 409, ok: false })
      expect(unknown.error).toContain('no live agent "carol" (live: alice, bob)')
      expect((yield* post(`${base}api/runs/nonesuch/stop`, {})).status).toBe(404)
    }))

  it.effect("stop ends the run: the stream ends with its outcome; then the run is read from its logs, the same", () =>
    Effect.gen(function* () {
      const { run, url } = yield* Web
      const base = url.replace(/#.*$/, "")
      const seen: Array<SseEvent> = []
      const following = yield* Effect.fork(events(`${base}api/runs/${run.id}/events`, () => false, seen))
      yield* eventually("the follower's first entries", Effect.sync(() => seen.some((e) => e.event === "batch") || undefined))
      expect(yield* post(`${base}api/runs/${run.id}/stop`, {})).toEqual({ status: 200, ok: true, value: null })
      yield* run.process.exited
      const live = yield* following
      expect(live.at(-1)).toEqual({ event: "end", data: { outcome: "cancelled" } })
      expect(lastStatus(live)).toMatchObject({ outcome: "cancelled", processes: [{ path: "main", state: "cancelled" }] })

      const finished = yield* events(`${base}api/runs/${run.id}/events`, () => false)
      expect(finished[0]).toEqual({ event: "reset", data: { id: run.id, live: false } })
      expect(finished.at(-1)).toEqual({ event: "end", data: { outcome: "cancelled" } })
      const entries = (seen: ReadonlyArray<SseEvent>) => seen.filter((e) => e.event === "batch").flatMap((e) => e.data.entries)
      expect(entries(finished)).toEqual(entries(live))
      expect(lastStatus(finished)).toEqual(lastStatus(live))
      // A finished run takes no commands.
      const refused = yield* post(`${base}api/runs/${run.id}/send`, { agent: "bob", text: "late" })
      expect(refused).toMatchObject({ status: 409, ok: false })
      expect(refused.error).toContain("is not live")
    }))

  it.effect("a run killed with SIGKILL (its log has no end) is read from its logs and shown as crashed", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const base = (yield* serveWeb(home)).replace(/#.*$/, "")
      const run = yield* startRun(home, ["--agents", "solo"])
      yield* Effect.sync(() => run.process.child.kill("SIGKILL"))
      yield* run.process.exited
      const seen = yield* events(`${base}api/runs/${run.id}/events`, () => false)
      expect(seen.map((e) => e.event)).toEqual(["reset", "batch", "end"])
      expect(seen.at(-1)!.data).toEqual({ outcome: "crashed?" })
      expect(lastStatus(seen).agents.map((agent: any) => agent.id)).toEqual(["solo"])
    }).pipe(Effect.scoped))

  it.effect("an unknown run is one line on stderr and a non-zero exit", () =>
    Effect.gen(function* () {
      const { home } = yield* Web
      const result = yield* ramure(home, ["web", "zzzzzz"])
      expect(result.code).toBe(1)
      expect(result.stderr).toBe('ramure: no run matches "zzzzzz" (see `ramure ls --all`)\n')
    }))
})
