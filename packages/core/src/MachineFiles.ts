/**
 * What the machines' file access shares, on this host and on others: where
 * a path leads (lexically), the reasons a file is refused, and `readFile` /
 * `writeFile` built on the streaming `openFile` / `writeFileFrom`.
 *
 * @internal
 */
import { Effect, Option, Stream } from "effect"
import * as path from "node:path"
import type { FileSource, MachineError, MachineFiles } from "./Machine.js"

/** Size of the chunks a file is read in. */
export const chunkSize = 64 * 1024

/** Why a file is refused; the same words come back from the script that reads or writes on another host. */
export type Refusal =
  | { readonly _tag: "Escapes" }
  | { readonly _tag: "SymbolicLink" }
  | { readonly _tag: "NotRegular"; readonly kind: string }
  | { readonly _tag: "HardLinks"; readonly count: number }
  | { readonly _tag: "TooLarge"; readonly size: number; readonly limit: number }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "NotADirectory" }
  | { readonly _tag: "IsDirectory" }
  | { readonly _tag: "Blocked" }

/** What a person reads about `file` (as given) refused on the machine whose working directory is `cwd`. */
export const refusalMessage = (cwd: string, file: string, refusal: Refusal): string => {
  switch (refusal._tag) {
    case "Escapes":
      return `path escapes the machine's working directory ${cwd}: ${file}`
    case "SymbolicLink":
      return `${file} is a symbolic link (links are not followed)`
    case "NotRegular":
      return `${file} is ${refusal.kind}, not a regular file`
    case "HardLinks":
      return `${file} has ${refusal.count} hard links (a file with another name, perhaps outside the working directory, is not read)`
    case "TooLarge":
      return `${file} is ${refusal.size} bytes, more than the limit of ${refusal.limit}`
    case "Missing":
      return `no such file: ${file}`
    case "NotADirectory":
      return `${file}: a directory on its way is not a directory`
    case "IsDirectory":
      return `${file} is a directory`
    case "Blocked":
      return `${file} could not be opened at once (it changed into a FIFO or a device while it was opened)`
  }
}

/** A file type as a person names it. */
export const kindName = (kind: "fifo" | "character-device" | "block-device" | "socket" | "directory" | "other"): string => {
  switch (kind) {
    case "fifo":
      return "a FIFO"
    case "character-device":
      return "a character device"
    case "block-device":
      return "a block device"
    case "socket":
      return "a socket"
    case "directory":
      return "a directory"
    case "other":
      return "not a plain file"
  }
}

/** Where `file` leads under `cwd`: the directories on the way and its name; `undefined` if it leaves `cwd`. */
export interface Location {
  readonly directories: ReadonlyArray<string>
  readonly name: string
}

/**
 * `file` (relative to `cwd`, or absolute) resolved lexically: `undefined`
 * if it leads outside `cwd` or to `cwd` itself. Links are the openers' job.
 */
export const locate = (cwd: string, file: string): Location | undefined => {
  if (file.includes("\0")) return undefined
  const relative = path.posix.relative(cwd, path.posix.resolve(cwd, file))
  if (relative === "" || relative === ".." || relative.startsWith("../") || path.posix.isAbsolute(relative)) return undefined
  const parts = relative.split("/")
  return { directories: parts.slice(0, -1), name: parts[parts.length - 1]! }
}

/**
 * `stream` held to exactly `size` bytes: bytes past it are dropped (the file
 * grew), and ending short is `short(received)`.
 */
export const exactly = <E>(
  size: number,
  stream: Stream.Stream<Uint8Array, E>,
  short: (received: number) => Effect.Effect<never, E>
): Stream.Stream<Uint8Array, E> =>
  Stream.suspend(() => {
    let received = 0
    const cut = Stream.filterMap(stream, (chunk) => {
      const take = Math.min(chunk.byteLength, size - received)
      received += take
      return take <= 0 ? Option.none() : Option.some(take === chunk.byteLength ? chunk : chunk.subarray(0, take))
    }).pipe(Stream.takeUntil(() => received >= size))
    return Stream.concat(cut, Stream.drain(Stream.fromEffect(Effect.suspend(() => (received < size ? short(received) : Effect.void)))))
  })

/** `readFile` and `writeFile` of machines whose `openFile` and `writeFileFrom` are given. */
export const complete = (
  files: Pick<MachineFiles, "openFile" | "writeFileFrom">,
  attributes: Record<string, unknown>
): MachineFiles => ({
  ...files,
  readFile: Effect.fn("Machine.readFile", { attributes })(function* (file, options) {
    return yield* Effect.scoped(Effect.flatMap(files.openFile(file, options), collect))
  }),
  writeFile: Effect.fn("Machine.writeFile", { attributes })(function* (file, data, options) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data
    const source: FileSource = { size: bytes.byteLength, mode: 0o666, stream: Stream.make(bytes) }
    return yield* files.writeFileFrom(file, source, options)
  })
})

/** All of a source's bytes in one array. */
const collect = (source: FileSource): Effect.Effect<Uint8Array, MachineError> =>
  Effect.suspend(() => {
    const bytes = new Uint8Array(source.size)
    let offset = 0
    return Stream.runForEach(source.stream, (chunk) =>
      Effect.sync(() => {
        bytes.set(chunk, offset)
        offset += chunk.byteLength
      })).pipe(Effect.as(bytes))
  })
