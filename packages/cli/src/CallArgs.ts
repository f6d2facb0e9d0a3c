/**
 * `ramure call`'s arguments: `key=value` words made into the endpoint's
 * types, read from the JSON Schema of its parameters (which the run's status
 * carries). A string parameter keeps what was typed (`id=123` stays "123");
 * numbers, booleans, arrays and objects are parsed; a key the Schema does not
 * know is JSON when it parses, else a string.
 */
import { Effect } from "effect"
import { UsageError } from "./Errors.js"

type Json = Readonly<Record<string, unknown>>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

const json = (raw: string): unknown => {
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

/** The JSON types a parameter's Schema accepts (empty: anything). */
const typesOf = (schema: unknown): ReadonlyArray<string> => {
  if (!isObject(schema)) return []
  if (Array.isArray(schema.enum)) return [...new Set(schema.enum.map((value) => (value === null ? "null" : typeof value)))]
  const union = schema.anyOf ?? schema.oneOf
  if (Array.isArray(union)) {
    const all = union.map(typesOf)
    return all.some((types) => types.length === 0) ? [] : [...new Set(all.flat())]
  }
  if (typeof schema.type === "string") return [schema.type]
  if (Array.isArray(schema.type)) return schema.type.filter((type): type is string => typeof type === "string")
  return []
}

/** `raw` as a value of the parameter whose JSON Schema is `schema`. */
export const coerce = (raw: string, schema: unknown): unknown => {
  const types = typesOf(schema)
  if (types.length === 0) return json(raw)
  // Typed as a string: taken as typed, even when it looks like a number or JSON.
  if (types.length === 1 && types[0] === "string") return raw
  const parsed = json(raw)
  const fits = (value: unknown) =>
    types.some((type) =>
      type === "integer" ? Number.isInteger(value) :
      type === "array" ? Array.isArray(value) :
      type === "object" ? isObject(value) :
      type === "null" ? value === null :
      typeof value === type
    )
  if (parsed !== raw && fits(parsed)) return parsed
  return types.includes("string") ? raw : parsed
}

/**
 * `key=value` words as the endpoint's arguments (`parameters`: its JSON
 * Schema, when known); a word without `=` is a `UsageError`.
 */
export const parse = (words: ReadonlyArray<string>, parameters?: unknown) =>
  Effect.gen(function* () {
    const properties = isObject(parameters) && isObject(parameters.properties) ? parameters.properties : {}
    const args: Record<string, unknown> = {}
    for (const word of words) {
      const at = word.indexOf("=")
      if (at <= 0) return yield* new UsageError({ reason: `expected key=value, got "${word}"` })
      const key = word.slice(0, at)
      args[key] = coerce(word.slice(at + 1), properties[key])
    }
    return args
  })
