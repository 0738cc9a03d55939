/**
 * Benchmark: what encryption at rest costs on the paths that seal or open a stored value. Depot
 * runs in this process (API and worker) with the failure-free `test` offering, whose operations do
 * no work, so the figures are Depot's own: request handling, PostgreSQL, sealing and opening.
 * One request in flight at a time, over a kept-alive connection; medians and 95th percentiles:
 *   - provision accept: PUT instance with accepts_incomplete (seals context, parameters, request);
 *   - bind: a synchronous PUT binding, answered when its job has ended (seals and opens);
 *   - GET binding: opens the stored response and parameters;
 *   - last_operation: reads no sealed column (the control).
 *
 *   node --import tsx bench/binding-reads.ts [requests=2000]
 *
 * Prints one JSON document.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { API_VERSION, PASSWORD, startDepot, USERNAME } from '../test/helpers.js';

const requests = Number(process.argv[2] ?? 2000);
const SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const PLAN_ID = '0e570000-7e57-4000-8000-000000000001';
const headers = {
  Authorization: `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`,
  'X-Broker-API-Version': API_VERSION,
  'Content-Type': 'application/json',
};

const depot = await startDepot('bench-binding-reads', { env: { TEST_OFFERING: 'enabled' } });

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${depot.baseUrl}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

/** Median and p95 in ms of `count` sequential runs of `step`, which must answer `status`. */
async function measure(count: number, status: number, step: (i: number) => Promise<{ status: number }>) {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const res = await step(i);
    ms.push(performance.now() - start);
    if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}`);
  }
  ms.sort((a, b) => a - b);
  const at = (q: number) => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]! * 1000) / 1000;
  return { requests: count, median_ms: at(0.5), p95_ms: at(0.95) };
}

const body = { service_id: SERVICE_ID, plan_id: PLAN_ID, organization_guid: 'org', space_guid: 'space' };
const context = { platform: 'cloudfoundry', instance_name: 'bench', space_guid: 'space' };
try {
  const instances: string[] = [];
  const provisionAccept = await measure(Math.min(requests, 500), 202, (i) => {
    instances[i] = randomUUID();
    return call('PUT', `/v2/service_instances/${instances[i]}?accepts_incomplete=true`, {
      ...body,
      context,
      parameters: { size: i },
    });
  });
  for (const id of instances) {
    for (;;) {
      const last = await call('GET', `/v2/service_instances/${id}/last_operation`);
      if ((last.body as { state: string }).state !== 'in progress') break;
    }
  }
  const instance = instances[0]!;
  const bindings: string[] = [];
  const credentials = { username: 'bench', password: 'a-password-of-some-length', uri: 'postgresql://h/db' };
  const bind = await measure(Math.min(requests, 500), 201, (i) => {
    bindings[i] = randomUUID();
    return call('PUT', `/v2/service_instances/${instance}/service_bindings/${bindings[i]}`, {
      ...body,
      context,
      parameters: { credentials },
    });
  });
  const getBinding = await measure(requests, 200, (i) =>
    call('GET', `/v2/service_instances/${instance}/service_bindings/${bindings[i % bindings.length]}`),
  );
  const lastOperation = await measure(requests, 200, (i) =>
    call('GET', `/v2/service_instances/${instances[i % instances.length]}/last_operation`),
  );
  const results = { provision_accept: provisionAccept, bind, get_binding: getBinding, last_operation: lastOperation };
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} finally {
  await depot.close();
}
