/**
 * Load from this process with autocannon: rounds that alternate between Depot and its floor,
 * the same requests to each, and the median of the per-round ratios of requests per second.
 */
import autocannon from 'autocannon';
import { API_VERSION, PASSWORD, USERNAME } from '../../test/helpers.js';
import { settle } from './processes.js';
import { median, round } from './stats.js';

export const OSB_HEADERS = {
  authorization: `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`,
  'x-broker-api-version': API_VERSION,
  'content-type': 'application/json',
};

export interface Settings {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
}

/** What one side is sent: a method, and a path and body made afresh for each request. */
export interface Workload {
  method: 'GET' | 'PUT';
  /** The status every answer must have. */
  status: number;
  request(i: number): { path: string; body?: string };
}

export interface Measured {
  requestsPerSecond: number;
  p99Ms: number;
  requests: number;
  wrongStatus: number;
}

/** `seconds` of load on `baseUrl`. */
export async function measure(baseUrl: string, workload: Workload, seconds: number, connections: number) {
  let i = 0;
  let wrongStatus = 0;
  const first = workload.request(i++);
  const result = await autocannon({
    url: baseUrl,
    connections,
    duration: seconds,
    method: workload.method,
    headers: OSB_HEADERS,
    requests: [
      {
        path: first.path,
        ...(first.body ? { body: first.body } : {}),
        setupRequest: (request) => {
          const next = workload.request(i++);
          return { ...request, path: next.path, ...(next.body ? { body: next.body } : {}) };
        },
        onResponse: (status) => {
          if (status !== workload.status) wrongStatus++;
        },
      },
    ],
  });
  return {
    requestsPerSecond: round(result.requests.total / result.duration, 1),
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    wrongStatus: wrongStatus + result.errors,
  } satisfies Measured;
}

export interface Side {
  baseUrl: string;
  /** The processes whose idleness is awaited before each round (the server; Depot's worker is in it). */
  pids: number[];
  workload: Workload;
}

export interface Comparison {
  depot: Measured[];
  floor: Measured[];
  ratios: number[];
  medianRatio: number;
}

/** A warm-up of each, then `rounds` × (Depot, floor), each after both are idle. */
export async function compare(depot: Side, floor: Side, settings: Settings): Promise<Comparison> {
  const all = [...depot.pids, ...floor.pids];
  for (const side of [depot, floor]) {
    await measure(side.baseUrl, side.workload, settings.warmupSeconds, settings.connections);
  }
  const out: Comparison = { depot: [], floor: [], ratios: [], medianRatio: NaN };
  for (let r = 0; r < settings.rounds; r++) {
    // Alternate which goes first, so neither always follows the other's leftovers.
    const order = r % 2 === 0 ? [depot, floor] : [floor, depot];
    for (const side of order) {
      await settle(all);
      const measured = await measure(side.baseUrl, side.workload, settings.seconds, settings.connections);
      (side === depot ? out.depot : out.floor).push(measured);
    }
    out.ratios.push(round(out.depot[r]!.requestsPerSecond / out.floor[r]!.requestsPerSecond, 3));
  }
  out.medianRatio = round(median(out.ratios), 3);
  return out;
}
