// Bundles the CLI into one ESM file, dist/ramure.js, for fast start-up (run at install time).
import { build } from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(fileURLToPath(import.meta.url))
const outfile = path.join(root, "dist", "ramure.js")

/**
 * Libraries the CLI never runs but its dependencies import: config-file parsers
 * (@effect/cli's `fileParse`) and fast-check (Schema arbitraries). Replaced by a
 * stub that throws if used, they no longer cost start-up time.
 */
const unused = ["yaml", "toml", "ini", "fast-check"]
const stubUnused = {
  name: "stub-unused",
  setup(build) {
    build.onResolve({ filter: new RegExp(`^(${unused.join("|")})$`) }, (args) => ({ path: args.path, namespace: "stub" }))
    build.onLoad({ filter: /.*/, namespace: "stub" }, (args) => ({
      contents: `const unsupported = () => { throw new Error("ramure: ${"${args.path}"} is not bundled") }
export const parse = unsupported, array = unsupported, integer = unsupported, constantFrom = unsupported, oneof = unsupported`,
      loader: "js"
    }))
  }
}

const result = await build({
  entryPoints: [path.join(root, "src", "main.ts")],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  minify: true,
  legalComments: "none",
  write: false,
  outfile,
  // ws and yaml are CommonJS and `require` node built-ins; ws's native add-ons are optional.
  banner: { js: "import { createRequire as __ramureCreateRequire } from 'node:module'; const require = __ramureCreateRequire(import.meta.url);" },
  external: ["bufferutil", "utf-8-validate"],
  plugins: [stubUnused],
  logLevel: "warning"
})

// The page of `ramure web`: its script bundled for the browser, its HTML and CSS as they are.
const page = await build({
  entryPoints: [path.join(root, "web", "app.ts")],
  bundle: true,
  platform: "browser",
  target: "es2022",
  format: "iife",
  minify: true,
  legalComments: "none",
  write: false,
  outfile: path.join(root, "dist", "web", "app.js"),
  logLevel: "warning"
})

// Write atomically: a concurrent run of the CLI never sees half a file.
const writeAtomically = (file, contents) => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const temporary = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temporary, contents)
  fs.renameSync(temporary, file)
}
writeAtomically(outfile, result.outputFiles[0].contents)
writeAtomically(path.join(root, "dist", "web", "app.js"), page.outputFiles[0].contents)
for (const file of ["index.html", "app.css"]) {
  writeAtomically(path.join(root, "dist", "web", file), fs.readFileSync(path.join(root, "web", file)))
}
