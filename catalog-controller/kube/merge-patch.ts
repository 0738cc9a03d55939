import { isDeepStrictEqual } from 'node:util';

type JsonMap = Record<string, unknown>;

function isMap(value: unknown): value is JsonMap {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The JSON merge patch (RFC 7386) that turns `before` into `after`: changed members, null for
 * removed ones (an undefined member counts as removed, as JSON.stringify drops it), objects
 * patched member by member and arrays replaced whole. Empty when nothing changed.
 */
export function mergePatch(before: JsonMap, after: JsonMap): JsonMap {
  const patch: JsonMap = {};
  for (const [key, value] of Object.entries(after)) {
    const was = before[key];
    if (value === undefined) {
      if (was !== undefined) patch[key] = null;
    } else if (isMap(value) && isMap(was)) {
      const inner = mergePatch(was, value);
      if (Object.keys(inner).length > 0) patch[key] = inner;
    } else if (!isDeepStrictEqual(value, was)) {
      patch[key] = value;
    }
  }
  for (const [key, was] of Object.entries(before)) {
    if (!(key in after) && was !== undefined) patch[key] = null;
  }
  return patch;
}
