/**
 * The files of a machine on another host, with the guarantees of machines
 * on this one (see `MachineFiles`), kept by small POSIX `sh` scripts run
 * there through the host's connection, their bytes streamed.
 *
 * The scripts move into each directory on the way (`cd -P`) and check where
 * they really are (`/proc/$$/cwd`) before looking anything up or creating
 * anything in it, so every later name is looked up in a checked directory.
 * A file is read through one descriptor, checked (type, hard links, where
 * it is, size) through `/proc/$$/fd/3` before a byte is sent; a watchdog
 * ends an open that a FIFO swapped in after the checks would block. A file
 * is written to a new file (`set -C`: never an existing name) and renamed
 * into place (`mv -T`). Refusals come back as `ramure-refused <why>` lines.
 *
 * @internal
 */
import { Effect, Fiber, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import type { FileSource, MachineError, MachineFiles, ReadFileOptions, WriteFileOptions } from "@ramure/core/Machine"
import { complete, exactly, kindName, locate, type Refusal, refusalMessage } from "@ramure/core/MachineFiles"
import type { SshConnection } from "./sshConnection.js"

/** Move into the machine's directory, then into each directory given (creating missing ones with `create`), checking each. */
const prelude = `
unset CDPATH
refuse() { printf 'ramure-refused %s\\n' "$*" >&2; exit 3; }
[ -d /proc/$$/fd ] || { echo "this host has no /proc, which confined file access needs (Linux)" >&2; exit 1; }
enter() {
  create=$1; shift
  cd -P -- "$cwd" 2>/dev/null || refuse missing
  here=$(readlink /proc/$$/cwd)
  [ "$here" = "$cwd" ] || refuse escapes
  for part in "$@"; do
    if [ "$create" = 1 ] && [ ! -e "./$part" ] && [ ! -L "./$part" ]; then mkdir -- "./$part" 2>/dev/null; fi
    cd -P -- "./$part" 2>/dev/null || { [ -e "./$part" ] && refuse notdir; refuse missing; }
    here=$(readlink /proc/$$/cwd)
    case $here in "$cwd"|"\${cwd%/}"/*) ;; *) refuse escapes ;; esac
  done
}
kind() {
  if [ -p "$1" ]; then echo fifo
  elif [ -c "$1" ]; then echo character-device
  elif [ -b "$1" ]; then echo block-device
  elif [ -S "$1" ]; then echo socket
  elif [ -d "$1" ]; then echo directory
  elif [ ! -e "$1" ]; then echo missing
  elif [ ! -f "$1" ]; then echo other
  fi
}`

/** `cwd name limit dir…`: prints `size mode` on a line, then exactly `size` bytes. */
const readScript = `
cwd=$1 name=$2 limit=$3; shift 3
${prelude}
enter 0 "$@"
[ -L "./$name" ] && refuse symlink
found=$(kind "./$name"); [ -z "$found" ] || refuse "$found"
[ -r "./$name" ] || refuse unreadable
opened() {
  kill "$watchdog" 2>/dev/null
  fd=/proc/$$/fd/3
  found=$(kind "$fd"); [ -z "$found" ] || refuse "$found"
  [ "$(readlink -- "$fd")" = "\${here%/}/$name" ] || refuse symlink
  set -- $(stat -L -c '%h %s %a' -- "$fd")
  # 0: removed since it was opened (it was inside); more than 1: it has another name, perhaps outside.
  [ "$1" -le 1 ] || refuse hardlinks "$1"
  [ "$limit" -lt 0 ] || [ "$2" -le "$limit" ] || refuse toolarge "$2" "$limit"
  printf '%s %s\\n' "$2" "$3"
  exec head -c "$2" <&3
}
# A FIFO that took the file's place after the checks would block the open: the watchdog ends it.
(
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  sleep 10 </dev/null >/dev/null 2>&1 & nap=$!
  wait "$nap" && { printf 'ramure-refused blocked\\n' >&2; kill -KILL $$; }
) </dev/null >/dev/null &
watchdog=$!
opened 3< "./$name" || { kill "$watchdog" 2>/dev/null; refuse unreadable; }`

/** `cwd name size mode temporary dir…`: reads exactly `size` bytes from stdin into the file. */
const writeScript = `
cwd=$1 name=$2 size=$3 mode=$4 temporary=$5; shift 5
${prelude}
enter 1 "$@"
[ -d "./$name" ] && [ ! -L "./$name" ] && refuse is-directory
[ -w . ] || refuse unwritable
if [ "$mode" = keep ]; then
  if [ -f "./$name" ] && [ ! -L "./$name" ]; then mode=$(stat -c %a -- "./$name"); else mode=666; fi
fi
mode=$(printf '%o' $(( 0$mode & ~0$(umask) )))
written() {
  trap 'rm -f -- "./$temporary"' EXIT
  fd=/proc/$$/fd/4
  [ -f "$fd" ] && [ "$(readlink -- "$fd")" = "\${here%/}/$temporary" ] || refuse escapes
  head -c "$size" >&4
  got=$(stat -L -c %s -- "$fd")
  [ "$got" = "$size" ] || refuse short "$got"
  chmod "$mode" -- "$fd" || exit 1
  mv -f -T -- "./$temporary" "./$name" 2>/dev/null || { [ -d "./$name" ] && refuse is-directory; echo "cannot rename the file into place" >&2; exit 1; }
  trap - EXIT
}
set -C
written 4> "./$temporary"`

const kinds = ["fifo", "character-device", "block-device", "socket", "directory", "other"] as const

/** A refusal the script reported, or other text of what went wrong. */
const explain = (stderr: string, exitCode: number, size?: number): Refusal | string => {
  const refused = /^ramure-refused (\S+)(?: (\S+))?(?: (\S+))?$/m.exec(stderr)
  if (refused === null) return stderr.trim() || `exit code ${exitCode}`
  const [, why, first, second] = refused
  switch (why) {
    case "escapes":
      return { _tag: "Escapes" }
    case "symlink":
      return { _tag: "SymbolicLink" }
    case "missing":
      return { _tag: "Missing" }
    case "notdir":
      return { _tag: "NotADirectory" }
    case "is-directory":
      return { _tag: "IsDirectory" }
    case "blocked":
      return { _tag: "Blocked" }
    case "hardlinks":
      return { _tag: "HardLinks", count: Number(first) }
    case "toolarge":
      return { _tag: "TooLarge", size: Number(first), limit: Number(second) }
    case "short":
      return `the data ended after ${first} of ${size ?? "?"} bytes`
    case "unreadable":
    case "unwritable":
      return "permission denied"
    default: {
      const kind = kinds.find((known) => known === why)
      return { _tag: "NotRegular", kind: kindName(kind ?? "other") }
    }
  }
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}

export interface Options {
  readonly connection: SshConnection
  /**
   * Reads and writes at once on the host: a copy between two machines of a
   * host holds a channel for each side, so together they must stay under the
   * connection's channels, or copies would wait on each other forever.
   */
  readonly slots: { readonly reading: Effect.Semaphore; readonly writing: Effect.Semaphore }
  /** The machine's real working directory there. */
  readonly cwd: string
  readonly fail: (operation: string, message: string) => MachineError
  readonly attributes: Record<string, unknown>
}

export const make = (options: Options): MachineFiles => {
  const { attributes, connection, cwd, fail, slots } = options
  const refused = (operation: string, file: string, why: Refusal | string) =>
    fail(operation, typeof why === "string" ? `${file}: ${why}` : refusalMessage(cwd, file, why))
  const hold = (slot: Effect.Semaphore) => Effect.acquireRelease(slot.take(1), () => slot.release(1))

  const openFile = Effect.fn("Machine.openFile", { attributes })(function* (file: string, readOptions?: ReadFileOptions) {
    const location = locate(cwd, file)
    if (location === undefined) return yield* Effect.fail(refused("readFile", file, { _tag: "Escapes" }))
    yield* hold(slots.reading)
    const args = [cwd, location.name, String(readOptions?.maxBytes ?? -1), ...location.directories]
    const proc = yield* connection.start(readScript, args).pipe(Effect.mapError((error) => fail("readFile", error.reason)))
    const failed = (size?: number) =>
      Effect.flatMap(proc.exit, ({ exitCode, stderr }) =>
        Effect.fail(refused("readFile", file, stderr.trim() === "" && size !== undefined ? "it shrank while it was read" : explain(stderr, exitCode, size))))
    const pull = (yield* Stream.toPull(proc.stdout)).pipe(
      Effect.mapError(Option.map((error) => fail("readFile", error.reason)))
    )
    // The first line is the file's size and mode, sent once it has been checked.
    let received: Uint8Array = new Uint8Array(0)
    while (received.indexOf(10) === -1) {
      if (received.byteLength > 64) return yield* Effect.fail(fail("readFile", `${file}: unexpected answer from the host`))
      const chunk = yield* pull.pipe(
        Effect.map(Option.some),
        Effect.catchAll(Option.match({ onNone: () => Effect.succeed(Option.none()), onSome: Effect.fail }))
      )
      if (Option.isNone(chunk)) return yield* failed()
      for (const bytes of chunk.value) received = concat(received, bytes)
    }
    const newline = received.indexOf(10)
    const [size, mode] = new TextDecoder().decode(received.subarray(0, newline)).split(" ")
    const rest = received.subarray(newline + 1)
    const bytes = Number(size)
    const stream = Stream.concat(
      rest.byteLength > 0 ? Stream.make(rest) : Stream.empty,
      Stream.repeatEffectChunkOption(pull)
    )
    return {
      size: bytes,
      mode: Number.parseInt(mode ?? "644", 8),
      stream: exactly(bytes, stream, () => failed(bytes))
    } satisfies FileSource
  })

  const writeFileFrom = Effect.fn("Machine.writeFileFrom", { attributes })(function* (
    file: string,
    source: FileSource,
    writeOptions?: WriteFileOptions
  ) {
    const location = locate(cwd, file)
    if (location === undefined) return yield* Effect.fail(refused("writeFile", file, { _tag: "Escapes" }))
    return yield* Effect.scoped(Effect.gen(function* () {
      yield* hold(slots.writing)
      const mode = writeOptions?.mode === undefined ? "keep" : (writeOptions.mode & 0o777).toString(8)
      const temporary = `.ramure-${crypto.randomBytes(8).toString("hex")}.tmp`
      const args = [cwd, location.name, String(source.size), mode, temporary, ...location.directories]
      const proc = yield* connection.start(writeScript, args).pipe(Effect.mapError((error) => fail("writeFile", error.reason)))
      const feeding = yield* Effect.forkScoped(Stream.run(source.stream, proc.stdin))
      // The source's own failure (its file shrank, its host dropped) is the answer; a closed
      // stdin only means the script has stopped reading, and its exit says why.
      const sourceFailed = Fiber.join(feeding).pipe(
        Effect.matchEffect({
          onFailure: (error) => (error._tag === "MachineError" ? Effect.fail(error) : Effect.never),
          onSuccess: () => Effect.never
        })
      )
      const { exitCode, stderr } = yield* Effect.raceFirst(proc.exit, sourceFailed)
      if (exitCode !== 0) return yield* Effect.fail(refused("writeFile", file, explain(stderr, exitCode, source.size)))
    }))
  })

  return complete({ openFile, writeFileFrom }, attributes)
}
