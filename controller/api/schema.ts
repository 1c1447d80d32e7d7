// TypeBox builders for schemas Kubernetes accepts as *structural* OpenAPI v3:
// no anyOf of literals, no patternProperties — enums and string maps spelled
// the way the API server wants them, while TypeBox still derives the TS type.
import { type SchemaOptions, type TSchema, type TUnsafe, Type } from "@sinclair/typebox";

export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: "string", enum: [...values] });
}

export function StringMap(options: SchemaOptions = {}): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({
    ...options,
    type: "object",
    additionalProperties: { type: "string" },
  });
}

/** A Go/Prometheus duration such as 30s, 1m30s, 500ms (the subset both accept). */
export function Duration(options: SchemaOptions = {}): TUnsafe<string> {
  return Type.Unsafe<string>({
    ...options,
    type: "string",
    maxLength: 32,
    pattern: "^([0-9]+(ms|s|m|h))+$",
  });
}

/** Kubernetes resource.Quantity: an integer or a string such as 100m or 64Mi. */
export function Quantity(): TUnsafe<string | number> {
  return Type.Unsafe<string | number>({
    "x-kubernetes-int-or-string": true,
    anyOf: [{ type: "integer" }, { type: "string" }],
    pattern:
      "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
  });
}

export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?:
    | "FieldValueInvalid"
    | "FieldValueForbidden"
    | "FieldValueRequired"
    | "FieldValueDuplicate";
}

/** Attaches CEL validation rules (x-kubernetes-validations) to a schema. */
export function withRules<T extends TSchema>(schema: T, rules: CelRule[]): T {
  return { ...schema, "x-kubernetes-validations": rules };
}

type JsonSchema = Record<string, unknown>;

/** Fields with a default are filled by the API server, so they are not `required` of the user. */
function unrequireDefaulted(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) unrequireDefaulted(item);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const schema = node as JsonSchema;
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (Array.isArray(schema.required) && properties !== undefined) {
    const required = (schema.required as string[]).filter(
      (name) => properties[name]?.default === undefined,
    );
    if (required.length > 0) schema.required = required;
    else delete schema.required;
  }
  for (const value of Object.values(schema)) unrequireDefaulted(value);
}

/**
 * The plain JSON Schema the API server receives in the CRD: TypeBox's symbol
 * keys dropped, and defaulted fields not required (TypeScript still sees them
 * as always present, which they are once defaulted).
 */
export function toOpenApi(schema: TSchema): JsonSchema {
  const plain = JSON.parse(JSON.stringify(schema)) as JsonSchema;
  unrequireDefaulted(plain);
  return plain;
}
