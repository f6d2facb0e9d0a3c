/** Every figure, in report order. */
import { agentStart } from "./agentStart.js"
import { cleanup } from "./cleanup.js"
import { cliStartup } from "./cliStartup.js"
import type { Figure } from "./lib/Figure.js"
import { logThroughput } from "./logThroughput.js"
import { memory } from "./memory.js"
import { resume } from "./resume.js"
import { scale } from "./scale.js"
import { scaling } from "./scaling.js"
import { toolCallOverhead } from "./toolCallOverhead.js"
import { toolCallThroughput } from "./toolCallThroughput.js"
import { warmPool } from "./warmPool.js"

export const figures: ReadonlyArray<{ readonly id: number; readonly name: string; readonly run: Figure }> = [
  { id: 1, name: "toolCallOverhead", run: toolCallOverhead },
  { id: 2, name: "toolCallThroughput", run: toolCallThroughput },
  { id: 3, name: "scale", run: scale },
  { id: 4, name: "agentStart", run: agentStart },
  { id: 5, name: "cleanup", run: cleanup },
  { id: 6, name: "logThroughput", run: logThroughput },
  { id: 7, name: "cliStartup", run: cliStartup },
  { id: 8, name: "warmPool", run: warmPool },
  { id: 9, name: "memory", run: memory },
  { id: 10, name: "scaling", run: scaling },
  { id: 11, name: "resume", run: resume }
]
