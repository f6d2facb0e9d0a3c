/**
 * What an agent can learn cannot take it further than its own path: a real pi
 * in tmux, driven by the scripted model, dumps its whole environment (its
 * own and pi's), its pi directory and the run's log files, then tries every
 * secret-looking word it found against the control channel and another
 * agent's path — all refused — and against its own path (its credential
 * works). No log line holds a secret, not even the one another agent printed.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import * as Agent from "@ramure/core/Agent"
import * as Process from "@ramure/core/Process"
import { RunInfo } from "@ramure/core/RunInfo"
import * as ScriptedModel from "@ramure/testing/ScriptedModel"
import { Deferred, Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Ramure from "ramure/Ramure"
import { sessionOf } from "../../core/src/internal/agent.js"
import { finish, finishTool, tempHome } from "../../pi-extension/test/helpers.js"
import * as Registry from "../src/Registry.js"

/**
 * Run by the prober (`node probe.mjs <other agent> <its own id> [<its pool member>]`): every word
 * of 16+ secret-like characters in `dump/` is presented to `/control`, to the
 * other agent's path, to the prober's own path and (a pooled pi) to its pool
 * member's path, as a WebSocket upgrade with the run's token header. What the
 * server answered goes to `dump/probe.json`.
 */
const probeScript = `
import fs from "node:fs"
import http from "node:http"
import path from "node:path"
const files = []
const walk = (dir) => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) walk(file)
    else if (entry.isFile()) files.push(file)
  }
}
walk("dump")
const words = new Set()
for (const file of files) {
  for (const word of fs.readFileSync(file, "utf8").split(/[^A-Za-z0-9_-]+/)) if (word.length >= 16) words.add(word)
}
const url = new URL(process.env.RAMURE_URL)
const attempt = (target, token) => new Promise((resolve) => {
  const request = http.request({
    host: url.hostname, port: url.port, path: target,
    headers: {
      Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "x-ramure-token": token
    }
  })
  request.on("upgrade", (_response, socket) => { socket.destroy(); resolve(101) })
  request.on("response", (response) => { response.resume(); resolve(response.statusCode) })
  request.on("error", (error) => resolve(String(error.message)))
  request.end()
})
const targets = { control: "/control", other: "/agents/" + process.argv[2], own: "/agents/" + process.argv[3] }
if (process.argv[4]) targets.member = "/pool/" + process.argv[4]
const results = []
for (const word of words) {
  for (const [target, where] of Object.entries(targets)) results.push({ target, word, status: await attempt(where, word) })
}
fs.writeFileSync("dump/probe.json", JSON.stringify({ files, results }))
`

/** Everything the agent can see of itself and the run's logs, copied to `dump/` (quietly). */
const dumpCommand = [
  "set -e",
  "mkdir -p dump/pi-dir dump/logs",
  "env > dump/env.txt",
  // pi's own environment, as it was started (its bash tool runs commands as pi's children).
  `tr '\\0' '\\n' < /proc/$PPID/environ > dump/pi-environ.txt`,
  `cp -rL "$PI_CODING_AGENT_DIR"/. dump/pi-dir/`,
  // The machine's directory is <home>/work/<run>/<agent>: the run's log files are <home>/logs/<run>/.
  `cp -r ../../../logs/"$RAMURE_EXECUTION_ID"/. dump/logs/`,
  "echo dumped"
].join("\n")

const probeCommand = (other: string, own: string) =>
  `cat > probe.mjs <<'EOF'\n${probeScript}\nEOF\n` +
  // A pooled pi was started as a pool member: pi's own environment says which.
  `member=$(tr '\\0' '\\n' < /proc/$PPID/environ | sed -n 's/^RAMURE_POOL_MEMBER=//p')\n` +
  `"$(readlink /proc/$PPID/exe)" probe.mjs ${other} ${own} $member && echo probed`

const bash = (command: string): ScriptedModel.ToolCallTurn => ({ name: "bash", arguments: { command } })

interface Probe {
  readonly files: ReadonlyArray<string>
  readonly results: ReadonlyArray<{ readonly target: string; readonly word: string; readonly status: number | string }>
}

const readTree = (directory: string): Array<string> =>
  fs.readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(directory, entry.name)
    return entry.isDirectory() ? readTree(file) : entry.isFile() ? [fs.readFileSync(file, "utf8")] : []
  })

describe("per-agent credentials, with real pi in tmux", () => {
  for (const pooled of [false, true]) {
    const how = pooled ? "a pi from the warm pool" : "a pi started for it"
    it.live(`an agent (${how}) that dumps its environment, its pi directory and the logs can open its own path only`, () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const server = yield* ScriptedModel.make({
        scripts: {
          // Prints its own credential: it reaches the log (pi reports the tool's output), and must not be readable there.
          other: [{ toolCalls: [bash("env | grep RAMURE_TOKEN")] }, { toolCalls: [{ name: "ready", arguments: {} }] }, { text: "(done)" }],
          prober: [
            { toolCalls: [bash(dumpCommand)] },
            { toolCalls: [bash(probeCommand("other", "prober"))] },
            { toolCalls: [finish("probed")] },
            { text: "(done)" }
          ]
        }
      })
      let secrets: { own: string; other: string; control: string } | undefined
      let executionId = ""
      let proberDirectory = ""
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          executionId = (yield* RunInfo).executionId
          const [other, prober] = yield* Effect.all([Agent.make("other"), Agent.make("prober")], { concurrency: "unbounded" })
          proberDirectory = prober.machine.cwd
          const [entry] = yield* Registry.list(home)
          secrets = { own: sessionOf(prober).secret, other: sessionOf(other).secret, control: entry!.entry.token }
          const ready = yield* Deferred.make<void>()
          yield* other.on("ready", { description: "Say you are done", parameters: Schema.Struct({}) }, () => Deferred.succeed(ready, undefined))
          yield* prober.on("finish", finishTool, ({ result }) => Process.done(result))
          yield* other.send("Show your credential.")
          yield* Deferred.await(ready)
          yield* prober.send("Find every credential you can, and try it.")
          return yield* Process.wait()
        }))
      const layer = Ramure.layer({
        home,
        program: "credentials-test",
        provider: "tmux",
        model: `${ScriptedModel.piProvider}/${ScriptedModel.piModel}`,
        // A pool needs one models.json for every agent: the scripted model tells them apart by a header.
        modelsJson: ScriptedModel.piModelsJson(server.baseUrl()),
        ...(pooled ? { pool: { size: 2 } } : {})
      })
      expect(yield* main().pipe(Effect.provide(layer))).toBe("probed")
      expect(yield* server.failures).toEqual([])

      const { control, other, own } = secrets!
      const dump = path.join(proberDirectory, "dump")
      const probe: Probe = JSON.parse(fs.readFileSync(path.join(dump, "probe.json"), "utf8"))
      // It saw its environment, pi's, its pi directory and the other agent's log file.
      expect(probe.files).toEqual(expect.arrayContaining(["dump/env.txt", "dump/pi-environ.txt", "dump/pi-dir/models.json", "dump/logs/other.jsonl"]))
      const dumped = readTree(dump).join("\n")
      // Its own credential is in its pi directory (the run's address file), also for a pooled pi, which has it from its assignment.
      expect(dumped).toContain(own)
      if (pooled) expect(dumped).toContain("RAMURE_POOL_MEMBER=")
      expect(dumped).not.toContain(other)
      expect(dumped).not.toContain(control)

      // Every word tried: nothing but its own credential opens anything, and that only its own path. A pooled pi
      // also has the credential of its pool member in its environment, which opens nothing once the pi is assigned.
      const opened = probe.results.filter((result) => result.status === 101)
      const environment = fs.readFileSync(path.join(dump, "env.txt"), "utf8")
      const member = /^RAMURE_TOKEN=(.*)$/m.exec(environment)?.[1]
      expect(opened).toEqual([{ target: "own", word: own, status: 101 }])
      // Refused: 401 where the path exists; the member's path is gone once it was assigned (404).
      const refusals: Record<string, number> = { control: 401, other: 401, own: 401, member: 404 }
      for (const target of ["control", "other", ...(pooled ? ["own", "member"] : [])]) {
        const tried = probe.results.filter((result) => result.target === target && result.word !== own)
        expect(tried.length).toBeGreaterThan(10)
        expect(tried.filter((result) => result.status !== refusals[target])).toEqual([])
      }

      // The other agent printed its credential; the log recorded that it did, not the credential.
      const logs = readTree(path.join(home, "logs", executionId)).join("\n")
      expect(logs).toContain("RAMURE_TOKEN=ramure_secret_[redacted]")
      for (const secret of [own, other, control, member!]) expect(logs).not.toContain(secret)
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), 180_000)
  }
})
