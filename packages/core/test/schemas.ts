/** Tool parameter Schemas with what models stumble on: integers, a class, enums, nesting, arrays, descriptions. */
import { Schema } from "effect"

export class Person extends Schema.Class<Person>("Person")({
  name: Schema.String.annotations({ description: "their full name" }),
  age: Schema.Int
}) {}

export const Plan = Schema.Struct({
  title: Schema.NonEmptyString,
  priority: Schema.Int.annotations({ description: "1 is the most urgent" }),
  kind: Schema.Literal("bug", "feature"),
  owner: Person,
  steps: Schema.Array(Schema.Struct({ text: Schema.String, done: Schema.Boolean })),
  note: Schema.optional(Schema.String)
})

/** What a model must be told of `Plan`, whatever the provider passes on of the JSON Schema. */
export const expectPlanSchema = (parameters: any, expect: (value: unknown) => any) => {
  expect(JSON.stringify(parameters)).not.toContain("$ref")
  expect(parameters.required).toEqual(["title", "priority", "kind", "owner", "steps"])
  expect(parameters.properties.title).toMatchObject({ type: "string", minLength: 1 })
  expect(parameters.properties.priority).toMatchObject({ type: "integer", description: "1 is the most urgent" })
  expect(parameters.properties.kind).toEqual({ type: "string", enum: ["bug", "feature"] })
  expect(parameters.properties.owner).toMatchObject({
    type: "object",
    required: ["name", "age"],
    properties: { name: { type: "string", description: "their full name" }, age: { type: "integer" } }
  })
  expect(parameters.properties.steps).toMatchObject({
    type: "array",
    items: { type: "object", required: ["text", "done"], properties: { text: { type: "string" }, done: { type: "boolean" } } }
  })
  expect(parameters.properties.note).toEqual({ type: "string" })
}
