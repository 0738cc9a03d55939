/**
 * fast-check arbitraries derived from a JSON Schema (the subset Depot's request schemas, plan
 * schemas and CRD schemas use: type, properties, required, additionalProperties, items, enum,
 * minLength, maxLength, minimum, uniqueItems, nullable, x-kubernetes-preserve-unknown-fields).
 *
 * `validValue` makes documents the schema accepts, with unknown members where the schema allows
 * them (OSB: receivers MUST ignore unknown fields); `invalidValue` makes documents with exactly
 * one violation (a missing required member, a wrong type, a string too short or too long, a value
 * outside an enum, a duplicate in a unique array, an unknown member where none is allowed), and
 * says which.
 */
import fc from 'fast-check';

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: unknown[];
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  uniqueItems?: boolean;
  nullable?: boolean;
  format?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  [keyword: string]: unknown;
}

export interface SchemaArbitraryOptions {
  /** The values of a member, by its dotted path (`bind_resource.app_guid`); undefined: from the schema. */
  field?: (path: string) => fc.Arbitrary<unknown> | undefined;
  /** Strings of free-form values and unknown members (default: any printable text, no U+0000). */
  text?: fc.Arbitrary<string>;
  /** Add unknown members to objects that allow them (default true). */
  unknownMembers?: boolean;
}

/** A document with one violation, and what the violation is (for the failure report). */
export interface Invalid {
  value: unknown;
  violation: string;
}

/** Printable text of any script (emoji, combining marks, RTL), without U+0000 (jsonb cannot hold it). */
export const anyText: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 24 }),
    fc.string({ unit: 'binary', maxLength: 24 }),
    fc.string({ maxLength: 24 }),
  )
  .map((text) => text.replace(/\u0000/g, ''));

/** Free-form JSON (the shape of `parameters` and `context`), shallow enough for any validator. */
export function freeJson(text: fc.Arbitrary<string> = anyText, maxDepth = 3): fc.Arbitrary<unknown> {
  return fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
      text,
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(text, tie('value'), { maxKeys: 4 }),
    ),
  })).value;
}

/** A free-form JSON object. */
export function freeObject(text: fc.Arbitrary<string> = anyText, maxDepth = 3): fc.Arbitrary<Record<string, unknown>> {
  return fc.dictionary(text, freeJson(text, maxDepth - 1), { maxKeys: 5 });
}

const typesOf = (schema: JsonSchema): string[] =>
  schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];

/** A value the schema accepts. */
export function validValue(schema: JsonSchema, options: SchemaArbitraryOptions = {}, path = ''): fc.Arbitrary<unknown> {
  const custom = path ? options.field?.(path) : undefined;
  if (custom) return custom;
  const text = options.text ?? anyText;
  const value = validOfType(schema, options, path, text);
  return schema.nullable
    ? fc.oneof({ weight: 9, arbitrary: value }, { weight: 1, arbitrary: fc.constant(null) })
    : value;
}

function validOfType(
  schema: JsonSchema,
  options: SchemaArbitraryOptions,
  path: string,
  text: fc.Arbitrary<string>,
): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const [type] = typesOf(schema);
  switch (type) {
    case 'object':
      return validObject(schema, options, path, text);
    case 'array': {
      const item = validValue(schema.items ?? {}, options, `${path}[]`);
      return schema.uniqueItems
        ? fc.uniqueArray(item, { maxLength: 4, selector: (v) => JSON.stringify(v) })
        : fc.array(item, { maxLength: 4 });
    }
    case 'string':
      return boundedText(text, schema.minLength ?? 0, schema.maxLength);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1_000_000, max: 1_000_000 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e9, max: 1e9, noNaN: true });
    default:
      return freeJson(text);
  }
}

/** Text of at least `min` and at most `max` code points (ajv counts code points). */
function boundedText(text: fc.Arbitrary<string>, min: number, max: number | undefined): fc.Arbitrary<string> {
  const points = (s: string) => [...s].length;
  return fc
    .tuple(text, fc.string({ unit: 'grapheme-ascii', minLength: min, maxLength: Math.max(min, 8) }))
    .map(([a, pad]) => (points(a) >= min ? a : a + pad))
    .map((s) => (max !== undefined && points(s) > max ? [...s].slice(0, max).join('') : s))
    .map((s) => (points(s) < min ? s + 'x'.repeat(min - points(s)) : s));
}

function validObject(
  schema: JsonSchema,
  options: SchemaArbitraryOptions,
  path: string,
  text: fc.Arbitrary<string>,
): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  const names = Object.keys(properties);
  const free = names.length === 0 && schema.additionalProperties === undefined;
  if (free) return freeObject(text);
  const members = Object.fromEntries(
    names.map((name) => [name, validValue(properties[name]!, options, path ? `${path}.${name}` : name)]),
  );
  const known = fc.record(members, { requiredKeys: schema.required ?? [] });
  // Members the schema describes with additionalProperties are not unknown ones.
  const described = typeof schema.additionalProperties === 'object';
  const mayAddUnknown = schema.additionalProperties !== false && options.unknownMembers !== false;
  if (!mayAddUnknown && !described) return known;
  const unknownName = text.filter((name) => !names.includes(name) && name !== '__proto__');
  const unknown =
    typeof schema.additionalProperties === 'object'
      ? fc.dictionary(unknownName, validValue(schema.additionalProperties, options), { maxKeys: 2 })
      : fc.dictionary(unknownName, freeJson(text, 2), { maxKeys: 2 });
  return fc
    .tuple(known, fc.option(unknown, { freq: 3 }))
    .map(([k, u]) => (u ? { ...u, ...(k as Record<string, unknown>) } : (k as Record<string, unknown>)));
}

/** JSON values of each type, to put one of the wrong type where the schema wants another. */
const ofType: Record<string, fc.Arbitrary<unknown>> = {
  null: fc.constant(null),
  boolean: fc.boolean(),
  integer: fc.integer(),
  number: fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n)),
  string: anyText,
  array: fc.array(fc.oneof(fc.integer(), anyText), { maxLength: 3 }),
  object: fc.dictionary(anyText, fc.oneof(fc.integer(), anyText), { maxKeys: 3 }),
};

function wrongType(schema: JsonSchema): fc.Arbitrary<Invalid> | undefined {
  const types = typesOf(schema);
  if (types.length === 0) return undefined;
  const accepted = new Set(types.flatMap((t) => (t === 'number' ? ['number', 'integer'] : [t])));
  if (schema.nullable) accepted.add('null');
  const wrong = Object.keys(ofType).filter((t) => !accepted.has(t));
  return fc
    .constantFrom(...wrong)
    .chain((t) => ofType[t]!.map((value) => ({ value, violation: `a ${t} instead of a ${types.join(' or ')}` })));
}

/** A document the schema rejects, with exactly one thing wrong at `path` or below. */
export function invalidValue(
  schema: JsonSchema,
  options: SchemaArbitraryOptions = {},
  path = '',
): fc.Arbitrary<Invalid> {
  const at = path || 'the document';
  const choices: Array<fc.Arbitrary<Invalid>> = [];
  const typeChoice = wrongType(schema);
  if (typeChoice) choices.push(typeChoice.map((i) => ({ ...i, violation: `${at}: ${i.violation}` })));
  if (schema.enum) {
    const allowed = schema.enum.map((v) => JSON.stringify(v));
    choices.push(
      anyText
        .filter((v) => !allowed.includes(JSON.stringify(v)))
        .map((value) => ({ value, violation: `${at}: not one of ${allowed.join(', ')}` })),
    );
  }
  const [type] = typesOf(schema);
  if (type === 'string' && (schema.minLength ?? 0) > 0) {
    const min = schema.minLength!;
    choices.push(
      fc
        .string({ unit: 'grapheme-ascii', maxLength: min - 1 })
        .map((value) => ({ value, violation: `${at}: shorter than ${min}` })),
    );
  }
  if (type === 'string' && schema.maxLength !== undefined) {
    const max = schema.maxLength;
    choices.push(
      fc.tuple(fc.integer({ min: 1, max: 64 }), fc.constantFrom('x', 'é', '😀', '\u05e9')).map(([extra, unit]) => ({
        value: unit.repeat(max + extra),
        violation: `${at}: longer than ${max} characters`,
      })),
    );
  }
  if (type === 'array' && schema.items) {
    const items = schema.items;
    choices.push(
      fc
        .tuple(
          fc.array(validValue(items, options, `${path}[]`), { maxLength: 2 }),
          invalidValue(items, options, `${path}[]`),
        )
        .map(([ok, bad]) => ({ value: [...ok, bad.value], violation: bad.violation })),
    );
    if (schema.uniqueItems) {
      choices.push(
        validValue(items, options, `${path}[]`).map((v) => ({ value: [v, v], violation: `${at}: a duplicate item` })),
      );
    }
  }
  if (type === 'object') choices.push(...invalidMembers(schema, options, path));
  if (choices.length === 0) throw new Error(`no way to break the schema at ${at}: ${JSON.stringify(schema)}`);
  return fc.oneof(...choices);
}

function invalidMembers(
  schema: JsonSchema,
  options: SchemaArbitraryOptions,
  path: string,
): Array<fc.Arbitrary<Invalid>> {
  const properties = schema.properties ?? {};
  const valid = validObject(schema, { ...options, unknownMembers: false }, path, options.text ?? anyText);
  const choices: Array<fc.Arbitrary<Invalid>> = [];
  const child = (name: string) => (path ? `${path}.${name}` : name);
  for (const name of schema.required ?? []) {
    choices.push(
      valid.map((object) => {
        const copy = { ...object };
        delete copy[name];
        return { value: copy, violation: `${child(name)}: missing` };
      }),
    );
  }
  for (const [name, member] of Object.entries(properties)) {
    if (!breakable(member)) continue;
    choices.push(
      fc
        .tuple(valid, invalidValue(member, options, child(name)))
        .map(([object, bad]) => ({ value: { ...object, [name]: bad.value }, violation: bad.violation })),
    );
  }
  if (schema.additionalProperties === false) {
    const names = Object.keys(properties);
    choices.push(
      fc
        .tuple(
          valid,
          anyText.filter((n) => n !== '' && !names.includes(n) && n !== '__proto__'),
          freeJson(),
        )
        .map(([object, name, value]) => ({
          value: { ...object, [name]: value },
          violation: `${child(name)}: not an allowed member`,
        })),
    );
  }
  return choices;
}

/** Whether invalidValue can break this member (a schema with no keywords accepts everything). */
function breakable(schema: JsonSchema): boolean {
  return (
    typesOf(schema).length > 0 ||
    schema.enum !== undefined ||
    (schema.properties !== undefined && Object.keys(schema.properties).length > 0)
  );
}
