import { API_VERSION, PASSWORD, USERNAME } from '../test/helpers.js';

export interface OsbReply {
  status: number;
  body: Record<string, unknown>;
}

/** An OSB request to the Depot at `base` with the tests' credentials; the body parsed (`{}` when empty). */
export function osbCaller(base: string): (method: string, path: string, body?: object) => Promise<OsbReply> {
  const headers = {
    Authorization: `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`,
    'X-Broker-API-Version': API_VERSION,
    'Content-Type': 'application/json',
  };
  return async (method, path, body) => {
    const res = await fetch(base + path, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
}
