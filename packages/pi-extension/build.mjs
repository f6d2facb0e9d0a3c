// Builds the extension into one self-contained file, dist/ramure-pi-extension.cjs, that pi
// loads with `-e`, here and on other hosts (run at install time, and by the tests when a
// source is newer). It is the loader (src/loader.ts) with the bundled extension inlined as
// text; the loader compiles it with a V8 code cache. Everything is bundled: the extension
// reaches pi's own modules through Node's loader at run time (src/host.ts), never through
// pi's extension loader, which would evaluate a second copy of pi.
//
// dist/ramure-pi-extension.json lists the workspace files the bundle was built from: a
// launcher in a development checkout uses the bundle only while none is newer.
import { build } from "esbuild"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(fileURLToPath(import.meta.url))
const outfile = path.join(root, "dist", "ramure-pi-extension.cjs")
const manifestFile = path.join(root, "dist", "ramure-pi-extension.json")

const common = {
  // Paths in the metafile are relative to this directory, wherever the build runs from.
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  minify: true,
  legalComments: "none",
  write: false,
  metafile: true,
  logLevel: "warning"
}

// The extension itself. ws's native add-ons are optional (it falls back to JavaScript).
const extension = await build({
  ...common,
  // pi calls the module's export as the extension's factory. An import, not a require: esbuild keeps every
  // export of a required ES module, and so every module of `effect`.
  stdin: { contents: `import ramure from "./src/index.ts"\nmodule.exports = ramure`, resolveDir: root, loader: "js" },
  external: ["bufferutil", "utf-8-validate"]
})
const source = extension.outputFiles[0].text
const digest = crypto.createHash("sha256").update(source).digest("hex").slice(0, 16)

const loader = await build({
  ...common,
  stdin: {
    contents: `module.exports = require("./src/loader.ts").load(__RAMURE_EXTENSION__, ${JSON.stringify(digest)}, __filename)`,
    resolveDir: root,
    loader: "js"
  },
  define: { __RAMURE_EXTENSION__: JSON.stringify(source) }
})

const inputs = [...new Set([...Object.keys(extension.metafile.inputs), ...Object.keys(loader.metafile.inputs)])]
  .filter((input) => !input.includes("node_modules/") && !input.startsWith("<"))
  .map((input) => path.relative(root, path.resolve(root, input)))
  .concat([path.basename(fileURLToPath(import.meta.url))])
  .sort()

// Write atomically: a pi starting meanwhile never loads half a file.
const writeAtomically = (file, contents) => {
  const temporary = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temporary, contents)
  fs.renameSync(temporary, file)
}
fs.mkdirSync(path.dirname(outfile), { recursive: true })
writeAtomically(outfile, loader.outputFiles[0].contents)
writeAtomically(manifestFile, `${JSON.stringify({ digest, inputs }, null, 2)}\n`)
