/**
 * The JSON Schema a model sees for a tool's parameters. It must stand on its
 * own: some providers forward only a schema's `properties` and `required`
 * (pi's Anthropic provider drops `$defs`), so every `$ref` is replaced by
 * what it names — a recursive schema has no such form and is refused. Extra
 * fields are allowed (`additionalProperties: true`), as ramure's decoding
 * ignores them: a model that adds one still gets its call through.
 *
 * @internal
 */
import { Either, JSONSchema, type Schema } from "effect"
import { InvalidToolSchema } from "../Errors.js"

type Json = unknown

const refPrefix = "#/$defs/"

/** A JSON pointer segment, unescaped (`~1` is `/`, `~0` is `~`). */
const unescape = (segment: string): string => segment.replace(/~1/g, "/").replace(/~0/g, "~")

class Recursive {
  constructor(readonly name: string) {}
}

/** `node` with every `$ref` replaced by its definition; `through` are the definitions being inlined. */
const inline = (node: Json, definitions: Record<string, Json>, through: ReadonlyArray<string>): Json => {
  if (Array.isArray(node)) return node.map((item) => inline(item, definitions, through))
  if (typeof node !== "object" || node === null) return node
  const { $ref, ...rest } = node as Record<string, Json>
  const own = Object.fromEntries(Object.entries(rest).map(([key, value]) => [key, inline(value, definitions, through)]))
  if (typeof $ref !== "string") return $ref === undefined ? own : { ...own, $ref: inline($ref, definitions, through) }
  const name = $ref.startsWith(refPrefix) ? unescape($ref.slice(refPrefix.length)) : $ref
  if (through.includes(name)) throw new Recursive(name)
  if (!(name in definitions)) throw new Error(`it refers to ${$ref}, which it does not define`)
  // Annotations written next to the reference (a field's description) win over the definition's.
  return { ...(inline(definitions[name], definitions, [...through, name]) as object), ...own }
}

const firstLine = (text: string): string => text.split("\n")[0]!.trim()

/** The self-contained JSON Schema of `schema`, the parameters of `tool`; a clear error when there is none. */
export const toJsonSchema = (tool: string, schema: Schema.Schema<any, any, never>): Either.Either<Json, InvalidToolSchema> => {
  const refuse = (reason: string) => Either.left(new InvalidToolSchema({ tool, reason }))
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  let root: Json
  try {
    root = JSONSchema.fromAST(schema.ast, { definitions, topLevelReferenceStrategy: "skip", additionalPropertiesStrategy: "allow" })
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error)
    // Effect needs an identifier to describe a suspended (recursive) schema at all.
    return refuse(
      /Suspend/.test(text)
        ? "it is recursive (it contains itself, through Schema.suspend); give the model a fixed depth instead"
        : firstLine(text)
    )
  }
  try {
    const inlined = inline(root, definitions, []) as Record<string, Json>
    const { $schema: _schema, $defs: _defs, ...rest } = inlined
    return Either.right(rest)
  } catch (error) {
    if (error instanceof Recursive) {
      return refuse(`it is recursive (${error.name} contains itself); give the model a fixed depth instead`)
    }
    return refuse(error instanceof Error ? error.message : String(error))
  }
}
