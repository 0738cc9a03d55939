/** HTTP headers of the Open Service Broker API v2.17 (spec.md, "Headers"). */
import { MAX_API_MINOR, formatApiVersion } from './versions.js';

export const API_VERSION_HEADER = 'X-Broker-API-Version';
export const ORIGINATING_IDENTITY_HEADER = 'X-Broker-API-Originating-Identity';
export const REQUEST_IDENTITY_HEADER = 'X-Broker-API-Request-Identity';

/** The version this code implements; platforms send their own, 2.13 … 2.17 are accepted. */
export const LATEST_API_VERSION = formatApiVersion(MAX_API_MINOR);

/** profile.md, "Originating Identity Header": `<platform> <base64(JSON object)>`. */
export interface OriginatingIdentity {
  platform: string;
  value: Record<string, unknown>;
}

/** Parses the originating identity header; returns an error message for a malformed one. */
export function parseOriginatingIdentity(header: string): OriginatingIdentity | { error: string } {
  const trimmed = header.trim();
  const space = trimmed.indexOf(' ');
  if (space <= 0) return { error: `${ORIGINATING_IDENTITY_HEADER} must be "<platform> <base64-encoded JSON object>"` };
  const platform = trimmed.slice(0, space);
  const encoded = trimmed.slice(space + 1).trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) {
    return { error: `${ORIGINATING_IDENTITY_HEADER} value is not base64` };
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch {
    return { error: `${ORIGINATING_IDENTITY_HEADER} value is not base64-encoded JSON` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: `${ORIGINATING_IDENTITY_HEADER} value must encode a JSON object` };
  }
  return { platform, value: value as Record<string, unknown> };
}

/** Builds the header value a platform (our catalog controller) sends. */
export function formatOriginatingIdentity(identity: OriginatingIdentity): string {
  return `${identity.platform} ${Buffer.from(JSON.stringify(identity.value)).toString('base64')}`;
}
