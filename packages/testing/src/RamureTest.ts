/**
 * A run for tests and for trying a process without a model: agents play
 * scripts (see `ScriptedAgents`) on local machines; everything else — the
 * server, the log, the registry — is the real thing.
 */
import * as NodeRamure from "@ramure/node/NodeRamure"
import * as ScriptedAgents from "./ScriptedAgents.js"

/** A run whose agents play `scripts`. */
export const layerScripted = (scripts: ScriptedAgents.Scripts, options: NodeRamure.LayerOptions = {}) =>
  NodeRamure.make({ ...options, launcher: ScriptedAgents.layer(scripts) })
