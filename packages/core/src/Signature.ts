/**
 * An endpoint as a person reads it: `add_task(spec: string, priority?: integer = 0)`
 * from its name and the JSON Schema of its parameters, and the first line of
 * its description. Shared by `ramure status` and a run's STATUS.md.
 */

type Json = Readonly<Record<string, unknown>>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

/** A JSON Schema's type, written short: `string`, `integer[]`, `"a" | "b"`, `object`. */
export const typeOf = (schema: unknown): string => {
  if (!isObject(schema)) return "any"
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => JSON.stringify(value)).join(" | ")
  if ("const" in schema) return JSON.stringify(schema.const)
  const union = schema.anyOf ?? schema.oneOf
  if (Array.isArray(union)) return union.map(typeOf).join(" | ")
  if (Array.isArray(schema.type)) return schema.type.join(" | ")
  if (schema.type === "array") {
    const item = typeOf(schema.items)
    return item.includes(" ") ? `(${item})[]` : `${item}[]`
  }
  return typeof schema.type === "string" ? schema.type : "any"
}

/** `name(a: string, b?: integer = 0)`: required parameters plain, the others with `?` (and their default). */
export const signature = (name: string, parameters: unknown): string => {
  const properties = isObject(parameters) && isObject(parameters.properties) ? parameters.properties : {}
  const required = isObject(parameters) && Array.isArray(parameters.required) ? parameters.required : []
  const params = Object.entries(properties).map(([key, schema]) => {
    const optional = !required.includes(key)
    const fallback = optional && isObject(schema) && "default" in schema ? ` = ${JSON.stringify(schema.default)}` : ""
    return `${key}${optional ? "?" : ""}: ${typeOf(schema)}${fallback}`
  })
  return `${name}(${params.join(", ")})`
}

/** The first non-empty line of a description. */
export const firstLine = (description: string): string =>
  description.split("\n").map((line) => line.trim()).find((line) => line.length > 0) ?? ""

/** `signature — first line of the description` (just the signature without a description). */
export const describeEndpoint = (endpoint: { readonly name: string; readonly description: string; readonly parameters: unknown }): string => {
  const summary = firstLine(endpoint.description)
  return summary === "" ? signature(endpoint.name, endpoint.parameters) : `${signature(endpoint.name, endpoint.parameters)} — ${summary}`
}
