import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, expect, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Option, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { MachineProvider } from "@ramure/core/Machine"
import { startTimeOf } from "../src/Owner.js"
import { RunInfo, shortId } from "@ramure/core/RunInfo"
import * as Registry from "../src/Registry.js"
import * as TmuxMachineProvider from "../src/TmuxMachineProvider.js"

const socket = `ramure-test-${process.pid}-${crypto.randomBytes(3).toString("hex")}`
const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-tmux-test-"))
const executionId = crypto.randomUUID()
const prefix = `ramure-${shortId(executionId)}-`

const TestRunInfo = Layer.succeed(RunInfo, { executionId, home, program: "test", resumed: false })
const TestLayer = TmuxMachineProvider.layer({ socket }).pipe(
  Layer.provideMerge(TestRunInfo),
  Layer.provideMerge(NodeContext.layer)
)

/** A registry entry as a run writes it; its path. */
const writeRegistryEntry = (home: string, entry: Registry.RegistryEntry): string => {
  const file = Registry.entryPath(home, entry.execution_id)
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  fs.writeFileSync(file, JSON.stringify(entry), { mode: 0o600 })
  return file
}

const tmux = (...args: Array<string>) => spawnSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
const hasSession = (name: string) => tmux("has-session", "-t", `=${name}`).status === 0

/** Running (zombies awaiting a lazy init do not count). */
const isAlive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}

afterAll(() => {
  tmux("kill-server")
  fs.rmSync(path.join(process.env.TMUX_TMPDIR ?? "/tmp", `tmux-${process.getuid?.()}`, socket), { force: true })
  fs.rmSync(home, { recursive: true, force: true })
})

const machine = (name: string) => Effect.flatMap(MachineProvider, (provider) => provider.make({ name }))

layer(TestLayer, { excludeTestServices: true })("TmuxMachineProvider", (it) => {
  it.effect("tmux is available", () =>
    Effect.gen(function* () {
      expect(yield* TmuxMachineProvider.available).toBe(true)
    }))

  it.scoped("exec and confined file access work as on a local machine", () =>
    Effect.gen(function* () {
      const m = yield* machine("files")
      expect(m.describe).toEqual({ id: "files", kind: "tmux", cwd: m.cwd })
      yield* m.writeFile("dir/x.txt", "data")
      const result = yield* m.exec("cat dir/x.txt; echo oops >&2; exit 2")
      expect(result).toEqual({ exitCode: 2, stdout: "data", stderr: "oops\n" })
      expect((yield* Effect.flip(m.readFile("../x"))).message).toContain("escapes")
      expect((yield* m.exec("sleep 100", { timeout: Duration.millis(100) })).exitCode).toBe(124)
    }))

  it.scoped("spawn: exited reports the exit code within 2 s, outputTail shows the output, env reaches the program", () =>
    Effect.gen(function* () {
      const m = yield* machine("exits")
      const name = `${prefix}exits`
      const secret = "s3cr3t two words; it's $HOME `x`"
      const spawned = yield* m.spawn({
        name,
        command: "bash",
        args: ["-c", 'for i in $(seq 1 50); do echo line $i; done; echo "[$SECRET]" "[$OTHER]"; sleep 0.3; exit 7'],
        env: { SECRET: secret, OTHER: "#{session_name}" }
      })
      expect(spawned.session).toBe(name)
      expect(spawned.pid).toBeGreaterThan(0)
      // The environment never appears on a command line (tmux server included) and its file is gone.
      expect(spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout).not.toContain("s3cr3t")
      const exit = yield* spawned.exited.pipe(Effect.timeout(Duration.seconds(2)))
      expect(exit.exitCode).toBe(7)
      expect(fs.readdirSync(path.join(home, "tmux-env"))).toEqual([])
      const tail = yield* spawned.outputTail
      expect(tail).toContain(`[${secret}] [#{session_name}]`)
      expect(tail).toContain("line 50")
      expect(tail).not.toContain("line 10\n")
      expect(tail.split("\n").length).toBeLessThanOrEqual(40)
      // remain-on-exit keeps the session until the scope closes.
      expect(hasSession(name)).toBe(true)
    }))

  it.scoped("spawn: runs in spec.cwd (even with '#' in it) and sanitizes session names", () =>
    Effect.gen(function* () {
      const m = yield* machine("cwd")
      yield* m.writeFile("odd#{dir}/keep", "")
      const spawned = yield* m.spawn({ name: `${prefix}a.b:c`, command: "pwd", args: [], env: {}, cwd: "odd#{dir}" })
      expect(spawned.session).toBe(`${prefix}a_b_c`)
      expect((yield* spawned.exited).exitCode).toBe(0)
      expect(yield* spawned.outputTail).toContain(path.join(m.cwd, "odd#{dir}"))
    }))

  it.scoped("spawn: keeps the output of programs that exit at once", () =>
    Effect.gen(function* () {
      const m = yield* machine("quick")
      const all = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) =>
          m.spawn({ name: `${prefix}quick${i}`, command: "printf", args: ["quick %s\\n", String(i)], env: {} }).pipe(
            Effect.tap((spawned) => spawned.exited),
            Effect.flatMap((spawned) => spawned.outputTail)
          ),
        { concurrency: "unbounded" }
      )
      all.forEach((tail, i) => expect(tail).toContain(`quick ${i}`))
    }))

  it.scoped("spawn: closing the scope kills a long-running program and its session", () =>
    Effect.gen(function* () {
      const m = yield* machine("sleeper")
      const name = `${prefix}sleeper`
      const scope = yield* Scope.make()
      const spawned = yield* m.spawn({ name, command: "sleep", args: ["1000"], env: {} }).pipe(Scope.extend(scope))
      const pid = spawned.pid!
      expect(isAlive(pid)).toBe(true)
      expect(hasSession(name)).toBe(true)
      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - start).toBeLessThan(1500)
      expect(isAlive(pid)).toBe(false)
      expect(hasSession(name)).toBe(false)
      expect((yield* spawned.exited).exitCode).toBe(143)
    }))

  it.scoped("spawn: a program that ignores SIGTERM is killed anyway", () =>
    Effect.gen(function* () {
      const m = yield* machine("stubborn")
      const name = `${prefix}stubborn`
      const scope = yield* Scope.make()
      const spawned = yield* m.spawn({
        name,
        command: "bash",
        args: ["-c", "trap '' TERM HUP; echo ready; while true; do sleep 0.1; done"],
        env: {}
      }).pipe(Scope.extend(scope))
      yield* Effect.sleep(Duration.millis(300))
      expect(yield* spawned.outputTail).toContain("ready")
      // `pid` is the program's own pid (not the pane's wrapper shell).
      expect(fs.readFileSync(`/proc/${spawned.pid}/cmdline`, "utf8")).toContain("trap")
      yield* Scope.close(scope, Exit.void)
      expect(isAlive(spawned.pid!)).toBe(false)
      expect(hasSession(name)).toBe(false)
    }))

  it.scoped("spawn: a kill -9 from outside is seen by exited within 2 s", () =>
    Effect.gen(function* () {
      const m = yield* machine("victim")
      const spawned = yield* m.spawn({ name: `${prefix}victim`, command: "sleep", args: ["1000"], env: {} })
      process.kill(spawned.pid!, "SIGKILL")
      const exit = yield* spawned.exited.pipe(Effect.timeout(Duration.seconds(2)))
      expect(exit.exitCode).toBe(137)
    }))

  it.scoped("spawn: a duplicate session name is a MachineError", () =>
    Effect.gen(function* () {
      const m = yield* machine("dup")
      yield* m.spawn({ name: `${prefix}dup`, command: "sleep", args: ["1000"], env: {} })
      const error = yield* Effect.flip(m.spawn({ name: `${prefix}dup`, command: "sleep", args: ["1000"], env: {} }))
      expect(error._tag).toBe("MachineError")
      expect(error.message).toContain("duplicate session")
    }))

  it.scoped("sessions carry their owner: the run, its home, the orchestrator's pid and start time", () =>
    Effect.gen(function* () {
      const m = yield* machine("owned")
      const spawned = yield* m.spawn({ name: `${prefix}owned`, command: "sleep", args: ["1000"], env: {} })
      const label = tmux("show-options", "-t", `=${prefix}owned:`, "-v", "@ramure_owner").stdout.trim()
      expect(label).toBe(`${process.pid}:${startTimeOf(process.pid)}:${executionId}:${home}`)
      expect(fs.readFileSync(`/proc/${spawned.pid}/environ`, "utf8").split("\0")).toContain(`RAMURE_OWNER=${label}`)
    }))

  it.scoped("killing an agent's session while other sessions live is seen by exited at once", () =>
    Effect.gen(function* () {
      const m = yield* machine("killed")
      yield* m.spawn({ name: `${prefix}bystander`, command: "sleep", args: ["1000"], env: {} })
      const victim = yield* m.spawn({ name: `${prefix}killed`, command: "sleep", args: ["1000"], env: {} })
      expect(tmux("kill-session", "-t", `=${prefix}killed`).status).toBe(0)
      // Bounded only so that a missed exit fails the test instead of hanging it.
      const exit = yield* victim.exited.pipe(Effect.timeout(Duration.seconds(20)))
      expect(exit.exitCode).toBeUndefined()
      expect(hasSession(`${prefix}bystander`)).toBe(true)
    }))

  it.scoped("collectOrphans kills only what is provably orphaned, whatever the home", () =>
    Effect.gen(function* () {
      const m = yield* machine("gc")
      const ours = yield* m.spawn({ name: `${prefix}ours`, command: "sleep", args: ["1000"], env: {} })
      const deadPid = spawnSync("true").pid!
      const me = `${process.pid}:${startTimeOf(process.pid)}`
      const labelled = (session: string, label: string | undefined) => {
        const args = ["new-session", "-d", "-s", session, "sleep", "1000"]
        expect(tmux(...args, ...(label === undefined ? [] : [";", "set-option", "-t", `=${session}:`, "@ramure_owner", label])).status).toBe(0)
      }
      labelled("ramure-aaaaaaaa-dead", `${deadPid}:123:aaaaaaaa-0000-4000-8000-000000000000:/other/home`)
      labelled("ramure-bbbbbbbb-recycled", `${process.pid}:1:bbbbbbbb-0000-4000-8000-000000000000:/other/home`)
      labelled("ramure-cccccccc-live-elsewhere", `${me}:cccccccc-0000-4000-8000-000000000000:/other/home`)
      labelled("ramure-dddddddd-unlabelled", undefined)
      labelled("ramure-eeeeeeee-corrupt", "not a label")
      const verdicts = yield* TmuxMachineProvider.collectOrphans({ socket })
      const byTag = (tag: string) => verdicts.filter((verdict) => verdict._tag === tag).map((verdict) => verdict.session).sort()
      expect(byTag("Orphaned")).toEqual(["ramure-aaaaaaaa-dead", "ramure-bbbbbbbb-recycled"])
      expect(byTag("Live")).toEqual(["ramure-cccccccc-live-elsewhere", `${prefix}ours`].sort())
      expect(byTag("Unattributed")).toEqual(["ramure-dddddddd-unlabelled", "ramure-eeeeeeee-corrupt"])
      expect(hasSession("ramure-aaaaaaaa-dead")).toBe(false)
      expect(hasSession("ramure-bbbbbbbb-recycled")).toBe(false)
      for (const kept of ["ramure-cccccccc-live-elsewhere", "ramure-dddddddd-unlabelled", "ramure-eeeeeeee-corrupt", `${prefix}ours`]) {
        expect(hasSession(kept)).toBe(true)
        if (!kept.startsWith(prefix)) tmux("kill-session", "-t", `=${kept}`)
      }
      expect(isAlive(ours.pid!)).toBe(true)
    }))

  it.scoped("a program a dead orchestrator of this run left is adopted: labelled with this one, watched, stopped with the scope", () =>
    Effect.gen(function* () {
      const m = yield* machine("adopted")
      const deadPid = spawnSync("true").pid!
      const session = `${prefix}adopted`
      expect(tmux(
        "new-session", "-d", "-s", session, "sleep", "1000", ";",
        "set-option", "-t", `=${session}:`, "@ramure_owner", `${deadPid}:123:${executionId}:${home}`
      ).status).toBe(0)
      const other = "ramure-ffffffff-adopted"
      expect(tmux(
        "new-session", "-d", "-s", other, "sleep", "1000", ";",
        "set-option", "-t", `=${other}:`, "@ramure_owner", `${deadPid}:123:ffffffff-0000-4000-8000-000000000000:${home}`
      ).status).toBe(0)

      // Another run's session, and a name nothing runs under, are not this run's to adopt.
      expect(yield* Effect.scoped(m.adopt!(other))).toEqual(Option.none())
      expect(yield* Effect.scoped(m.adopt!(`${prefix}missing`))).toEqual(Option.none())
      tmux("kill-session", "-t", `=${other}`)

      const scope = yield* Scope.make()
      const adopted = yield* Scope.extend(m.adopt!(session), scope)
      const spawned = Option.getOrThrow(adopted)
      expect(spawned.session).toBe(session)
      const pane = tmux("list-panes", "-t", `=${session}`, "-F", "#{pane_pid}").stdout.trim()
      expect(spawned.pid).toBe(Number(pane))
      const label = tmux("show-options", "-t", `=${session}:`, "-v", "@ramure_owner").stdout.trim()
      expect(label).toBe(`${process.pid}:${startTimeOf(process.pid)}:${executionId}:${home}`)
      yield* Scope.close(scope, Exit.void)
      expect(hasSession(session)).toBe(false)
      expect(isAlive(Number(pane))).toBe(false)
      expect((yield* spawned.exited).exitCode).toBeUndefined()
    }))

  it.effect("what a gone run left is kept while its agents wait for a resume, and collected once the window has passed", () =>
    Effect.gen(function* () {
      const deadPid = spawnSync("true").pid!
      const waitingRun = crypto.randomUUID()
      const session = `ramure-${shortId(waitingRun)}-waiting`
      expect(tmux(
        "new-session", "-d", "-s", session, "sleep", "1000", ";",
        "set-option", "-t", `=${session}:`, "@ramure_owner", `${deadPid}:123:${waitingRun}:${home}`
      ).status).toBe(0)
      const entry = writeRegistryEntry(home, {
        execution_id: waitingRun,
        pid: deadPid,
        pid_started: "123",
        server_url: "ws://127.0.0.1:9",
        token: "t",
        program: "gone",
        started_at: new Date().toISOString(),
        resumable_for_ms: 60_000
      })
      const verdicts = yield* TmuxMachineProvider.collectOrphans({ socket })
      const verdict = verdicts.find((v) => v.session === session)
      expect(verdict?._tag).toBe("Waiting")
      expect(hasSession(session)).toBe(true)

      // Its last heartbeat an hour ago: the window has passed.
      const anHourAgo = new Date(Date.now() - 3_600_000)
      fs.utimesSync(entry, anHourAgo, anHourAgo)
      const later = yield* TmuxMachineProvider.collectOrphans({ socket })
      expect(later.find((v) => v.session === session)?._tag).toBe("Orphaned")
      expect(hasSession(session)).toBe(false)
      fs.rmSync(entry)
    }))

  it.effect("out of file descriptors: the programs that cannot start get a clear MachineError, none is taken for exited, nothing leaks", () =>
    Effect.gen(function* () {
      const fdSocket = `${socket}-fd`
      const fixture = path.join(__dirname, "fixtures/fd-limit.ts")
      const child = spawnSync(process.execPath, ["--import", "tsx", fixture, fdSocket, "30", "24"], {
        cwd: path.resolve(__dirname, "../../.."),
        encoding: "utf8",
        timeout: 120_000
      })
      const left = spawnSync("tmux", ["-L", fdSocket, "list-sessions"], { encoding: "utf8" }).stdout
      spawnSync("tmux", ["-L", fdSocket, "kill-server"])
      expect(child.status, child.stderr).toBe(0)
      const report = JSON.parse(child.stdout.trim().split("\n").pop()!)
      expect(report.started + report.errors.length).toBe(30)
      expect(report.errors.length).toBeGreaterThan(0)
      for (const error of report.errors) {
        expect(error).toMatch(/^MachineError: cannot (start tmux|write the environment file of ramure-\w+-p\d+): too many open files \(EMFILE\); raise the limit/)
      }
      expect(report.reportedExited).toBe(0)
      expect(left).toBe("")
    }))

  it.effect("making a machine without tmux is a MachineError", () =>
    Effect.gen(function* () {
      const saved = process.env.PATH
      process.env.PATH = "/nonexistent"
      const result = yield* Effect.gen(function* () {
        const available = yield* TmuxMachineProvider.available
        const error = yield* Effect.flip(Effect.scoped(machine("no-tmux")))
        return { available, error }
      }).pipe(
        Effect.provide(TmuxMachineProvider.layer({ socket }).pipe(Layer.provideMerge(TestRunInfo), Layer.provideMerge(NodeContext.layer))),
        Effect.ensuring(Effect.sync(() => (process.env.PATH = saved)))
      )
      expect(result.available).toBe(false)
      expect(result.error.message).toBe("tmux is not installed (apt-get install tmux)")
    }))

  it.effect("leaves no sessions behind", () =>
    Effect.gen(function* () {
      expect(yield* TmuxMachineProvider.sessionsOf(executionId, { socket })).toEqual([])
      expect(tmux("list-sessions").stdout).toBe("")
    }))
})
