/**
 * @ramure/testing: Testing ramure processes without a model.
 */
export * as RamureTest from "./RamureTest.js"
export * as ScriptedAgents from "./ScriptedAgents.js"
export * as ScriptedModel from "./ScriptedModel.js"
