/**
 * Before any test runs: build the pi extension if a source is newer than the
 * built file, so that every pi the tests start loads the extension as users
 * get it (the built file), built from the sources under test.
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import * as PiExtension from "./packages/core/src/internal/piExtension.js"

export default function setup(): void {
  const directory = PiExtension.packageDirectory()
  if (directory === undefined) return
  const stale = PiExtension.staleSources(directory)
  if (stale !== undefined && stale.length === 0) return
  execFileSync(process.execPath, [path.join(directory, "build.mjs")], { stdio: "inherit" })
}
