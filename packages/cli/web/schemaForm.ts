/**
 * A form for an endpoint's arguments, built from their JSON Schema (the one
 * the process's Schema gives the models): a text field per string, a number
 * field per number, a box per boolean, a list per choice of constants, and
 * JSON for everything else. The run checks the arguments with its Schema;
 * the form only helps to write them.
 */
import { h } from "./dom.js"

type JsonSchema = Readonly<Record<string, unknown>>

const isObject = (value: unknown): value is JsonSchema => typeof value === "object" && value !== null && !Array.isArray(value)

/** The constants a schema allows, when it allows only constants. */
const choices = (schema: JsonSchema): ReadonlyArray<string | number | boolean> | undefined => {
  if (Array.isArray(schema.enum)) return schema.enum as ReadonlyArray<string | number | boolean>
  const options = Array.isArray(schema.anyOf) ? schema.anyOf : undefined
  if (options === undefined || !options.every((option) => isObject(option) && "const" in option)) return undefined
  return options.map((option) => (option as { const: string | number | boolean }).const)
}

/** `#/$defs/Name` references resolved (one level: enough for the structs endpoints take). */
const resolve = (schema: unknown, root: JsonSchema): JsonSchema => {
  if (!isObject(schema)) return {}
  const ref = typeof schema.$ref === "string" ? schema.$ref : undefined
  if (ref?.startsWith("#/$defs/") && isObject(root.$defs)) {
    const target = root.$defs[ref.slice("#/$defs/".length)]
    return isObject(target) ? target : {}
  }
  return schema
}

interface Field {
  readonly name: string
  readonly element: HTMLElement
  /** The value, `undefined` to leave it out, or an error to show. */
  readonly read: () => { readonly value?: unknown; readonly error?: string }
}

const field = (name: string, schema: JsonSchema, required: boolean, id: string): Field => {
  const description = typeof schema.description === "string" ? schema.description : undefined
  const label = (control: HTMLElement) =>
    h("label", { class: "field" }, h("span", { class: "name" }, `${name}${required ? "" : " (optional)"}`), control, description ? h("small", {}, description) : undefined)
  const constants = choices(schema)
  if (constants !== undefined) {
    const select = h("select", { name, id }, ...(required ? [] : [h("option", { value: "" }, "—")]), ...constants.map((c, i) => h("option", { value: String(i) }, JSON.stringify(c))))
    return { name, element: label(select), read: () => (select.value === "" ? {} : { value: constants[Number(select.value)] }) }
  }
  const type = schema.type
  if (type === "boolean") {
    const box = h("input", { type: "checkbox", name, id })
    return { name, element: label(box), read: () => ({ value: box.checked }) }
  }
  if (type === "number" || type === "integer") {
    const input = h("input", { type: "number", name, id, step: type === "integer" ? "1" : "any", required })
    return {
      name,
      element: label(input),
      read: () => {
        if (input.value.trim() === "") return required ? { error: `${name} is required` } : {}
        const value = Number(input.value)
        return Number.isFinite(value) ? { value } : { error: `${name} is not a number` }
      }
    }
  }
  if (type === "string") {
    const input = h("input", { type: "text", name, id, required })
    return { name, element: label(input), read: () => (input.value === "" && !required ? {} : { value: input.value }) }
  }
  const area = h("textarea", { name, id, rows: 2, placeholder: "JSON", spellcheck: "false" })
  return {
    name,
    element: label(area),
    read: () => {
      if (area.value.trim() === "") return required ? { error: `${name} is required` } : {}
      try {
        return { value: JSON.parse(area.value) }
      } catch {
        return { error: `${name} is not valid JSON` }
      }
    }
  }
}

/** The form's fields, and how to read the arguments from them (or the first problem). */
export const makeForm = (parameters: unknown, idPrefix: string) => {
  const root = isObject(parameters) ? parameters : {}
  const schema = resolve(root, root)
  const properties = isObject(schema.properties) ? schema.properties : undefined
  if (schema.type !== "object" && properties === undefined) {
    const whole = field("arguments", root, true, `${idPrefix}-arguments`)
    return { fields: [whole.element], read: () => whole.read() }
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : [])
  const fields = Object.entries(properties ?? {}).map(([name, property]) =>
    field(name, resolve(property, root), required.has(name), `${idPrefix}-${name}`))
  return {
    fields: fields.map((f) => f.element),
    read: (): { readonly value?: unknown; readonly error?: string } => {
      const args: Record<string, unknown> = {}
      for (const f of fields) {
        const { error, value } = f.read()
        if (error !== undefined) return { error }
        if (value !== undefined) args[f.name] = value
      }
      return { value: args }
    }
  }
}
