/**
 * Where the ramure pi extension (`@ramure/pi-extension`) is, and which of
 * its forms a pi should load: the built file (`dist/ramure-pi-extension.cjs`,
 * made at install) while no source it was built from is newer — it loads in
 * tens of milliseconds —, else, in a development checkout with edited
 * sources, the TypeScript source (pi compiles it at every start: a second or
 * more) until `npm run build` runs again.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

/** The directory of an installed package, looked up the way node does from this module. */
export const findPackage = (name: string, from: string = here): string | undefined => {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name, "package.json")
    if (fs.existsSync(candidate)) return path.dirname(candidate)
    if (path.dirname(dir) === dir) return undefined
  }
}

export const bundleName = "ramure-pi-extension.cjs"
const manifestName = "ramure-pi-extension.json"

/** The extension package's directory: installed next to this package, or in the same workspace. */
export const packageDirectory = (): string | undefined => {
  const installed = findPackage("@ramure/pi-extension")
  if (installed !== undefined) return fs.realpathSync(installed)
  const workspace = path.resolve(here, "../../../pi-extension")
  return fs.existsSync(path.join(workspace, "package.json")) ? workspace : undefined
}

const mtime = (file: string): number | undefined => {
  try {
    return fs.statSync(file).mtimeMs
  } catch {
    return undefined
  }
}

/**
 * The sources newer than the built file (paths relative to the package), or
 * `undefined` when there is no built file or no list of what it was built
 * from. Sources that are not there (an installed package) do not count.
 */
export const staleSources = (directory: string): ReadonlyArray<string> | undefined => {
  const built = mtime(path.join(directory, "dist", bundleName))
  if (built === undefined) return undefined
  let inputs: unknown
  try {
    inputs = JSON.parse(fs.readFileSync(path.join(directory, "dist", manifestName), "utf8")).inputs
  } catch {
    return undefined
  }
  if (!Array.isArray(inputs)) return undefined
  return inputs.filter((input): input is string => {
    if (typeof input !== "string") return false
    const changed = mtime(path.resolve(directory, input))
    return changed !== undefined && changed > built
  })
}

/** The extension file a pi should load. */
export type Resolved =
  | { readonly kind: "bundle"; readonly path: string }
  | { readonly kind: "source"; readonly path: string; readonly why: string }

/** The built file when it is up to date, else the TypeScript source; `undefined` when neither exists. */
export const resolve = (directory: string | undefined = packageDirectory()): Resolved | undefined => {
  if (directory === undefined) return undefined
  const stale = staleSources(directory)
  if (stale !== undefined && stale.length === 0) return { kind: "bundle", path: path.join(directory, "dist", bundleName) }
  const source = path.join(directory, "src", "index.ts")
  if (!fs.existsSync(source)) return undefined
  const why = stale === undefined ? "the extension is not built" : `${stale.join(", ")} changed since the extension was built`
  return { kind: "source", path: fs.realpathSync(source), why }
}

/** The built file for another host (it cannot compile the source), or why there is none to send. */
export const bundleForUpload = (directory: string | undefined = packageDirectory()): { readonly path: string } | { readonly error: string } => {
  const resolved = resolve(directory)
  if (resolved?.kind === "bundle") return { path: resolved.path }
  return { error: `${resolved?.why ?? "the ramure pi extension is not installed"} (npm run build)` }
}

/**
 * In a development checkout, rebuild the extension when a source is newer
 * than the built file (or it was never built): the tests and benchmarks
 * call this first, so that their pis load what users get, built from the
 * sources under test.
 */
export const buildIfStale = (directory: string | undefined = packageDirectory()): void => {
  if (directory === undefined) return
  const stale = staleSources(directory)
  if (stale !== undefined && stale.length === 0) return
  execFileSync(process.execPath, [path.join(directory, "build.mjs")], { stdio: "inherit" })
}
