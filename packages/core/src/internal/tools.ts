/**
 * Tools and endpoints share one path from the model's (or a caller's)
 * arguments to a result: decode with the Schema, run the handler, render the
 * outcome as text. A handler's mistakes (not an Effect, a value that cannot
 * be sent) become error results, never a crash of the caller.
 *
 * @internal
 */
import { Context, Effect, Either, ParseResult, Schema, Tracer } from "effect"
import { describe, InvalidToolName } from "../Errors.js"
import * as BuiltIn from "./builtInTools.js"

export { toJsonSchema } from "./toolSchema.js"

/** The tools ramure gives agents itself (along `connect` edges): a process cannot use these names. */
export const builtInTools: ReadonlySet<string> = BuiltIn.names

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** `name` if a process may give a tool (or an endpoint) that name: 1-64 letters, digits, `_`, `-`, not a built-in. */
export const toolName = (name: string): Either.Either<string, InvalidToolName> =>
  !TOOL_NAME.test(name)
    ? Either.left(new InvalidToolName({ tool: name }))
    : builtInTools.has(name)
    ? Either.left(new InvalidToolName({ tool: name, reason: "the name of one of ramure's built-in tools" }))
    : Either.right(name)

/** A handler's success value as the text of a tool result; a value JSON cannot carry is an error. */
export const renderResult = (value: unknown): Either.Either<string, string> => {
  if (typeof value === "string") return Either.right(value)
  if (value === undefined || value === null) return Either.right("ok")
  if (typeof value === "function" || typeof value === "symbol") {
    return Either.left(`the handler returned a ${typeof value}, which cannot be sent`)
  }
  try {
    const text = JSON.stringify(value)
    return text === undefined ? Either.left(`the handler returned a value that cannot be sent`) : Either.right(text)
  } catch (error) {
    return Either.left(`the handler returned a value that cannot be sent: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/** Size of a value as JSON, in bytes (0 for what JSON cannot carry). */
export const jsonBytes = (value: unknown): number => {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? "")
  } catch {
    return 0
  }
}

/** Call `handler`, turning a handler that does not return an Effect into a defect that names the mistake. */
export const invoke = <A, B, E, R>(name: string, handler: (args: A) => Effect.Effect<B, E, R>, args: A): Effect.Effect<B, E, R> =>
  Effect.suspend(() => {
    const result: unknown = handler(args)
    return Effect.isEffect(result)
      ? (result as Effect.Effect<B, E, R>)
      : Effect.die(new TypeError(`the handler of ${name} did not return an Effect (got ${typeof result})`))
  })

export const decoder = <A, I>(schema: Schema.Schema<A, I, never>) =>
  Schema.decodeUnknown(schema, { errors: "all", onExcessProperty: "ignore" })

/**
 * The services a handler runs with: those of the code that registered it,
 * without that code's span, so that the handler's work is traced under the
 * call that runs it.
 */
export const handlerContext = Effect.map(Effect.context<any>(), (context) => Context.omit(Tracer.ParentSpan)(context))

/** Decode the arguments with `schema`, run `handler`, and render the outcome as tool result text. */
export const toolRunner = <A, I, E, R>(
  tool: string,
  schema: Schema.Schema<A, I, never>,
  handler: (args: A) => Effect.Effect<unknown, E, R>
): ((args: unknown) => Effect.Effect<string, string, R>) => {
  const decode = decoder(schema)
  return (args) =>
    decode(args).pipe(
      Effect.mapError((error) => `invalid arguments for ${tool}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`),
      Effect.flatMap((decoded) => Effect.mapError(invoke(tool, handler, decoded), (error) => describe(error))),
      Effect.flatMap((value) => Either.match(renderResult(value), { onLeft: Effect.fail, onRight: Effect.succeed }))
    )
}
