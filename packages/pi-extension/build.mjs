// Bundles the extension into one self-contained file, dist/ramure-pi-extension.cjs, that a
// pi on another host loads with `-e` (run at install time). Everything is inlined except
// the packages pi itself provides to extensions. CommonJS: pi's loader (jiti) runs it
// without transpiling it first.
import { build } from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(fileURLToPath(import.meta.url))
const outfile = path.join(root, "dist", "ramure-pi-extension.cjs")

const result = await build({
  // pi calls the module's export as the extension's factory.
  stdin: { contents: `module.exports = require("./src/index.ts").default`, resolveDir: root, loader: "js" },
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  minify: true,
  legalComments: "none",
  write: false,
  outfile,
  // pi resolves these for its extensions; ws's native add-ons are optional.
  external: ["@mariozechner/*", "typebox", "typebox/*", "@sinclair/typebox", "@sinclair/typebox/*", "bufferutil", "utf-8-validate"],
  logLevel: "warning"
})

// Write atomically: a pi starting meanwhile never loads half a file.
fs.mkdirSync(path.dirname(outfile), { recursive: true })
const temporary = `${outfile}.${process.pid}.tmp`
fs.writeFileSync(temporary, result.outputFiles[0].contents)
fs.renameSync(temporary, outfile)
