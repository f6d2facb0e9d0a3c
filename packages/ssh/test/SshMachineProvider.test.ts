/**
 * The machine contract over ssh, against real sshd servers in network
 * namespaces (see sshHosts.ts). Needs root; CI runs it as root.
 */
import * as Command from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { Machine, MachineError } from "@ramure/core/Machine"
import { MachineProvider } from "@ramure/core/Machine"
import * as Ramure from "ramure/Ramure"
import { RunInfo } from "@ramure/core/RunInfo"
import { Run } from "@ramure/core/Run"
import * as ScriptedAgents from "@ramure/testing/ScriptedAgents"
import * as SshMachineProvider from "../src/SshMachineProvider.js"
import { asMade, outsideDirectory, SECRET, swapper, untouched } from "../../core/test/files.js"
import { tempHome } from "../../core/test/helpers.js"
import * as SshHosts from "./sshHosts.js"

class Hosts extends Context.Tag("test/Hosts")<Hosts, SshHosts.TestHosts>() {}

const unavailable = SshHosts.unavailable()
if (unavailable !== undefined) {
  if (process.env.CI) throw new Error(`ssh machine tests cannot run, and CI must run them: ${unavailable}`)
  console.warn(`SshMachineProvider tests skipped: ${unavailable}`)
}

/** A run (scripted agents, ssh machines on `hosts`) for one test. */
const run = (hosts: SshHosts.TestHosts, home: string, extra: ReadonlyArray<SshMachineProvider.HostOptions> = []) =>
  Ramure.make({
    home,
    program: "ssh-test",
    register: false,
    handleSignals: false,
    launcher: ScriptedAgents.layer({}),
    machines: SshMachineProvider.layer({
      hosts: [...hosts.options(["false"]), ...extra],
      pollInterval: "100 millis"
    })
  })

const withRun = <A, E>(
  body: (hosts: SshHosts.TestHosts) => Effect.Effect<A, E, any>,
  extra: ReadonlyArray<SshMachineProvider.HostOptions> = []
) =>
  Effect.gen(function* () {
    const hosts = yield* Hosts
    const home = yield* Effect.acquireRelease(Effect.sync(tempHome), (home) => Effect.sync(() => fs.rmSync(home, { recursive: true, force: true })))
    return yield* body(hosts).pipe(Effect.scoped, Effect.provide(run(hosts, home, extra)))
  }).pipe(Effect.scoped) as Effect.Effect<A, E, Hosts>

const makeMachine = (name: string, host?: string) =>
  Effect.flatMap(MachineProvider, (provider) => provider.make(host === undefined ? { name } : { name, host }))

/** Read until `done` holds (at most 5 s); the last value read. */
const pollUntil = <A>(read: () => A, done: (a: A) => boolean) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 5000
    while (true) {
      const value = read()
      if (done(value) || Date.now() > deadline) return value
      yield* Effect.sleep("50 millis")
    }
  })

/** The pid of the master connection of `machine`'s host, as ssh reports it. */
const masterPid = (machine: Machine): number => {
  const { controlPath, destination } = machine.describe.ssh!
  const out = execFileSync("sh", ["-c", `ssh -S '${controlPath}' -O check '${destination}' 2>&1 || true`], { encoding: "utf8" })
  return Number(/pid=(\d+)/.exec(out)?.[1])
}

describe.skipIf(unavailable !== undefined)("SshMachineProvider", () => {
  layer(Layer.scoped(Hosts, SshHosts.make(2)).pipe(Layer.provide(NodeContext.layer)), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.effect("exec runs on the host, in the machine's directory, with its environment and exit code", () =>
      withRun((hosts) =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m", "a")
          const a = hosts.hosts[0]!
          expect(machine.describe).toMatchObject({ id: "m", kind: "ssh", host: "a", ssh: { destination: a.address, tmuxSocket: a.tmuxSocket } })
          expect(machine.cwd.startsWith(fs.realpathSync(a.root))).toBe(true)
          const result = yield* machine.exec(`echo "$SSH_CONNECTION"; pwd; echo "$GREETING"; exit 7`, { env: { GREETING: "it's me" } })
          const [connection, cwd, greeting] = result.stdout.trim().split("\n")
          expect(connection).toContain(a.address)
          expect(cwd).toBe(machine.cwd)
          expect(greeting).toBe("it's me")
          expect(result.exitCode).toBe(7)
        })
      ))

    it.effect("exec times out with 124 and kills the command on the host", () =>
      withRun((hosts) =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m", "b")
          const started = Date.now()
          const result = yield* machine.exec("sleep 31.7; echo finished", { timeout: "500 millis" })
          expect(result.exitCode).toBe(124)
          expect(Date.now() - started).toBeLessThan(4000)
          expect(hosts.remote(hosts.hosts[1]!, "pgrep -f '[s]leep 31.7' || echo none").trim()).toBe("none")
        })
      ))

    it.effect("an interrupted exec kills the command on the host", () =>
      withRun((hosts) =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m", "a")
          const fiber = yield* Effect.fork(machine.exec("sleep 33.3"))
          const running = () => hosts.remote(hosts.hosts[0]!, "pgrep -f '[s]leep 33.3' || echo none").trim()
          expect(yield* pollUntil(running, (out) => out !== "none")).not.toBe("none")
          yield* Fiber.interrupt(fiber)
          expect(yield* pollUntil(running, (out) => out === "none")).toBe("none")
        })
      ))

    it.effect("files: bytes round-trip, directories are created, nothing escapes the working directory", () =>
      withRun(() =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m")
          const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256)
          yield* machine.writeFile("deep/dir/data.bin", bytes)
          expect(yield* machine.readFile("deep/dir/data.bin")).toEqual(bytes)
          yield* machine.writeFile("note.txt", "hello")
          expect((yield* machine.exec("cat note.txt")).stdout).toBe("hello")
          yield* machine.writeFile("empty.txt", "")
          expect(yield* machine.readFile("empty.txt")).toEqual(new Uint8Array(0))

          yield* machine.exec("ln -s /etc outside")
          for (const path of ["../escape.txt", "/etc/hostname", "outside/passwd", "outside/new/x", "deep/../../x"]) {
            const read = yield* Effect.flip(machine.readFile(path))
            expect(read.message).toContain("escapes")
            const write = yield* Effect.flip(machine.writeFile(path, "x"))
            expect(write.message).toContain("escapes")
          }
          // A directory link that stays inside is fine.
          yield* machine.exec("ln -s deep/dir inner")
          expect(yield* machine.readFile("inner/data.bin")).toEqual(bytes)
          yield* machine.writeFile("inner/more.txt", "more")
          expect((yield* machine.exec("cat deep/dir/more.txt")).stdout).toBe("more")
        })
      ))

    it.effect("files: links, hard links, FIFOs and devices are refused or replaced on the host as here; FIFOs do not block", () =>
      withRun(() =>
        Effect.gen(function* () {
          const out = yield* outsideDirectory
          const provider = yield* MachineProvider
          const machine = yield* makeMachine("m", "a")
          const dev = yield* provider.make({ name: "dev", host: "b", cwd: "/dev" })
          const fifos = Array.from({ length: 8 }, (_, i) => `fifo${i}`)
          yield* machine.exec([
            `ln -s '${out}/secret.txt' filelink`,
            `ln '${out}/secret.txt' hardlink`,
            "ln -s /dev/zero zero",
            "echo plain > plain.txt",
            "mkdir dir",
            ...fifos.map((fifo) => `mkfifo ${fifo}`)
          ].join(" && "))
          const refusal = (attempt: Effect.Effect<unknown, MachineError>) => Effect.map(Effect.flip(attempt), (error) => error.message)
          const [fromFifos, plain] = yield* Effect.all([
            Effect.all(fifos.map((fifo) => refusal(machine.readFile(fifo))), { concurrency: "unbounded" }),
            machine.readFile("plain.txt")
          ], { concurrency: "unbounded" })
          expect(fromFifos).toEqual(fifos.map((fifo) => `readFile on host a: ${fifo} is a FIFO, not a regular file`))
          expect(new TextDecoder().decode(plain)).toBe("plain\n")
          expect(yield* refusal(machine.readFile("filelink"))).toBe("readFile on host a: filelink is a symbolic link (links are not followed)")
          expect(yield* refusal(machine.readFile("zero"))).toBe("readFile on host a: zero is a symbolic link (links are not followed)")
          expect(yield* refusal(machine.readFile("hardlink"))).toContain("readFile on host a: hardlink has 2 hard links")
          expect(yield* refusal(machine.readFile("dir"))).toBe("readFile on host a: dir is a directory, not a regular file")
          expect(yield* refusal(machine.readFile("plain.txt", { maxBytes: 5 }))).toBe("readFile on host a: plain.txt is 6 bytes, more than the limit of 5")
          expect(yield* refusal(machine.readFile("missing"))).toBe("readFile on host a: no such file: missing")
          expect(yield* refusal(dev.readFile("zero"))).toBe("readFile on host b: zero is a character device, not a regular file")
          expect(yield* refusal(dev.readFile("null"))).toBe("readFile on host b: null is a character device, not a regular file")

          // Writes replace what has the name, never writing through it; the replaced file's permissions stay.
          yield* machine.exec(`ln '${out}/victim.txt' victimlink && ln -s '${out}/victim.txt' victimsymlink && chmod 750 plain.txt`)
          for (const name of ["victimlink", "victimsymlink", "fifo0", "plain.txt"]) yield* machine.writeFile(name, `new ${name}`)
          expect((yield* machine.exec("for f in victimlink victimsymlink fifo0 plain.txt; do stat -c '%F %h %a' $f; cat $f; echo; done")).stdout).toBe(
            "regular file 1 644\nnew victimlink\nregular file 1 644\nnew victimsymlink\nregular file 1 644\nnew fifo0\nregular file 1 750\nnew plain.txt\n"
          )
          yield* machine.writeFile("script.sh", "echo", { mode: 0o700 })
          expect((yield* machine.exec("stat -c %a script.sh")).stdout).toBe("700\n")
          expect(yield* refusal(machine.writeFile("dir", "x"))).toBe("writeFile on host a: dir is a directory")
          expect((yield* machine.exec("ls -A | grep -c '^.ramure-' || true")).stdout.trim()).toBe("0")
          expect(untouched(out)).toEqual(asMade)
        })
      ))

    it.effect("files stream between machines on two hosts and on one, many at once, without waiting on each other", () =>
      withRun(() =>
        Effect.gen(function* () {
          const [a1, a2, b1] = yield* Effect.all([makeMachine("a1", "a"), makeMachine("a2", "a"), makeMachine("b1", "b")])
          yield* a1.exec("head -c 3000000 /dev/urandom > big.bin && chmod 640 big.bin")
          const copy = (from: Machine, to: Machine, dest: string) =>
            Effect.scoped(Effect.flatMap(from.openFile("big.bin"), (source) => to.writeFileFrom(dest, source, { mode: source.mode })))
          // More copies between two machines of one host than it has channels: each holds one for reading and one for writing.
          yield* Effect.all([
            copy(a1, b1, "big.bin"),
            ...Array.from({ length: 12 }, (_, i) => copy(a1, a2, `copies/${i}.bin`))
          ], { concurrency: "unbounded" })
          const sum = (machine: Machine, files: string) => Effect.map(machine.exec(`sha256sum ${files} | cut -d' ' -f1 | sort -u; stat -c %a ${files} | sort -u`), (r) => r.stdout)
          const original = yield* sum(a1, "big.bin")
          expect(yield* sum(b1, "big.bin")).toBe(original)
          expect(yield* sum(a2, "copies/*.bin")).toBe(original)
          const limited = yield* Effect.flip(Effect.scoped(a1.openFile("big.bin", { maxBytes: 2_999_999 })))
          expect(limited.message).toBe("readFile on host a: big.bin is 3000000 bytes, more than the limit of 2999999")
        })
      ), { timeout: 120_000 })

    it.effect("a name swapped in a loop by another process never lets a read or a write on the host escape", () =>
      withRun(() =>
        Effect.gen(function* () {
          const out = yield* outsideDirectory
          const machine = yield* makeMachine("m", "a")
          yield* machine.exec(`mkdir real && echo inside > real/secret.txt && echo inside > data.txt && ln -s '${out}' shared`)
          const outcomes: Array<string> = []
          const record = (attempt: Effect.Effect<unknown, MachineError>) =>
            Effect.either(attempt).pipe(Effect.map((result) => outcomes.push(result._tag === "Right" ? "ok" : result.left.message)))
          const tries = 25
          yield* Effect.scoped(Effect.gen(function* () {
            yield* swapper(path.join(machine.cwd, "shared"), [{ symlink: path.join(machine.cwd, "real") }, { symlink: out }])
            for (let i = 0; i < tries; i++) {
              yield* record(Effect.flatMap(machine.readFile("shared/secret.txt"), (bytes) => machine.writeFile(`got/${i}.txt`, bytes)))
              yield* record(machine.writeFile(i % 2 === 0 ? `shared/${i}.txt` : "shared/victim.txt", "written"))
            }
          }))
          yield* Effect.scoped(Effect.gen(function* () {
            yield* swapper(path.join(machine.cwd, "data.txt"), [{ file: "inside" }, { symlink: path.join(out, "secret.txt") }])
            for (let i = 0; i < tries; i++) {
              yield* record(Effect.flatMap(machine.readFile("data.txt"), (bytes) => machine.writeFile(`got/data-${i}.txt`, bytes)))
            }
          }))
          yield* Effect.scoped(Effect.gen(function* () {
            yield* swapper(path.join(machine.cwd, "dest.txt"), [{ symlink: path.join(out, "victim.txt") }, { hardlink: path.join(out, "victim.txt") }])
            for (let i = 0; i < tries; i++) yield* record(machine.writeFile("dest.txt", "written"))
          }))
          const unexpected = outcomes.filter((outcome) => outcome !== "ok" && !/escapes|symbolic link/.test(outcome))
          expect(unexpected).toEqual([])
          expect((yield* machine.exec(`cat got/* | sort -u`)).stdout).not.toContain(SECRET)
          expect(untouched(out)).toEqual(asMade)
        })
      ), { timeout: 120_000 })

    it.effect("placement: a named host, else the least loaded; an unknown name is an error", () =>
      withRun(() =>
        Effect.gen(function* () {
          const first = yield* makeMachine("m1")
          const second = yield* makeMachine("m2")
          expect(new Set([first.describe.host, second.describe.host])).toEqual(new Set(["a", "b"]))
          const third = yield* makeMachine("m3", "b")
          expect(third.describe.host).toBe("b")
          // a has one machine, b two.
          expect((yield* makeMachine("m4")).describe.host).toBe("a")
          const error = yield* Effect.flip(makeMachine("m5", "nowhere"))
          expect(error._tag).toBe("MachineError")
          expect(error.message).toContain("no host named \"nowhere\" (hosts: a, b")
        })
      ))

    it.effect("an unreachable host fails with HostUnreachable naming it and ssh's error; other hosts work", () =>
      Effect.gen(function* () {
        const hosts = yield* Hosts
        const down: SshMachineProvider.HostOptions = { name: "down", destination: hosts.hosts[0]!.address, port: 2999, user: "root" }
        yield* withRun(() =>
          Effect.gen(function* () {
            const error = yield* Effect.flip(makeMachine("m", "down"))
            expect(error).toMatchObject({ _tag: "HostUnreachable", host: "down" })
            expect(error.message).toMatch(/cannot reach host down: .*Connection refused/)
            expect((yield* (yield* makeMachine("ok", "a")).exec("echo ok")).stdout).toBe("ok\n")
          }), [down])
      }))

    it.effect("spawn runs a program in tmux on the host; its exit code is seen; release kills the session", () =>
      withRun((hosts) =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m", "a")
          const a = hosts.hosts[0]!
          const quick = yield* machine.spawn({ name: "quick", command: "sh", args: ["-c", "echo bye; exit 3"], env: {} })
          expect(yield* quick.exited).toEqual({ exitCode: 3 })
          expect(yield* quick.outputTail).toContain("bye")

          const scope = yield* Scope.make()
          const long = yield* machine.spawn({ name: "long", command: "sh", args: ["-c", 'echo "$SECRET"; sleep 59.37'], env: { SECRET: "s3" } }).pipe(
            Scope.extend(scope)
          )
          expect(long.session).toBe("long")
          expect(hosts.remote(a, `tmux -L ${a.tmuxSocket} ls -F '#{session_name}'`)).toContain("long")
          yield* Scope.close(scope, Exit.void)
          expect(hosts.remote(a, `tmux -L ${a.tmuxSocket} ls -F '#{session_name}' 2>/dev/null | grep -x long || echo none`).trim()).toBe("none")
          // A duration no other job on the machine uses: the host shares the machine's processes.
          expect(hosts.remote(a, "pgrep -f '[s]leep 59[.]37' || echo none").trim()).toBe("none")
        })
      ))

    it.effect("a killed master connection is re-opened with its tunnels", () =>
      withRun(() =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m", "b")
          const before = masterPid(machine)
          expect(before).toBeGreaterThan(0)
          process.kill(before, "SIGKILL")
          const after = yield* pollUntil(() => masterPid(machine), (pid) => pid > 0 && pid !== before)
          expect(after).not.toBe(before)
          // The new master forwards the run's port again.
          const port = new URL((yield* Run).url).port
          const probe = yield* machine.exec(`exec 3<>/dev/tcp/127.0.0.1/${port} && echo open`)
          expect(probe.stdout).toBe("open\n")
        })
      ))

    it.effect("the CLI's ssh command line reaches the machine through the run's connection", () =>
      withRun((hosts) =>
        Effect.gen(function* () {
          const machine = yield* makeMachine("m", "b")
          const args = SshMachineProvider.sshArgs(machine.describe.ssh!, `cd ${SshMachineProvider.shellQuote(machine.cwd)} && pwd && echo "$SSH_CONNECTION"`)
          const out = yield* Command.string(Command.make("ssh", ...args))
          expect(out).toContain(machine.cwd)
          expect(out).toContain(hosts.hosts[1]!.address)
        })
      ))

    /** Start the fixture run (a sleeping program on each host) and wait until it is ready; its execution id. */
    const startFixture = (hosts: SshHosts.TestHosts, home: string, ...extra: Array<string>) =>
      Effect.gen(function* () {
        const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "ssh-run.ts")
        const options: SshMachineProvider.Options = { hosts: hosts.options(["false"]) }
        const proc = yield* Command.make(process.execPath, "--import", "tsx", fixture, home, JSON.stringify(options), ...extra).pipe(
          Command.workingDirectory(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")),
          Command.start
        )
        const line = yield* proc.stdout.pipe(
          Stream.decodeText(),
          Stream.splitLines,
          Stream.filter((line) => line.startsWith("ready ")),
          Stream.runHead,
          Effect.timeout("30 seconds")
        )
        return { proc, executionId: line._tag === "Some" ? line.value.slice("ready ".length) : "" }
      })
    const sleepersOn = (hosts: SshHosts.TestHosts) =>
      hosts.hosts.map((host) => hosts.remote(host, "pgrep -f '[s]leep 61.7' >/dev/null && echo running || echo none").trim())
    const mastersOf = (home: string) => execFileSync("sh", ["-c", `pgrep -f '[s]sh .*-M -N.*${home}' || true`], { encoding: "utf8" }).trim()
    const runDirectoriesOf = (hosts: SshHosts.TestHosts, executionId: string) =>
      hosts.hosts.map((host) => hosts.remote(host, `ls -d ${host.root}/${executionId} 2>/dev/null || echo gone`).trim())
    /** The run's programs and directories are gone from both hosts, its masters from here; then remove its home. */
    const expectNothingLeft = (hosts: SshHosts.TestHosts, home: string, executionId: string) =>
      Effect.gen(function* () {
        expect(sleepersOn(hosts)).toEqual(["none", "none"])
        expect(runDirectoriesOf(hosts, executionId)).toEqual(["gone", "gone"])
        expect(yield* pollUntil(() => mastersOf(home), (out) => out === "")).toBe("")
        expect(yield* SshMachineProvider.collectOrphans(home)).toEqual([])
        fs.rmSync(home, { recursive: true, force: true })
      })

    it.effect("a second SIGINT forces the exit and still cleans every host and closes the masters", () =>
      Effect.gen(function* () {
        const hosts = yield* Hosts
        const home = tempHome()
        const { executionId, proc } = yield* startFixture(hosts, home, "signals")
        expect(sleepersOn(hosts)).toEqual(["running", "running"])
        process.kill(proc.pid, "SIGINT")
        // The second once the graceful stop is under way (the fixture's stop then takes a minute).
        yield* pollUntil(() => fs.existsSync(path.join(home, "stopping")), (stopping) => stopping)
        process.kill(proc.pid, "SIGINT")
        expect(yield* proc.exitCode.pipe(Effect.timeout("20 seconds"))).toBe(130)
        yield* expectNothingLeft(hosts, home, executionId)
      }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))

    it.effect("after a run is killed (SIGKILL), collectOrphans cleans its hosts and closes its master", () =>
      Effect.gen(function* () {
        const hosts = yield* Hosts
        const home = tempHome()
        const { executionId, proc } = yield* startFixture(hosts, home)
        expect(sleepersOn(hosts)).toEqual(["running", "running"])
        process.kill(proc.pid, "SIGKILL")
        yield* proc.exitCode.pipe(Effect.ignore)
        // What a SIGKILL leaves: the programs there, and the masters here.
        expect(sleepersOn(hosts)).toEqual(["running", "running"])
        expect(mastersOf(home)).not.toBe("")

        const collected = yield* SshMachineProvider.collectOrphans(home)
        expect(collected.map(({ host, reached, sessions }) => ({ host, reached, sessions })).sort((x, y) => x.host.localeCompare(y.host))).toEqual([
          { host: "a", reached: true, sessions: [`ramure-${executionId.slice(0, 8)}-sleeper-a`] },
          { host: "b", reached: true, sessions: [`ramure-${executionId.slice(0, 8)}-sleeper-b`] }
        ])
        yield* expectNothingLeft(hosts, home, executionId)
      }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))

    it.effect("closing the run stops the machines, removes the run's directories and closes the connections", () =>
      Effect.gen(function* () {
        const hosts = yield* Hosts
        let executionId = ""
        let controlPaths: Array<string> = []
        let cwds: Array<string> = []
        yield* withRun(() =>
          Effect.gen(function* () {
            executionId = (yield* RunInfo).executionId
            const machines = [yield* makeMachine("m1", "a"), yield* makeMachine("m2", "b")]
            yield* Effect.forEach(machines, (m) => m.spawn({ name: `${m.id}-sleeper`, command: "sleep", args: ["47.3"], env: {} }))
            controlPaths = machines.map((m) => m.describe.ssh!.controlPath)
            cwds = machines.map((m) => m.cwd)
          }))
        for (const host of hosts.hosts) {
          expect(hosts.remote(host, `ls ${host.root} 2>/dev/null | grep -x ${executionId} || echo gone`).trim()).toBe("gone")
          expect(hosts.remote(host, `tmux -L ${host.tmuxSocket} ls 2>/dev/null || echo none`).trim()).toBe("none")
          expect(hosts.remote(host, "pgrep -f '[s]leep 47.3' || echo none").trim()).toBe("none")
        }
        for (const cwd of cwds) expect(fs.existsSync(cwd)).toBe(false)
        for (const controlPath of controlPaths) expect(fs.existsSync(controlPath)).toBe(false)
        expect(execFileSync("sh", ["-c", `pgrep -f '[s]sh.*-M -N.*${controlPaths[0]}' || echo none`], { encoding: "utf8" }).trim()).toBe("none")
      }))
  })
})
