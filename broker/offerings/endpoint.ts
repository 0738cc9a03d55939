import { createHash } from 'node:crypto';

/** Where applications reach an offering's server, as its credentials name it. */
export interface PublicEndpoint {
  host: string;
  port: number;
  /** The host as it goes into a URI (an IPv6 address in brackets). */
  uriHost: string;
}

/** The public host and port when set (…_PUBLIC_HOST/_PORT), else those of the service URL. */
export function publicEndpoint(
  serviceUrl: string,
  defaultPort: number,
  publicHost?: string,
  publicPort?: number,
): PublicEndpoint {
  const url = new URL(serviceUrl);
  const host = publicHost ?? (url.hostname || '127.0.0.1');
  return {
    host,
    port: publicPort ?? Number(url.port || defaultPort),
    uriHost: host.includes(':') ? `[${host}]` : host,
  };
}

/** The first `length` hex digits of an id's SHA-256: server-side names that any id maps to safely. */
export function idDigest(id: string, length: number): string {
  return createHash('sha256').update(id).digest('hex').slice(0, length);
}
