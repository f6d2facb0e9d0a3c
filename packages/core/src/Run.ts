/**
 * The run's address: where its agents and the CLI reach it. Provided by the
 * server that serves the run's routes.
 */
import { Context } from "effect"

export class Run extends Context.Tag("@ramure/core/Run")<
  Run,
  {
    /** `ws://127.0.0.1:<port>` */
    readonly url: string
    /** Largest frame the server accepts, in bytes. */
    readonly maxMessageBytes: number
  }
>() {}
