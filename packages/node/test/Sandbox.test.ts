/**
 * Sandboxed machines with real bubblewrap (no pi: programs are shell and
 * node commands). bubblewrap must be installed (`.ci/run` installs it).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schedule, Schema } from "effect"
import { execFileSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Agent from "@ramure/core/Agent"
import { MachineProvider, type MachineOptions } from "@ramure/core/Machine"
import * as Process from "@ramure/core/Process"
import * as RunInfo from "@ramure/core/RunInfo"
import { Run } from "@ramure/core/Run"
import { scripted, tempHome } from "../../core/test/helpers.js"

/** A secret in the real home directory, and one in a directory of this host outside every machine. */
const secretName = `.ramure-sandbox-test-${crypto.randomUUID()}`
const homeSecret = path.join(os.homedir(), secretName)
const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-sandbox-outside-"))
fs.writeFileSync(homeSecret, "home secret", { mode: 0o600 })
fs.writeFileSync(path.join(outside, "secret.txt"), "outside secret")

afterAll(() => {
  fs.rmSync(homeSecret, { force: true })
  fs.rmSync(outside, { recursive: true, force: true })
})

const make = (options: MachineOptions) => Effect.flatMap(MachineProvider, (provider) => provider.make(options))

/** Processes of this host whose command line contains `marker` (a fresh uuid: nothing else can match it). */
const processesWith = (marker: string): Array<number> =>
  fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker)
    } catch {
      return false
    }
  })

/** Poll `check` (every 50 ms, at most 20 s) until it returns a value. */
const eventually = <A>(check: () => A | undefined) =>
  Effect.suspend(() => {
    const value = check()
    return value === undefined ? Effect.fail("not yet") : Effect.succeed(value)
  }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds"))))

/** Wait until `file` exists (and is complete: written by rename or at once); its contents. */
const fileAppears = (file: string) => eventually(() => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined))

const run = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.scoped(effect).pipe(Effect.provide(scripted({}, { home: tempHome(), register: false }))) as Effect.Effect<A, E>

describe("Sandboxed machines (bubblewrap)", () => {
  it.live("a sandboxed command cannot read the user's home, other machines' directories or ramure's files, nor write outside its directory", () =>
    run(Effect.gen(function* () {
      const { executionId, home } = yield* RunInfo.RunInfo
      const other = yield* make({ name: "other" })
      fs.writeFileSync(path.join(other.cwd, "theirs.txt"), "other agent's file")
      const box = yield* make({ name: "box", sandbox: true })
      const sh = (command: string) => box.exec(command)

      const secret = yield* sh(`cat ${homeSecret}`)
      expect(secret.exitCode).not.toBe(0)
      expect(secret.stderr).toContain("No such file or directory")
      expect((yield* sh(`ls -A ${os.homedir()}`)).stdout).not.toContain(secretName)
      expect((yield* sh(`cat ${path.join(outside, "secret.txt")}`)).exitCode).not.toBe(0)
      expect((yield* sh(`cat ${path.join(other.cwd, "theirs.txt")}`)).exitCode).not.toBe(0)
      // Of RAMURE_HOME, only the path down to its own directory exists.
      expect((yield* sh(`ls -A ${home}`)).stdout.trim()).toBe("work")
      expect((yield* sh(`ls -A ${RunInfo.workDirectory(home, executionId)}`)).stdout.trim()).toBe("box")
      expect((yield* sh("cat /etc/shadow")).stdout).toBe("")

      // Its own directory is writable and shared with the host; nothing else is.
      expect((yield* sh("echo made inside > made.txt")).exitCode).toBe(0)
      expect(fs.readFileSync(path.join(box.cwd, "made.txt"), "utf8")).toBe("made inside\n")
      for (const target of ["/usr/planted", "/etc/planted", path.join(outside, "planted.txt")]) {
        expect((yield* sh(`echo x > ${target}`)).exitCode, target).not.toBe(0)
      }
      // Its home is an empty scratch directory: what it writes there never reaches the host.
      const planted = path.join(os.homedir(), `${secretName}-planted`)
      yield* sh(`echo x > ${planted}`)
      for (const target of ["/usr/planted", "/etc/planted", path.join(outside, "planted.txt"), planted]) {
        expect(fs.existsSync(target), target).toBe(false)
      }
      // Its /tmp is its own.
      const scratch = `ramure-sandbox-${crypto.randomUUID()}`
      expect((yield* sh(`echo temp > /tmp/${scratch} && cat /tmp/${scratch}`)).stdout).toBe("temp\n")
      expect(fs.existsSync(path.join("/tmp", scratch))).toBe(false)
    })))

  it.live("a sandboxed command runs node and git, sees the system read-only, and has no capabilities", () =>
    run(Effect.gen(function* () {
      const box = yield* make({ name: "box", sandbox: true })
      const node = yield* box.exec("node -e 'console.log(process.version)'")
      expect(node.stdout.trim()).toBe(process.version)
      expect((yield* box.exec("git init -q repo && git -C repo status --short && echo ok")).stdout).toContain("ok")
      expect((yield* box.exec("grep CapEff /proc/self/status")).stdout).toMatch(/CapEff:\s+0+\n/)
      expect((yield* box.exec("touch /usr/bin/planted")).stderr).toContain("Read-only file system")
    })))

  it.live("only ramure's environment reaches a sandboxed command, never the orchestrator's", () =>
    run(Effect.gen(function* () {
      const variable = `RAMURE_SANDBOX_LEAK_${crypto.randomBytes(4).toString("hex")}`
      process.env[variable] = "orchestrator secret"
      yield* Effect.addFinalizer(() => Effect.sync(() => delete process.env[variable]))
      const box = yield* make({ name: "box", sandbox: true })
      const env = (yield* box.exec("env", { env: { GIVEN: "by exec" } })).stdout
      expect(env).not.toContain(variable)
      expect(env).toContain("GIVEN=by exec")
      expect(env).toContain(`HOME=${os.homedir()}`)

      // A spawned program gets its spec's environment, through a file the sandbox deletes once read.
      yield* box.spawn({ name: "env-dump", command: "sh", args: ["-c", "env > spawned-env.txt"], env: { FROM_SPEC: "yes" } })
      const spawned = yield* fileAppears(path.join(box.cwd, "spawned-env.txt"))
      expect(spawned).toContain("FROM_SPEC=yes")
      expect(spawned).not.toContain(variable)
    })))

  it.live("releasing a sandboxed machine kills everything its programs started, daemons included", () =>
    Effect.gen(function* () {
      const marker = `ramure-marker-${crypto.randomUUID()}`
      yield* run(Effect.gen(function* () {
        const box = yield* make({ name: "box", sandbox: true })
        // A daemon in its own session, which a kill of the program's process group would not reach.
        yield* box.spawn({
          name: "daemon",
          command: "bash",
          args: ["-c", `setsid bash -c 'sleep 600; : ${marker}' & echo started > started.txt; sleep 600; : ${marker}`],
          env: {}
        })
        yield* fileAppears(path.join(box.cwd, "started.txt"))
        // The program and the daemon (each a bash with the marker in its command line).
        const before = yield* eventually(() => {
          const pids = processesWith(marker)
          return pids.length >= 2 ? pids : undefined
        })
        expect(before.length).toBeGreaterThanOrEqual(2)
      }))
      // Released: the sandbox's process namespace is gone, and everything in it.
      expect(yield* eventually(() => (processesWith(marker).length === 0 ? "gone" : undefined))).toBe("gone")
    }))

  it.live("without a network a sandboxed program reaches the run's port and forwarded ports, and nothing else", () =>
    Effect.gen(function* () {
      const listen = Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer((socket) => socket.end("hello from the host\n"))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      const forwarded = yield* listen
      const blocked = yield* listen
      const port = (server: net.Server) => (server.address() as net.AddressInfo).port
      yield* run(Effect.gen(function* () {
        const runPort = Number(new URL((yield* Run).url).port)
        const box = yield* make({ name: "box", sandbox: { network: "none", forwardPorts: [port(forwarded)] } })
        // The host's servers answer and close; the run's WebSocket server waits for a request: connecting is enough.
        const probe = `
          const net = require("node:net")
          const reach = (port, read) => new Promise((resolve) => {
            const socket = net.connect(port, "127.0.0.1")
            let data = ""
            socket.on("data", (chunk) => (data += chunk))
            socket.on("connect", () => { if (!read) { socket.destroy(); resolve("connected") } })
            socket.on("end", () => resolve("read " + data.trim()))
            socket.on("error", (error) => resolve(error.code))
          })
          Promise.all([reach(${port(forwarded)}, true), reach(${port(blocked)}, true), reach(${runPort}, false)]).then((results) =>
            require("node:fs").writeFileSync("reach.json", JSON.stringify(results)))`
        yield* box.spawn({ name: "probe", command: process.execPath, args: ["-e", probe], env: {} })
        const results = JSON.parse(yield* fileAppears(path.join(box.cwd, "reach.json")))
        expect(results).toEqual(["read hello from the host", "ECONNREFUSED", "connected"])
        // exec has no network at all.
        const direct = yield* box.exec(`node -e 'require("node:net").connect(${port(forwarded)}, "127.0.0.1").on("error", (e) => console.log(e.code))'`)
        expect(direct.stdout.trim()).toBe("ECONNREFUSED")
      }))
    }).pipe(Effect.scoped))

  it.live("readFile and writeFile work on a sandboxed machine and stay in its directory", () =>
    run(Effect.gen(function* () {
      const box = yield* make({ name: "box", sandbox: true })
      yield* box.writeFile("dir/note.txt", "from the process")
      expect((yield* box.exec("cat dir/note.txt")).stdout).toBe("from the process")
      expect(new TextDecoder().decode(yield* box.readFile("dir/note.txt"))).toBe("from the process")
      const escape = yield* Effect.flip(box.readFile(homeSecret))
      expect(escape.message).toContain("escapes the machine's working directory")
    })))

  it.live("send_file between a sandboxed agent and another delivers into the receiver's directory, which its sandbox sees", () => {
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const [sender, receiver] = yield* Effect.all([Agent.make("sender", { sandbox: true }), Agent.make("receiver", { sandbox: true })])
        // The file exists before the sender is given send_file (it calls it at once).
        yield* sender.machine.writeFile("report.txt", "made by the sender")
        yield* Agent.connect(sender, receiver, { direction: "a->b" })
        yield* receiver.on("got", { description: "", parameters: Schema.Struct({}) }, () =>
          Effect.flatMap(receiver.exec("cat inbox/report.txt"), (result) => Process.done(result.stdout)))
        return yield* Process.wait()
      }))
    return main().pipe(
      Effect.provide(scripted({
        sender: (driver) => Effect.zipRight(driver.waitForTool("send_file"), driver.call("send_file", { to: "receiver", path: "report.txt", dest: "inbox/report.txt" })),
        receiver: (driver) => Effect.gen(function* () {
          yield* driver.nextMessage
          yield* driver.waitForTool("got")
          yield* driver.call("got", {})
        })
      }, { home: tempHome(), register: false })),
      Effect.map((text) => expect(text).toBe("made by the sender"))
    )
  })

  it.live("the machine's description carries the sandbox, so a shell started with it sees what the machine sees", () =>
    run(Effect.gen(function* () {
      const box = yield* make({ name: "box", sandbox: true })
      yield* box.writeFile("here.txt", "inside")
      const command = box.describe.sandbox!.command
      expect(box.describe.sandbox!.network).toBe("host")
      const out = execFileSync(command[0]!, [...command.slice(1), "--", "/bin/sh", "-c", `pwd; cat here.txt; cat ${homeSecret} 2>&1 || true`], {
        encoding: "utf8"
      })
      expect(out).toBe(`${box.cwd}\ninsidecat: ${homeSecret}: No such file or directory\n`)
    })))

  it.live("bad sandbox settings are MachineErrors", () =>
    run(Effect.gen(function* () {
      const missing = yield* Effect.flip(make({ name: "a", sandbox: { readOnly: [path.join(outside, "nope")] } }))
      expect(missing).toMatchObject({ _tag: "MachineError", message: expect.stringContaining("must be absolute and exist") })
      const remote = yield* Effect.flip(make({ name: "b", sandbox: true, host: "elsewhere" }))
      expect(remote).toMatchObject({ _tag: "MachineError", message: expect.stringContaining("run on this host") })
    })))
})
