import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Ramure from "../src/Ramure.js"
import type * as ScriptedAgents from "../src/ScriptedAgents.js"

/** A fresh, private RAMURE_HOME. */
export const tempHome = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "ramure-test-"))

/** A scripted run in a fresh home. */
export const scripted = (scripts: ScriptedAgents.Scripts, options: Ramure.LayerOptions = {}) =>
  Ramure.layerScripted(scripts, { home: tempHome(), program: "test", ...options })

export const readJsonl = (file: string): Array<any> =>
  fs.readFileSync(file, "utf8").split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line))
