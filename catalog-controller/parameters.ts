import { createHash } from 'node:crypto';
import type { JsonObject } from '../osb/index.js';
import type { ParametersFromSource, Secret } from './api/v1beta1.js';

export const REDACTED = '<redacted>';

export interface ResolvedParameters {
  /** What the broker is sent; undefined when there are none (the field is omitted). */
  parameters: JsonObject | undefined;
  /** For status: values that came from Secrets read "<redacted>". */
  redacted: JsonObject | undefined;
  /** sha256 hex of the JSON of the unredacted parameters, keys sorted. */
  checksum: string | undefined;
}

/** A `parametersFrom` or `parameters` problem: reported as ErrorWithParameters and retried. */
export class ParametersError extends Error {
  override name = 'ParametersError';
}

export type SecretReader = (namespace: string, name: string) => Promise<Secret | undefined>;

/**
 * parameters.go: each `parametersFrom[].secretKeyRef` names a key of a Secret in the resource's
 * namespace holding a JSON object, whose top-level keys join `spec.parameters`; a key that
 * appears twice is an error. An empty result means "no parameters".
 */
export async function resolveParameters(
  namespace: string,
  parameters: JsonObject | undefined,
  parametersFrom: ParametersFromSource[] | undefined,
  readSecret: SecretReader,
): Promise<ResolvedParameters> {
  const merged: JsonObject = {};
  const redacted: JsonObject = {};
  for (const source of parametersFrom ?? []) {
    const ref = source.secretKeyRef;
    if (!ref?.name || !ref.key)
      throw new ParametersError('parametersFrom entries need secretKeyRef.name and secretKeyRef.key');
    const secret = await readSecret(namespace, ref.name);
    if (!secret) throw new ParametersError(`secret "${namespace}/${ref.name}" not found`);
    const encoded = secret.data?.[ref.key];
    if (encoded === undefined) throw new ParametersError(`secret "${namespace}/${ref.name}" has no key "${ref.key}"`);
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
    } catch {
      throw new ParametersError(
        `failed to unmarshal parameters as JSON object: key "${ref.key}" of secret "${ref.name}" is not JSON`,
      );
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ParametersError(
        `failed to unmarshal parameters as JSON object: key "${ref.key}" of secret "${ref.name}" is not a JSON object`,
      );
    }
    for (const [key, item] of Object.entries(value as JsonObject)) {
      if (key in merged) throw new ParametersError(`conflict: duplicate entry for parameter "${key}"`);
      merged[key] = item;
      redacted[key] = REDACTED;
    }
  }
  for (const [key, item] of Object.entries(parameters ?? {})) {
    if (key in merged) throw new ParametersError(`conflict: duplicate entry for parameter "${key}"`);
    merged[key] = item;
    redacted[key] = item;
  }
  if (Object.keys(merged).length === 0) return { parameters: undefined, redacted: undefined, checksum: undefined };
  return { parameters: merged, redacted, checksum: checksum(merged) };
}

/** JSON with object keys sorted at every level (Go's encoder order), hashed. */
export function checksum(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as JsonObject)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as JsonObject)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
