import { createRequire } from 'node:module';
import type { Ajv as AjvInstance, ErrorObject, Options, ValidateFunction } from 'ajv';

// ajv and ajv-draft-04 are CommonJS packages whose default export is the class itself.
const require = createRequire(import.meta.url);
type AjvClass = new (options?: Options) => AjvInstance;
const Ajv07 = require('ajv') as AjvClass;
const Ajv2019 = require('ajv/dist/2019') as AjvClass;
const Ajv2020 = require('ajv/dist/2020') as AjvClass;
const AjvDraft04 = require('ajv-draft-04') as AjvClass;
const addFormats = require('ajv-formats') as (ajv: AjvInstance) => AjvInstance;

export type { ErrorObject, ValidateFunction };

const options: Options = { allErrors: true, strict: false, validateSchema: true };

const byDraft: Array<{ pattern: RegExp; ajv: AjvInstance }> = [
  { pattern: /draft-04/, ajv: addFormats(new AjvDraft04(options)) },
  { pattern: /draft-0[67]/, ajv: addFormats(new Ajv07(options)) },
  { pattern: /2019-09/, ajv: addFormats(new Ajv2019(options)) },
  { pattern: /2020-12/, ajv: addFormats(new Ajv2020(options)) },
];

/**
 * Compiles a JSON Schema with the validator for the draft its `$schema` names (OSB: plan
 * schemas MUST carry `$schema`; platforms MUST support draft-04). Throws on an unknown
 * draft or an invalid schema.
 */
export function compileSchema(schema: Record<string, unknown>): ValidateFunction {
  const draft = typeof schema.$schema === 'string' ? schema.$schema : undefined;
  if (draft === undefined) throw new Error('the schema has no "$schema"');
  const entry = byDraft.find((d) => d.pattern.test(draft));
  if (!entry) throw new Error(`unsupported "$schema" ${JSON.stringify(draft)}`);
  return entry.ajv.compile(schema);
}

/**
 * Compiles a plan schema (`schemas.…parameters`) as Cloud Foundry accepts it at `cf
 * create-service-broker`: `$schema` must be draft-04's, and the schema must be valid against
 * the draft-04 meta-schema (CC refuses other meta-schemas).
 */
export function compilePlanSchema(schema: Record<string, unknown>): ValidateFunction {
  const draft = schema.$schema;
  if (typeof draft !== 'string' || !/^https?:\/\/json-schema\.org\/draft-04\/schema#?$/.test(draft)) {
    throw new Error(
      `"$schema" must be "http://json-schema.org/draft-04/schema#" (Cloud Foundry accepts no other), ` +
        `got ${JSON.stringify(draft)}`,
    );
  }
  return compileSchema(schema);
}

/** One line per failing field: `parameters.extensions[0] must be equal to one of the allowed values`. */
export function describeErrors(errors: ErrorObject[] | null | undefined, root: string): string[] {
  // An if/then failure is reported by the `then` branch's own errors.
  return (errors ?? [])
    .filter((e) => e.keyword !== 'if')
    .map((e) => {
      const field = (root + pointerToPath(e.instancePath)).replace(/^\./, '');
      if (e.keyword === 'required') return `${field}${field ? '.' : ''}${String(e.params.missingProperty)} is required`;
      if (e.keyword === 'additionalProperties') {
        return `${field}${field ? '.' : ''}${String(e.params.additionalProperty)} is not an allowed property`;
      }
      if (e.keyword === 'enum') {
        const allowed = (e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ');
        return `${field || 'value'} must be one of ${allowed}`;
      }
      return `${field || 'value'} ${e.message ?? 'is invalid'}`;
    });
}

function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
    .join('');
}
