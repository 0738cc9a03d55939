import { JSONPath } from 'jsonpath-plus';
import type { JsonObject } from '../osb/index.js';
import type { Secret, SecretTransform } from './api/v1beta1.js';

/** A transform that cannot be applied (a missing Secret, a bad JSONPath): retried. */
export class SecretTransformError extends Error {
  override name = 'SecretTransformError';
}

export type NamespacedSecretReader = (name: string) => Promise<Secret | undefined>;

/**
 * transformCredentials: `secretTransforms` in list order on the credentials map. `addKeysFrom`
 * reads only Secrets of the binding's own namespace (the original read any namespace with the
 * controller's rights: a confused deputy).
 */
export async function transformCredentials(
  credentials: JsonObject,
  transforms: SecretTransform[] | undefined,
  bindingNamespace: string,
  readSecret: NamespacedSecretReader,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { ...credentials };
  for (const transform of transforms ?? []) {
    if (transform.addKey) {
      const { key, value, stringValue, jsonPathExpression } = transform.addKey;
      if (jsonPathExpression) out[key] = evaluateJsonPath(jsonPathExpression, out);
      else if (stringValue !== undefined) out[key] = stringValue;
      else if (value !== undefined) out[key] = Buffer.from(value, 'base64');
    } else if (transform.renameKey) {
      const { from, to } = transform.renameKey;
      if (from in out) {
        out[to] = out[from];
        delete out[from];
      }
    } else if (transform.addKeysFrom) {
      const ref = transform.addKeysFrom.secretRef;
      if (!ref?.name) throw new SecretTransformError('addKeysFrom needs secretRef.name');
      if (ref.namespace && ref.namespace !== bindingNamespace) {
        throw new SecretTransformError(
          `addKeysFrom may only read Secrets in the binding's namespace "${bindingNamespace}", not "${ref.namespace}"`,
        );
      }
      const secret = await readSecret(ref.name);
      if (!secret) throw new SecretTransformError(`addKeysFrom: secret "${bindingNamespace}/${ref.name}" not found`);
      for (const [key, encoded] of Object.entries(secret.data ?? {})) out[key] = Buffer.from(encoded, 'base64');
    } else if (transform.removeKey) {
      delete out[transform.removeKey.key];
    }
  }
  return out;
}

/** Kubernetes JSONPath template `{.a.b}` evaluated against the current map. */
function evaluateJsonPath(template: string, data: Record<string, unknown>): unknown {
  const match = /^\{(.*)\}$/.exec(template.trim());
  if (!match?.[1]) throw new SecretTransformError(`jsonPathExpression "${template}" must look like {.key}`);
  const path = match[1].startsWith('$') ? match[1] : `$${match[1]}`;
  let results: unknown[];
  try {
    results = JSONPath({ path, json: toJson(data), wrap: true }) as unknown[];
  } catch (error) {
    throw new SecretTransformError(`jsonPathExpression "${template}": ${(error as Error).message}`);
  }
  if (results.length === 0) throw new SecretTransformError(`jsonPathExpression "${template}" matched nothing`);
  return results[0];
}

function toJson(data: Record<string, unknown>): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(data)) out[key] = Buffer.isBuffer(value) ? value.toString('utf8') : value;
  return out;
}

/** Secret `data`: bytes as they are, strings raw, anything else JSON-encoded; all base64. */
export function secretData(values: Record<string, unknown>): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    const bytes = Buffer.isBuffer(value)
      ? value
      : typeof value === 'string'
        ? Buffer.from(value, 'utf8')
        : Buffer.from(JSON.stringify(value), 'utf8');
    data[key] = bytes.toString('base64');
  }
  return data;
}
