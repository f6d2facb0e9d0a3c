import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, expect, layer } from "@effect/vitest"
import { Chunk, Duration, Effect, Exit, Layer, Scope, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalMachineProvider from "../src/LocalMachineProvider.js"
import { MachineError, MachineProvider } from "@ramure/core/Machine"
import { RunInfo, workDirectory } from "@ramure/core/RunInfo"
import { asMade, mkfifo, outsideDirectory, untouched } from "../../core/test/files.js"

const home = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-local-test-"))
const executionId = crypto.randomUUID()
const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-outside-"))
fs.writeFileSync(path.join(outside, "secret.txt"), "secret")

afterAll(() => {
  fs.rmSync(home, { recursive: true, force: true })
  fs.rmSync(outside, { recursive: true, force: true })
})

const TestLayer = LocalMachineProvider.layer.pipe(
  Layer.provideMerge(Layer.succeed(RunInfo, { executionId, home, program: "test", resumed: false })),
  Layer.provideMerge(NodeContext.layer)
)

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

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
      // Room for a loaded machine to start the command; the sleep is far longer.
      const result = yield* m.exec("echo $$ > pid; echo started; exec sleep 100", { timeout: Duration.seconds(2) })
      expect(result.exitCode).toBe(124)
      expect(result.stdout).toBe("started\n") // output up to the timeout is kept
      const pid = Number(fs.readFileSync(path.join(m.cwd, "pid"), "utf8"))
      expect(isAlive(pid)).toBe(false)
    }))

  it.scoped("exec timeout SIGKILLs a command that ignores SIGTERM, children included", () =>
    Effect.gen(function* () {
      const m = yield* machine("stubborn")
      const result = yield* m.exec("trap '' TERM; sleep 100 & echo $! > child; echo $$ > pid; wait", {
        // Room for a loaded machine to start the command and write its files.
        timeout: Duration.seconds(2)
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

  it.scoped("refuses paths that escape the working directory, lexically or through a directory link", () =>
    Effect.gen(function* () {
      const m = yield* machine("confined")
      const out = yield* outsideDirectory
      fs.symlinkSync(out, path.join(m.cwd, "dirlink"))
      const refused = [
        m.readFile("../x"),
        m.writeFile("../x", "no"),
        m.readFile("a/../../x"),
        m.readFile(path.join(out, "secret.txt")),
        m.writeFile(path.join(out, "new.txt"), "no"),
        m.readFile("dirlink/secret.txt"),
        m.writeFile("dirlink/new.txt", "no"),
        m.writeFile("dirlink/sub/new.txt", "no"),
        m.readFile("."),
        m.writeFile("", "no")
      ]
      for (const attempt of refused) {
        const error = yield* Effect.flip(attempt)
        expect(error._tag).toBe("MachineError")
        expect(error.message).toContain("escapes")
      }
      expect(untouched(out)).toEqual(asMade)
      // A directory link that stays inside is fine.
      yield* m.writeFile("real/file.txt", "inside")
      fs.symlinkSync(path.join(m.cwd, "real"), path.join(m.cwd, "innerlink"))
      expect(decode(yield* m.readFile("innerlink/file.txt"))).toBe("inside")
      yield* m.writeFile("innerlink/other.txt", "also inside")
      expect(fs.readFileSync(path.join(m.cwd, "real", "other.txt"), "utf8")).toBe("also inside")
    }))

  it.scoped("reads only regular files with one name: links, hard links, FIFOs, devices and directories are refused at once", () =>
    Effect.gen(function* () {
      const provider = yield* MachineProvider
      const m = yield* machine("irregular")
      const out = yield* outsideDirectory
      yield* m.writeFile("plain.txt", "plain")
      fs.symlinkSync(path.join(out, "secret.txt"), path.join(m.cwd, "filelink"))
      fs.symlinkSync(path.join(m.cwd, "plain.txt"), path.join(m.cwd, "innerfilelink"))
      fs.linkSync(path.join(out, "secret.txt"), path.join(m.cwd, "hardlink"))
      fs.symlinkSync("/dev/zero", path.join(m.cwd, "zero"))
      fs.mkdirSync(path.join(m.cwd, "dir"))
      const fifos = Array.from({ length: 8 }, (_, i) => `fifo${i}`)
      for (const fifo of fifos) mkfifo(path.join(m.cwd, fifo))
      // A machine whose directory is /dev reads its device nodes directly.
      const dev = yield* provider.make({ name: "dev", cwd: "/dev" })

      // Eight FIFOs without a writer at once (libuv has four threads for files): none waits, and a plain read goes on.
      const [fromFifos, plain] = yield* Effect.all([
        Effect.all(fifos.map((fifo) => Effect.flip(m.readFile(fifo))), { concurrency: "unbounded" }),
        m.readFile("plain.txt")
      ], { concurrency: "unbounded" })
      fromFifos.forEach((error, i) => expect(error.message).toBe(`fifo${i} is a FIFO, not a regular file`))
      expect(decode(plain)).toBe("plain")

      const refusal = (attempt: Effect.Effect<unknown, MachineError>) => Effect.map(Effect.flip(attempt), (error) => error.message)
      expect(yield* refusal(m.readFile("filelink"))).toBe("filelink is a symbolic link (links are not followed)")
      expect(yield* refusal(m.readFile("innerfilelink"))).toBe("innerfilelink is a symbolic link (links are not followed)")
      expect(yield* refusal(m.readFile("zero"))).toBe("zero is a symbolic link (links are not followed)")
      expect(yield* refusal(m.readFile("hardlink"))).toContain("hardlink has 2 hard links")
      expect(yield* refusal(m.readFile("dir"))).toBe("dir is a directory, not a regular file")
      expect(yield* refusal(dev.readFile("zero"))).toBe("zero is a character device, not a regular file")
      expect(yield* refusal(dev.readFile("null"))).toBe("null is a character device, not a regular file")
      expect(yield* refusal(m.readFile("missing.txt"))).toBe("no such file: missing.txt")
      expect(yield* refusal(m.readFile("plain.txt/x"))).toContain("is not a directory")
      expect(untouched(out)).toEqual(asMade)
    }))

  it.scoped("writes a new file renamed into place: a hard link, a symbolic link or a FIFO at the path is replaced, never written through", () =>
    Effect.gen(function* () {
      const m = yield* machine("replace")
      const out = yield* outsideDirectory
      fs.linkSync(path.join(out, "victim.txt"), path.join(m.cwd, "hardlink"))
      fs.symlinkSync(path.join(out, "victim.txt"), path.join(m.cwd, "filelink"))
      fs.symlinkSync(path.join(out, "created.txt"), path.join(m.cwd, "dangling"))
      mkfifo(path.join(m.cwd, "fifo"))
      for (const name of ["hardlink", "filelink", "dangling", "fifo"]) {
        yield* m.writeFile(name, `new ${name}`)
        const written = fs.lstatSync(path.join(m.cwd, name))
        expect({ file: written.isFile(), links: written.nlink }).toEqual({ file: true, links: 1 })
        expect(fs.readFileSync(path.join(m.cwd, name), "utf8")).toBe(`new ${name}`)
      }
      expect(untouched(out)).toEqual(asMade)
      fs.mkdirSync(path.join(m.cwd, "dir"))
      expect((yield* Effect.flip(m.writeFile("dir", "x"))).message).toBe("dir is a directory")

      // A replaced file keeps its permissions; `mode` sets them.
      fs.writeFileSync(path.join(m.cwd, "script.sh"), "old", { mode: 0o750 })
      fs.chmodSync(path.join(m.cwd, "script.sh"), 0o750)
      yield* m.writeFile("script.sh", "new")
      expect(fs.statSync(path.join(m.cwd, "script.sh")).mode & 0o777).toBe(0o750)
      yield* m.writeFile("private.txt", "x", { mode: 0o600 })
      expect(fs.statSync(path.join(m.cwd, "private.txt")).mode & 0o777).toBe(0o600)
      expect(fs.readdirSync(m.cwd).filter((name) => name.startsWith(".ramure-"))).toEqual([])
    }))

  it.scoped("a size limit refuses larger files; a failed or short write leaves the old file and no temporary one", () =>
    Effect.gen(function* () {
      const m = yield* machine("limits")
      yield* m.writeFile("ten.txt", "0123456789")
      expect(decode(yield* m.readFile("ten.txt", { maxBytes: 10 }))).toBe("0123456789")
      expect((yield* Effect.flip(m.readFile("ten.txt", { maxBytes: 9 }))).message).toBe("ten.txt is 10 bytes, more than the limit of 9")

      yield* m.writeFile("kept.txt", "old")
      const short = { size: 10, mode: 0o644, stream: Stream.make(new Uint8Array(4)) }
      expect((yield* Effect.flip(m.writeFileFrom("kept.txt", short))).message).toBe("kept.txt: the data ended after 4 of 10 bytes")
      const broken = new MachineError({ machine: "elsewhere", operation: "readFile", message: "the source broke" })
      const failing = { size: 10, mode: 0o644, stream: Stream.concat(Stream.make(new Uint8Array(4)), Stream.fail(broken)) }
      const failed = yield* Effect.flip(m.writeFileFrom("kept.txt", failing))
      expect({ machine: failed.machine, message: failed.message }).toEqual({ machine: "elsewhere", message: "the source broke" })
      expect(fs.readFileSync(path.join(m.cwd, "kept.txt"), "utf8")).toBe("old")
      expect(fs.readdirSync(m.cwd).filter((name) => name.startsWith(".ramure-"))).toEqual([])

      // An opened file gives the bytes it had when it was opened; one that shrank fails.
      yield* m.writeFile("growing.txt", "abc")
      const grown = yield* Effect.scoped(Effect.gen(function* () {
        const source = yield* m.openFile("growing.txt")
        fs.appendFileSync(path.join(m.cwd, "growing.txt"), "def")
        return { size: source.size, bytes: Chunk.toReadonlyArray(yield* Stream.runCollect(source.stream)) }
      }))
      expect({ size: grown.size, text: grown.bytes.map(decode).join("") }).toEqual({ size: 3, text: "abc" })
      const shrunk = yield* Effect.scoped(Effect.gen(function* () {
        const source = yield* m.openFile("growing.txt")
        fs.truncateSync(path.join(m.cwd, "growing.txt"), 2)
        return yield* Effect.flip(Stream.runDrain(source.stream))
      }))
      expect(shrunk.message).toBe("growing.txt shrank while it was read")
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
      // The program has started its child once it wrote its pid.
      const childFile = path.join(m.cwd, "child")
      yield* Effect.sleep("20 millis").pipe(Effect.repeat({ until: () => fs.existsSync(childFile) && fs.readFileSync(childFile, "utf8").endsWith("\n") }))
      const pid = spawned.pid!
      const child = Number(fs.readFileSync(childFile, "utf8"))
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
