import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, expect, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalMachineProvider from "../src/LocalMachineProvider.js"
import { MachineProvider } from "@ramure/core/Machine"
import { RunInfo, workDirectory } from "@ramure/core/RunInfo"

const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-local-test-"))
const executionId = crypto.randomUUID()
const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-outside-"))
fs.writeFileSync(path.join(outside, "secret.txt"), "secret")

afterAll(() => {
  fs.rmSync(home, { recursive: true, force: true })
  fs.rmSync(outside, { recursive: true, force: true })
})

const TestLayer = LocalMachineProvider.layer.pipe(
  Layer.provideMerge(Layer.succeed(RunInfo, { executionId, home, program: "test" })),
  Layer.provideMerge(NodeContext.layer)
)

const machine = (name: string) => Effect.flatMap(MachineProvider, (provider) => provider.make({ name }))

/** Running (zombies awaiting a lazy init do not count). */
const isAlive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}

layer(TestLayer, { excludeTestServices: true })("LocalMachineProvider", (it) => {
  it.scoped("creates a fresh working directory under home/work/<execution>/<name>", () =>
    Effect.gen(function* () {
      const m = yield* machine("fresh")
      expect(m.cwd).toBe(fs.realpathSync(path.join(workDirectory(home, executionId), "fresh")))
      expect(fs.statSync(m.cwd).isDirectory()).toBe(true)
      expect(m.describe).toEqual({ id: "fresh", kind: "local", cwd: m.cwd })
    }))

  it.scoped("uses an existing cwd and refuses a missing one", () =>
    Effect.gen(function* () {
      const provider = yield* MachineProvider
      const m = yield* provider.make({ name: "existing", cwd: outside })
      expect(m.cwd).toBe(fs.realpathSync(outside))
      const missing = yield* Effect.flip(provider.make({ name: "missing", cwd: path.join(outside, "nope") }))
      expect(missing._tag).toBe("MachineError")
      const bad = yield* Effect.flip(provider.make({ name: "../evil" }))
      expect(bad.message).toContain("invalid machine name")
    }))

  it.scoped("exec captures stdout, stderr, exit code, cwd and env", () =>
    Effect.gen(function* () {
      const m = yield* machine("exec")
      const result = yield* m.exec("echo out; echo err >&2; pwd; echo $GREETING; exit 3", { env: { GREETING: "hi" } })
      expect(result).toEqual({ exitCode: 3, stdout: `out\n${m.cwd}\nhi\n`, stderr: "err\n" })
      expect((yield* m.exec("true")).exitCode).toBe(0)
    }))

  it.scoped("exec timeout returns 124 and kills the command", () =>
    Effect.gen(function* () {
      const m = yield* machine("timeout")
      const start = Date.now()
      const result = yield* m.exec("echo $$ > pid; echo started; exec sleep 100", { timeout: Duration.seconds(1) })
      expect(result.exitCode).toBe(124)
      expect(result.stdout).toBe("started\n") // output up to the timeout is kept
      expect(Date.now() - start).toBeLessThan(3000)
      const pid = Number(fs.readFileSync(path.join(m.cwd, "pid"), "utf8"))
      expect(isAlive(pid)).toBe(false)
    }))

  it.scoped("exec timeout SIGKILLs a command that ignores SIGTERM, children included", () =>
    Effect.gen(function* () {
      const m = yield* machine("stubborn")
      const result = yield* m.exec("trap '' TERM; sleep 100 & echo $! > child; echo $$ > pid; wait", {
        timeout: Duration.millis(200)
      })
      expect(result.exitCode).toBe(124)
      for (const file of ["pid", "child"]) {
        expect(isAlive(Number(fs.readFileSync(path.join(m.cwd, file), "utf8")))).toBe(false)
      }
    }))

  it.scoped("readFile / writeFile round trip, creating parent directories", () =>
    Effect.gen(function* () {
      const m = yield* machine("files")
      yield* m.writeFile("a/b/c.txt", "hello")
      expect(fs.readFileSync(path.join(m.cwd, "a/b/c.txt"), "utf8")).toBe("hello")
      expect(new TextDecoder().decode(yield* m.readFile("a/b/c.txt"))).toBe("hello")
      yield* m.writeFile(path.join(m.cwd, "abs.bin"), new Uint8Array([1, 2, 3]))
      expect([...(yield* m.readFile("./a/../abs.bin"))]).toEqual([1, 2, 3])
      const missing = yield* Effect.flip(m.readFile("missing.txt"))
      expect(missing._tag).toBe("MachineError")
    }))

  it.scoped("refuses paths that escape the working directory", () =>
    Effect.gen(function* () {
      const m = yield* machine("confined")
      fs.symlinkSync(outside, path.join(m.cwd, "dirlink"))
      fs.symlinkSync(path.join(outside, "secret.txt"), path.join(m.cwd, "filelink"))
      fs.symlinkSync(path.join(outside, "created.txt"), path.join(m.cwd, "dangling"))
      const refused = [
        m.readFile("../x"),
        m.writeFile("../x", "no"),
        m.readFile("a/../../x"),
        m.readFile(path.join(outside, "secret.txt")),
        m.writeFile(path.join(outside, "new.txt"), "no"),
        m.readFile("dirlink/secret.txt"),
        m.writeFile("dirlink/new.txt", "no"),
        m.writeFile("dirlink/sub/new.txt", "no"),
        m.readFile("filelink"),
        m.writeFile("filelink", "no"),
        m.writeFile("dangling", "no")
      ]
      for (const attempt of refused) {
        const error = yield* Effect.flip(attempt)
        expect(error._tag).toBe("MachineError")
        expect(error.message).toContain("escapes")
      }
      expect(fs.readdirSync(outside).sort()).toEqual(["secret.txt"])
      expect(fs.readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe("secret")
      // A symlink that stays inside is fine.
      yield* m.writeFile("real/file.txt", "inside")
      fs.symlinkSync(path.join(m.cwd, "real"), path.join(m.cwd, "innerlink"))
      expect(new TextDecoder().decode(yield* m.readFile("innerlink/file.txt"))).toBe("inside")
    }))

  it.scoped("spawn: exited reports the exit code and outputTail the output", () =>
    Effect.gen(function* () {
      const m = yield* machine("spawn-exit")
      const spawned = yield* m.spawn({
        name: "exits",
        command: "bash",
        args: ["-c", 'for i in $(seq 1 60); do echo line $i; done; echo "$SECRET" >&2; exit 7'],
        env: { SECRET: "from-env" }
      })
      expect(spawned.session).toBeUndefined()
      expect(spawned.pid).toBeGreaterThan(0)
      const exit = yield* spawned.exited.pipe(Effect.timeout(Duration.seconds(2)))
      expect(exit.exitCode).toBe(7)
      const tail = (yield* spawned.outputTail).split("\n")
      expect(tail).toHaveLength(40)
      expect(tail).toContain("line 60")
      expect(tail).toContain("from-env")
      expect(tail).not.toContain("line 1")
    }))

  it.scoped("spawn: closing the scope kills a long-running program", () =>
    Effect.gen(function* () {
      const m = yield* machine("spawn-sleep")
      const scope = yield* Scope.make()
      const spawned = yield* m.spawn({ name: "sleep", command: "sleep", args: ["1000"], env: {} }).pipe(
        Scope.extend(scope)
      )
      expect(isAlive(spawned.pid!)).toBe(true)
      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - start).toBeLessThan(1000)
      expect(isAlive(spawned.pid!)).toBe(false)
      expect((yield* spawned.exited).exitCode).toBe(143)
    }))

  it.scoped("spawn: closing the scope SIGKILLs a program that ignores SIGTERM, and its whole group", () =>
    Effect.gen(function* () {
      const m = yield* machine("spawn-kill")
      const scope = yield* Scope.make()
      const spawned = yield* m.spawn({
        name: "sleeper",
        command: "bash",
        args: ["-c", "trap '' TERM; sleep 1000 & echo $! > child; wait"],
        env: {}
      }).pipe(Scope.extend(scope))
      yield* Effect.sleep(Duration.millis(200))
      const pid = spawned.pid!
      const child = Number(fs.readFileSync(path.join(m.cwd, "child"), "utf8"))
      expect(isAlive(pid)).toBe(true)
      expect(isAlive(child)).toBe(true)
      yield* Scope.close(scope, Exit.void)
      expect(isAlive(pid)).toBe(false)
      expect(isAlive(child)).toBe(false)
      expect((yield* spawned.exited).exitCode).toBe(137)
    }))

  it.scoped("spawn: a kill -9 from outside is seen by exited within 2 s", () =>
    Effect.gen(function* () {
      const m = yield* machine("spawn-external")
      const spawned = yield* m.spawn({ name: "victim", command: "sleep", args: ["1000"], env: {} })
      process.kill(spawned.pid!, "SIGKILL")
      const exit = yield* spawned.exited.pipe(Effect.timeout(Duration.seconds(2)))
      expect(exit.exitCode).toBe(137)
    }))

  it.scoped("spawn: a missing program is a MachineError", () =>
    Effect.gen(function* () {
      const m = yield* machine("spawn-missing")
      const error = yield* Effect.flip(m.spawn({ name: "nope", command: "ramure-no-such-program", args: [], env: {} }))
      expect(error._tag).toBe("MachineError")
    }))
})
