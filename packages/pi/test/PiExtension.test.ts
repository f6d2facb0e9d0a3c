/**
 * Which form of the pi extension a pi loads: the built file while it is at
 * least as new as every source it was built from, else the TypeScript source
 * (locally) or an error that says to build it (for another host).
 */
import { describe, expect, it, onTestFinished } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as PiExtension from "../src/internal/piExtension.js"

/**
 * A package directory like `@ramure/pi-extension`'s next to a `protocol`, sources
 * from time 1000, the built file (if any) from 2000; `touch` makes a file
 * newer than the built one. Removed after the test.
 */
const fakePackage = (options: { readonly built: boolean; readonly manifest?: boolean }) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ramure-pi-extension-"))
  onTestFinished(() => fs.rmSync(root, { recursive: true, force: true }))
  const directory = path.join(root, "pi-extension")
  fs.mkdirSync(path.join(directory, "src"), { recursive: true })
  fs.mkdirSync(path.join(root, "protocol", "src"), { recursive: true })
  fs.writeFileSync(path.join(directory, "src", "index.ts"), "export default () => {}\n")
  fs.writeFileSync(path.join(root, "protocol", "src", "AgentClient.ts"), "export {}\n")
  const at = (file: string, seconds: number) => fs.utimesSync(file, seconds, seconds)
  at(path.join(directory, "src", "index.ts"), 1_000)
  at(path.join(root, "protocol", "src", "AgentClient.ts"), 1_000)
  if (options.built) {
    fs.mkdirSync(path.join(directory, "dist"))
    fs.writeFileSync(path.join(directory, "dist", PiExtension.bundleName), "module.exports = () => {}\n")
    at(path.join(directory, "dist", PiExtension.bundleName), 2_000)
    if (options.manifest !== false) {
      fs.writeFileSync(
        path.join(directory, "dist", "ramure-pi-extension.json"),
        JSON.stringify({ digest: "x", inputs: ["src/index.ts", "../protocol/src/AgentClient.ts", "src/gone.ts"] })
      )
    }
  }
  return { directory, touch: (file: string) => at(path.join(directory, file), 3_000) }
}

describe("which pi extension a pi loads", () => {
  it("the built file while every source it was built from is older (sources that are not there do not count)", () => {
    const { directory } = fakePackage({ built: true })
    expect(PiExtension.resolve(directory)).toEqual({ kind: "bundle", path: path.join(directory, "dist", PiExtension.bundleName) })
    expect(PiExtension.bundleForUpload(directory)).toEqual({ path: path.join(directory, "dist", PiExtension.bundleName) })
  })

  it("the TypeScript source once a source it was built from changed, also in another package; another host gets an error saying to build", () => {
    for (const changed of ["src/index.ts", "../protocol/src/AgentClient.ts"]) {
      const { directory, touch } = fakePackage({ built: true })
      touch(changed)
      expect(PiExtension.resolve(directory)).toEqual({
        kind: "source",
        path: fs.realpathSync(path.join(directory, "src", "index.ts")),
        why: `${changed} changed since the extension was built`
      })
      expect(PiExtension.bundleForUpload(directory)).toEqual({
        error: `${changed} changed since the extension was built (npm run build)`
      })
    }
  })

  it("the TypeScript source when the extension is not built, or its list of sources is missing", () => {
    for (const options of [{ built: false }, { built: true, manifest: false }]) {
      const { directory } = fakePackage(options)
      expect(PiExtension.resolve(directory)).toMatchObject({ kind: "source", why: "the extension is not built" })
    }
  })
})
