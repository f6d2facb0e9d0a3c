/**
 * The files of a machine on this host, opened so that nothing outside its
 * working directory is read or written, whatever its files are or become
 * meanwhile: links, hard links, FIFOs, devices, a symbolic link swapped
 * between a check and a use.
 *
 * Node has no `openat`, but Linux's `/proc/self/fd/<fd>/<name>` is one: the
 * kernel goes to the directory the descriptor was opened on and looks
 * `name` up there. Each directory on the way is opened, and where it really
 * is (`/proc/self/fd/<fd>`) checked, before anything is looked up or created
 * in it; the file itself is opened with `O_NOFOLLOW | O_NONBLOCK` (a FIFO
 * never blocks the open, so no thread of libuv's pool waits on it) and
 * checked through the descriptor.
 *
 * @internal
 */
import { Effect, Exit, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import type { FileHandle } from "node:fs/promises"
import type { FileSource, MachineError, MachineFiles, ReadFileOptions, WriteFileOptions } from "@ramure/core/Machine"
import { chunkSize, complete, exactly, kindName, type Location, locate, type Refusal, refusalMessage } from "@ramure/core/MachineFiles"

const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = nodeFs.constants
const fsp = nodeFs.promises

/** `name` looked up in the directory open as `directory`. */
const inDirectory = (directory: FileHandle, name: string): string => `/proc/self/fd/${directory.fd}/${name}`

const isWithin = (root: string, candidate: string): boolean =>
  candidate === root || candidate.startsWith(root === "/" ? "/" : `${root}/`)

/** Why a file system call failed: a refusal, or another error's code. */
type Failure = Refusal | { readonly _tag: "Other"; readonly reason: string }

const fromErrno = (error: unknown): Failure => {
  const code = (error as NodeJS.ErrnoException)?.code
  switch (code) {
    case "ENOENT":
      return { _tag: "Missing" }
    case "ENOTDIR":
      return { _tag: "NotADirectory" }
    case "ELOOP":
      return { _tag: "SymbolicLink" }
    case "EISDIR":
    case "ENOTEMPTY":
    case "EEXIST":
      return { _tag: "IsDirectory" }
    case "EACCES":
    case "EPERM":
      return { _tag: "Other", reason: "permission denied" }
    case "ENOSPC":
      return { _tag: "Other", reason: "no space left on the device" }
    case "ENAMETOOLONG":
      return { _tag: "Other", reason: "name too long" }
    default:
      return { _tag: "Other", reason: code ?? String(error) }
  }
}

const call = <A>(run: () => Promise<A>): Effect.Effect<A, Failure> => Effect.tryPromise({ try: run, catch: fromErrno })

const close = (handle: FileHandle) => Effect.ignore(Effect.tryPromise(() => handle.close()))

/** What a file's type is, unless it is a regular file. */
const irregular = (stats: nodeFs.Stats): Refusal | undefined => {
  if (stats.isFile()) return undefined
  if (stats.isSymbolicLink()) return { _tag: "SymbolicLink" }
  const kind = stats.isFIFO()
    ? "fifo"
    : stats.isCharacterDevice()
    ? "character-device"
    : stats.isBlockDevice()
    ? "block-device"
    : stats.isSocket()
    ? "socket"
    : stats.isDirectory()
    ? "directory"
    : "other"
  return { _tag: "NotRegular", kind: kindName(kind) }
}

const refuse = (refusal: Refusal): Effect.Effect<never, Failure> => Effect.fail(refusal)

/** The files of the machine whose (real) working directory is `cwd`. */
export const make = (
  cwd: string,
  fail: (operation: string, message: string) => MachineError,
  attributes: Record<string, unknown>
): MachineFiles => {
  const hasProc = nodeFs.existsSync("/proc/self/fd")

  const describe = (file: string, failure: Failure): string =>
    failure._tag === "Other" ? `${file}: ${failure.reason}` : refusalMessage(cwd, file, failure)

  /**
   * Run `body` on where `file` leads, turning its failures into `MachineError`s
   * of `operation` (those of a source being copied pass through).
   */
  const at = <A, R>(operation: string, file: string, body: (location: Location) => Effect.Effect<A, Failure | MachineError, R>) =>
    Effect.suspend(() => {
      if (!hasProc) return Effect.fail(fail(operation, "this platform has no /proc/self/fd, which confined file access needs (Linux)"))
      const location = locate(cwd, file)
      return (location === undefined ? refuse({ _tag: "Escapes" }) : body(location)).pipe(
        Effect.mapError((failure) => (failure._tag === "MachineError" ? failure : fail(operation, describe(file, failure))))
      )
    })

  /** Open a directory (following links) and check that it really lies in the working directory. */
  const openDirectory = (location: string) =>
    Effect.gen(function* () {
      const handle = yield* Effect.acquireRelease(call(() => fsp.open(location, O_RDONLY | O_DIRECTORY)), close)
      const real = yield* call(() => fsp.readlink(`/proc/self/fd/${handle.fd}`))
      if (!isWithin(cwd, real)) return yield* refuse({ _tag: "Escapes" })
      return handle
    })

  /** The directory `file` is in, each step checked; missing ones are created when `create`. */
  const directoryOf = (directories: ReadonlyArray<string>, create: boolean) =>
    Effect.gen(function* () {
      let directory = yield* openDirectory(cwd)
      for (const name of directories) {
        const next = inDirectory(directory, name)
        if (create) {
          yield* call(() => fsp.mkdir(next)).pipe(Effect.catchIf((failure) => failure._tag === "IsDirectory", () => Effect.void))
        }
        directory = yield* openDirectory(next)
      }
      return directory
    })

  /** Read exactly `size` bytes of `handle`, from the start. */
  const contents = (handle: FileHandle, size: number, file: string): Stream.Stream<Uint8Array, MachineError> =>
    Stream.unfoldEffect(0, (position) =>
      position >= size
        ? Effect.succeed(Option.none())
        : call(() => handle.read(Buffer.allocUnsafe(Math.min(chunkSize, size - position)), 0, Math.min(chunkSize, size - position), position)).pipe(
          Effect.mapError((failure) => fail("readFile", describe(file, failure))),
          Effect.map(({ buffer, bytesRead }) =>
            bytesRead === 0
              ? Option.none()
              : Option.some([new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead), position + bytesRead] as const)
          )
        )
    ).pipe((stream) => exactly(size, stream, () => Effect.fail(fail("readFile", `${file} shrank while it was read`))))

  const openFile = Effect.fn("Machine.openFile", { attributes })(function* (file: string, options?: ReadFileOptions) {
    return yield* at("readFile", file, ({ directories, name }) =>
      Effect.gen(function* () {
        const directory = yield* directoryOf(directories, false)
        const target = inDirectory(directory, name)
        // Checked before opening, so that a device is not even opened; then again through the descriptor.
        const found = irregular(yield* call(() => fsp.lstat(target)))
        if (found !== undefined) return yield* refuse(found)
        const handle = yield* Effect.acquireRelease(call(() => fsp.open(target, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)), close)
        const opened = yield* call(() => handle.stat())
        const changed = irregular(opened)
        if (changed !== undefined) return yield* refuse(changed)
        if (opened.nlink > 1) return yield* refuse({ _tag: "HardLinks", count: opened.nlink })
        if (options?.maxBytes !== undefined && opened.size > options.maxBytes) {
          return yield* refuse({ _tag: "TooLarge", size: opened.size, limit: options.maxBytes })
        }
        return { size: opened.size, mode: opened.mode & 0o777, stream: contents(handle, opened.size, file) } satisfies FileSource
      }))
  })

  const writeFileFrom = Effect.fn("Machine.writeFileFrom", { attributes })(function* (
    file: string,
    source: FileSource,
    options?: WriteFileOptions
  ) {
    return yield* at("writeFile", file, ({ directories, name }) =>
      Effect.gen(function* () {
        const directory = yield* directoryOf(directories, true)
        const target = inDirectory(directory, name)
        const existing = yield* Effect.option(call(() => fsp.lstat(target)))
        if (Option.isSome(existing) && existing.value.isDirectory()) return yield* refuse({ _tag: "IsDirectory" })
        const mode = options?.mode ?? (Option.isSome(existing) && existing.value.isFile() ? existing.value.mode & 0o777 : 0o666)
        // A fresh name (O_EXCL): never an existing file, link or FIFO.
        const temporary = inDirectory(directory, `.ramure-${crypto.randomBytes(8).toString("hex")}.tmp`)
        const handle = yield* Effect.acquireRelease(
          call(() => fsp.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY, mode)),
          close
        )
        yield* Effect.addFinalizer((exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.ignore(Effect.tryPromise(() => fsp.unlink(temporary)))))
        let written = 0
        yield* Stream.runForEach(source.stream, (chunk) =>
          Effect.gen(function* () {
            if (written + chunk.byteLength > source.size) {
              return yield* Effect.fail({ _tag: "Other", reason: `more data than the announced ${source.size} bytes` } as const)
            }
            let offset = 0
            while (offset < chunk.byteLength) {
              const { bytesWritten } = yield* call(() => handle.write(chunk, offset, chunk.byteLength - offset, written + offset))
              offset += bytesWritten
            }
            written += chunk.byteLength
          }))
        if (written !== source.size) {
          return yield* Effect.fail({ _tag: "Other", reason: `the data ended after ${written} of ${source.size} bytes` } as const)
        }
        // The rename replaces whatever has the name (a link, a hard-linked file, a FIFO) instead of writing through it.
        yield* call(() => fsp.rename(temporary, target))
      }).pipe(Effect.scoped))
  })

  return complete({ openFile, writeFileFrom }, attributes)
}
