/**
 * `send_file` and `download_file` between connected agents (scripted, on
 * local machines): what they copy, what they refuse, and that nothing
 * outside an agent's working directory is ever read or written, not even
 * while another process swaps links in a loop.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Agent from "../src/Agent.js"
import type { ToolCallResult } from "@ramure/protocol/AgentClient"
import * as Machine from "../src/Machine.js"
import * as Process from "../src/Process.js"
import type { Driver } from "@ramure/testing/ScriptedAgents"
import { asMade, mkfifo, type NameState, outsideDirectory, SECRET, swapper, untouched, VICTIM } from "./files.js"
import { scripted } from "./helpers.js"

interface Pair {
  readonly a: Agent.Agent
  readonly b: Agent.Agent
}

/**
 * Agents `a` and `b`, connected `a->b`; `prepare` runs before `a` is told to
 * go, then `a` plays `script` (calling the tools); its value is the result.
 */
const withPair = <A>(options: {
  readonly connect?: Agent.ConnectOptions
  readonly prepare?: (pair: Pair) => void
  readonly script: (driver: Driver, pair: Pair) => Effect.Effect<A, unknown>
}) =>
  Effect.gen(function* () {
    let pair: Pair | undefined
    let result: A | undefined
    const main = Process.make("main", () =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })
        pair = { a, b }
        yield* Agent.connect(a, b, { direction: "a->b", ...options.connect })
        options.prepare?.(pair)
        yield* a.on("finish", { description: "", parameters: Schema.Struct({}) }, () => Process.done(undefined))
        yield* a.send("go")
        return yield* Process.wait()
      }))
    yield* main().pipe(
      Effect.provide(scripted({
        a: (driver) =>
          Effect.gen(function* () {
            yield* driver.nextMessage
            result = yield* options.script(driver, pair!)
            yield* driver.call("finish", {})
          })
      }))
    )
    return result!
  })

const inside = (agent: Agent.Agent, ...parts: Array<string>) => path.join(agent.machine.cwd, ...parts)

/** Tool results that are neither a success nor one of the expected refusals. */
const unexpected = (results: ReadonlyArray<ToolCallResult>, success: string, refusals: ReadonlyArray<string>) =>
  results.filter((result) => result.isError ? !refusals.some((refusal) => result.text.includes(refusal)) : !result.text.startsWith(success))

describe("send_file and download_file", () => {
  it.live("send_file copies a file with its permissions, and the receiver is told", () =>
    withPair({
      prepare: ({ a }) => fs.writeFileSync(inside(a, "run.sh"), "echo hi\n", { mode: 0o750 }),
      script: (driver, { b }) =>
        Effect.gen(function* () {
          const sent = yield* driver.call("send_file", { to: "b", path: "run.sh", dest: "bin/run.sh" })
          return { sent, copied: fs.readFileSync(inside(b, "bin", "run.sh"), "utf8"), mode: fs.statSync(inside(b, "bin", "run.sh")).mode & 0o777 }
        })
    }).pipe(
      Effect.map(({ copied, mode, sent }) => {
        expect(sent).toEqual({ isError: false, text: "sent run.sh to b as bin/run.sh (8 bytes)" })
        expect(copied).toBe("echo hi\n")
        expect(mode).toBe(0o750)
      })
    ))

  it.live("download_file copies a file of the peer the agent may message; the result says what was copied", () =>
    withPair({
      prepare: ({ b }) => fs.writeFileSync(inside(b, "notes.md"), "from b"),
      script: (driver, { a }) =>
        Effect.gen(function* () {
          const downloaded = yield* driver.call("download_file", { from: "b", path: "notes.md", dest: "inbox/notes.md" })
          const again = yield* driver.call("download_file", { from: "b", path: "notes.md" })
          const stranger = yield* driver.call("download_file", { from: "nobody", path: "notes.md" })
          const missing = yield* driver.call("download_file", { from: "b", path: "none.md" })
          return {
            downloaded,
            again,
            stranger,
            missing,
            copied: [fs.readFileSync(inside(a, "inbox", "notes.md"), "utf8"), fs.readFileSync(inside(a, "notes.md"), "utf8")]
          }
        })
    }).pipe(
      Effect.map((outcome) => {
        expect(outcome.downloaded).toEqual({ isError: false, text: "downloaded notes.md from b to inbox/notes.md (6 bytes)" })
        expect(outcome.again.text).toBe("downloaded notes.md from b to notes.md (6 bytes)")
        expect(outcome.copied).toEqual(["from b", "from b"])
        expect(outcome.stranger).toEqual({ isError: true, text: 'you are not connected to "nobody"; you can reach: b' })
        expect(outcome.missing).toEqual({ isError: true, text: "cannot download none.md from b: no such file: none.md" })
      })
    ))

  it.live("files over the connection's maxFileBytes are refused; a file at the limit is copied", () =>
    withPair({
      connect: { maxFileBytes: 1000 },
      prepare: ({ a, b }) => {
        fs.writeFileSync(inside(a, "limit.bin"), Buffer.alloc(1000, 1))
        fs.writeFileSync(inside(a, "over.bin"), Buffer.alloc(1001, 1))
        fs.writeFileSync(inside(b, "over.bin"), Buffer.alloc(1001, 2))
      },
      script: (driver, { b }) =>
        Effect.gen(function* () {
          const results = [
            yield* driver.call("send_file", { to: "b", path: "limit.bin" }),
            yield* driver.call("send_file", { to: "b", path: "over.bin", dest: "sent-over.bin" }),
            yield* driver.call("download_file", { from: "b", path: "over.bin", dest: "got-over.bin" })
          ]
          return { results, received: fs.readdirSync(b.machine.cwd).sort() }
        })
    }).pipe(
      Effect.map(({ received, results }) => {
        expect(results.map((result) => result.text)).toEqual([
          "sent limit.bin to b as limit.bin (1000 bytes)",
          "cannot send over.bin to b: over.bin is 1001 bytes, more than the limit of 1000",
          "cannot download over.bin from b: over.bin is 1001 bytes, more than the limit of 1000"
        ])
        expect(received).toEqual(["limit.bin", "over.bin"])
      })
    ))

  it.scopedLive("a hard link on the sender's side is refused; one on the receiver's side is replaced: nothing outside leaks or changes", () =>
    Effect.gen(function* () {
      const out = yield* outsideDirectory
      const outcome = yield* withPair({
        prepare: ({ a, b }) => {
          fs.linkSync(path.join(out, "secret.txt"), inside(a, "leak.txt"))
          fs.writeFileSync(inside(a, "report.txt"), "report")
          fs.linkSync(path.join(out, "victim.txt"), inside(b, "report.txt"))
          fs.writeFileSync(inside(b, "notes.txt"), "notes")
          fs.linkSync(path.join(out, "victim.txt"), inside(a, "notes.txt"))
        },
        script: (driver, { a, b }) =>
          Effect.gen(function* () {
            const results = [
              yield* driver.call("send_file", { to: "b", path: "leak.txt" }),
              yield* driver.call("send_file", { to: "b", path: "report.txt" }),
              yield* driver.call("download_file", { from: "b", path: "notes.txt" })
            ]
            return {
              results: results.map((result) => result.text),
              received: fs.readdirSync(b.machine.cwd).sort(),
              report: fs.readFileSync(inside(b, "report.txt"), "utf8"),
              notes: fs.readFileSync(inside(a, "notes.txt"), "utf8")
            }
          })
      })
      expect(outcome.results).toEqual([
        "cannot send leak.txt to b: leak.txt has 2 hard links (a file with another name, perhaps outside the working directory, is not read)",
        "sent report.txt to b as report.txt (6 bytes)",
        "downloaded notes.txt from b to notes.txt (5 bytes)"
      ])
      expect(outcome.received).toEqual(["notes.txt", "report.txt"])
      expect(outcome.report).toBe("report")
      expect(outcome.notes).toBe("notes")
      expect(untouched(out)).toEqual(asMade)
    }))

  it.live("FIFOs without a writer and a device behind a link are refused at once; other copies and the run go on; a FIFO at the destination is replaced", () =>
    Effect.gen(function* () {
      const fifos = Array.from({ length: 8 }, (_, i) => `fifo${i}`)
      let received: Array<string> = []
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const [a, b] = yield* Effect.all([Agent.make("a"), Agent.make("b")], { concurrency: "unbounded" })
          yield* Agent.connect(a, b, { direction: "a->b" })
          for (const fifo of fifos) mkfifo(inside(a, fifo))
          mkfifo(inside(b, "inbox"))
          fs.symlinkSync("/dev/zero", inside(a, "zero"))
          fs.writeFileSync(inside(a, "plain.txt"), "plain")
          yield* a.on("finish", { description: "", parameters: Schema.Struct({ results: Schema.Array(Schema.String) }) }, ({ results }) =>
            Effect.sync(() => (received = fs.readdirSync(b.machine.cwd).sort())).pipe(Effect.zipRight(Process.done(results))))
          yield* a.send("go")
          return yield* Process.wait()
        }))
      const results = yield* main().pipe(
        Effect.provide(scripted({
          a: (driver) =>
            Effect.gen(function* () {
              yield* driver.nextMessage
              // All at once: more FIFOs than libuv has threads for files, a plain copy among them.
              const calls = [
                ...fifos.map((fifo) => driver.call("send_file", { to: "b", path: fifo })),
                driver.call("send_file", { to: "b", path: "zero" }),
                driver.call("send_file", { to: "b", path: "plain.txt" }),
                driver.call("send_file", { to: "b", path: "plain.txt", dest: "inbox" })
              ]
              const results = yield* Effect.all(calls, { concurrency: "unbounded" })
              yield* driver.call("finish", { results: results.map((result) => result.text) })
            })
        }))
      )
      expect(results).toEqual([
        ...fifos.map((fifo) => `cannot send ${fifo} to b: ${fifo} is a FIFO, not a regular file`),
        "cannot send zero to b: zero is a symbolic link (links are not followed)",
        "sent plain.txt to b as plain.txt (5 bytes)",
        "sent plain.txt to b as inbox (5 bytes)"
      ])
      // The FIFO at the destination was replaced, not written into.
      expect(received).toEqual(["inbox", "plain.txt"])
    }))

  it.live("a device of a machine whose directory is /dev is refused without being read", () =>
    Effect.gen(function* () {
      const main = Process.make("main", () =>
        Effect.gen(function* () {
          const dev = yield* Agent.make("dev", { machine: yield* Machine.make({ name: "dev", cwd: "/dev" }) })
          const b = yield* Agent.make("b")
          yield* Agent.connect(b, dev, { direction: "a->b" })
          yield* b.on("finish", { description: "", parameters: Schema.Struct({ results: Schema.Array(Schema.String) }) }, ({ results }) =>
            Process.done({ results, received: fs.readdirSync(b.machine.cwd) }))
          yield* b.send("go")
          return yield* Process.wait()
        }), { success: Schema.Struct({ results: Schema.Array(Schema.String), received: Schema.Array(Schema.String) }) })
      const outcome = yield* main().pipe(
        Effect.provide(scripted({
          b: (driver) =>
            Effect.gen(function* () {
              yield* driver.nextMessage
              const results = yield* Effect.forEach(["zero", "urandom", "null"], (device) => driver.call("download_file", { from: "dev", path: device }))
              yield* driver.call("finish", { results: results.map((result) => result.text) })
            })
        }))
      )
      expect(outcome.results).toEqual(["zero", "urandom", "null"].map((device) =>
        `cannot download ${device} from dev: ${device} is a character device, not a regular file`))
      expect(outcome.received).toEqual([])
    }))
})

/** How many copies each swapping test makes. */
const copies = 150

/**
 * Another process keeps swapping `name` (under the working directory of the
 * side given) between the states, while `a` makes `copies` copies with
 * `call(i)`; returns every result.
 */
const race = (options: {
  readonly side: "a" | "b"
  readonly prepare: (pair: Pair, out: string) => void
  readonly name: string
  readonly states: (pair: Pair, out: string) => ReadonlyArray<NameState>
  readonly call: (i: number) => { readonly tool: string; readonly args: unknown }
}) =>
  Effect.gen(function* () {
    const out = yield* outsideDirectory
    let after = { a: [] as Array<string>, b: [] as Array<string> }
    const results = yield* withPair({
      prepare: (pair) => options.prepare(pair, out),
      script: (driver, pair) =>
        Effect.scoped(Effect.gen(function* () {
          const target = pair[options.side]
          yield* swapper(inside(target, options.name), options.states(pair, out))
          const results: Array<ToolCallResult> = []
          for (let i = 0; i < copies; i++) {
            const { args, tool } = options.call(i)
            results.push(yield* driver.call(tool, args))
          }
          return results
        })).pipe(Effect.tap(() =>
          Effect.sync(() => (after = { a: files(pair.a.machine.cwd), b: files(pair.b.machine.cwd) }))))
    })
    return { results, out, after }
  })

/** Every file under `dir` with its content (links as `-> target`). */
const files = (dir: string): Array<string> =>
  fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).sort().map((name) => {
    const full = path.join(dir, name)
    const stat = fs.lstatSync(full)
    return stat.isSymbolicLink() ? `${name} -> ${fs.readlinkSync(full)}` : stat.isFile() ? `${name}: ${fs.readFileSync(full, "utf8")}` : `${name}/`
  })

describe(`a name swapped in a loop by another process never lets a copy escape (${copies} copies each)`, () => {
  it.scopedLive("send_file reading through a directory link that flips between inside and outside", () =>
    race({
      side: "a",
      name: "shared",
      prepare: ({ a }, out) => {
        fs.mkdirSync(inside(a, "real"))
        fs.writeFileSync(inside(a, "real", "secret.txt"), "inside")
        fs.symlinkSync(out, inside(a, "shared"))
      },
      states: ({ a }, out) => [{ symlink: inside(a, "real") }, { symlink: out }],
      call: (i) => ({ tool: "send_file", args: { to: "b", path: "shared/secret.txt", dest: `got/${i}.txt` } })
    }).pipe(Effect.map(({ after, out, results }) => {
      expect(unexpected(results, "sent shared/secret.txt", ["escapes"])).toEqual([])
      expect(after.b.filter((line) => line.includes(SECRET))).toEqual([])
      expect(untouched(out)).toEqual(asMade)
    })))

  it.scopedLive("send_file writing through a directory link that flips between inside and outside", () =>
    race({
      side: "b",
      name: "inbox",
      prepare: ({ a, b }, out) => {
        fs.writeFileSync(inside(a, "report.txt"), "report")
        fs.mkdirSync(inside(b, "real"))
        fs.symlinkSync(out, inside(b, "inbox"))
      },
      states: ({ b }, out) => [{ symlink: inside(b, "real") }, { symlink: out }],
      call: (i) => ({ tool: "send_file", args: { to: "b", path: "report.txt", dest: i % 2 === 0 ? `inbox/${i}.txt` : "inbox/victim.txt" } })
    }).pipe(Effect.map(({ out, results }) => {
      expect(unexpected(results, "sent report.txt", ["escapes"])).toEqual([])
      expect(untouched(out)).toEqual(asMade)
    })))

  it.scopedLive("download_file reading a file that flips between a regular file and a link to a secret outside", () =>
    race({
      side: "b",
      name: "data.txt",
      prepare: ({ b }) => fs.writeFileSync(inside(b, "data.txt"), "inside"),
      states: (_, out) => [{ file: "inside" }, { symlink: path.join(out, "secret.txt") }],
      call: (i) => ({ tool: "download_file", args: { from: "b", path: "data.txt", dest: `got/${i}.txt` } })
    }).pipe(Effect.map(({ after, out, results }) => {
      expect(unexpected(results, "downloaded data.txt", ["symbolic link"])).toEqual([])
      expect(after.a.filter((line) => line.includes(SECRET))).toEqual([])
      expect(untouched(out)).toEqual(asMade)
    })))

  it.scopedLive("download_file writing to a name that flips between a regular file, a link and a hard link to a file outside", () =>
    race({
      side: "a",
      name: "data.txt",
      prepare: ({ a, b }) => {
        fs.writeFileSync(inside(b, "data.txt"), "downloaded")
        fs.writeFileSync(inside(a, "data.txt"), "mine")
      },
      states: (_, out) => [{ symlink: path.join(out, "victim.txt") }, { file: "mine" }, { hardlink: path.join(out, "victim.txt") }],
      call: () => ({ tool: "download_file", args: { from: "b", path: "data.txt" } })
    }).pipe(Effect.map(({ out, results }) => {
      expect(unexpected(results, "downloaded data.txt", [])).toEqual([])
      expect(untouched(out)).toEqual(asMade)
      expect(fs.readFileSync(path.join(out, "victim.txt"), "utf8")).toBe(VICTIM)
    })))
})
