/**
 * The OSB request scenarios: Depot (as `npm start` runs it) against an express floor, the same
 * requests to each, in interleaved rounds (bench/lib/load.ts).
 *   catalog         Depot's default configuration (its default LOG_LEVEL and catalog) vs an app
 *                   that answers Depot's catalog body after the same auth and version checks;
 *   accept          provision of the instant test plan (`depot-test/ok`, TEST_OFFERING=enabled),
 *                   202 with its job queued, vs one INSERT;
 *   last_operation  of provisioned instances vs one SELECT by primary key;
 *   bind, get_binding  synchronous bind (sealed at rest) and GET binding (opened) vs one INSERT / SELECT.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withDatabase } from '../../broker/config.js';
import { ADMIN_URL, dropDatabase } from '../../test/helpers.js';
import { startBenchDepot, type BenchDepot } from '../lib/depot.js';
import { startFloor, type Floor } from '../lib/floor.js';
import { OSB_HEADERS, compare, type Workload } from '../lib/load.js';
import { ratioRow, type Context, type Outcome } from '../lib/scenario.js';

const SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const OK_PLAN_ID = '0e570000-7e57-4000-8000-000000000001';
const FLOOR_DATABASE = 'depot_bench_floor';
/** How many instances (and bindings) the read scenarios cycle through. */
const READ_SET = 200;

const provisionBody = (i: number) =>
  JSON.stringify({
    service_id: SERVICE_ID,
    plan_id: OK_PLAN_ID,
    organization_guid: 'org',
    space_guid: 'space',
    context: { platform: 'cloudfoundry', instance_name: `bench-${i}`, space_guid: 'space' },
    parameters: { size: i },
  });
const bindBody = (i: number) =>
  JSON.stringify({
    service_id: SERVICE_ID,
    plan_id: OK_PLAN_ID,
    context: { platform: 'cloudfoundry' },
    parameters: { credentials: { username: `bench-${i}`, password: 'a-password-of-some-length', uri: 'x://h/db' } },
  });

const accept: Workload = {
  method: 'PUT',
  status: 202,
  request: (i) => ({ path: `/v2/service_instances/${randomUUID()}?accepts_incomplete=true`, body: provisionBody(i) }),
};
const bindTo = (instance: string): Workload => ({
  method: 'PUT',
  status: 201,
  request: (i) => ({ path: `/v2/service_instances/${instance}/service_bindings/${randomUUID()}`, body: bindBody(i) }),
});

async function put(base: string, path: string, body: string, status: number): Promise<void> {
  const res = await fetch(base + path, { method: 'PUT', headers: OSB_HEADERS, body });
  if (res.status !== status) throw new Error(`PUT ${path} answered ${res.status}: ${await res.text()}`);
}

/** Provisions `count` instances of the instant plan on `base` and waits until the last has succeeded. */
async function provisioned(base: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  for (const [i, id] of ids.entries()) {
    await put(base, `/v2/service_instances/${id}?accepts_incomplete=true`, provisionBody(i), 202);
  }
  for (const id of ids) {
    for (;;) {
      const res = await fetch(`${base}/v2/service_instances/${id}/last_operation`, { headers: OSB_HEADERS });
      const body = (await res.json()) as { state?: string };
      if (body.state === 'succeeded') break;
      if (body.state === 'failed') throw new Error(`provision of ${id} failed`);
      await sleep(20);
    }
  }
  return ids;
}

async function bound(base: string, instance: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  for (const [i, id] of ids.entries()) {
    await put(base, `/v2/service_instances/${instance}/service_bindings/${id}`, bindBody(i), 201);
  }
  return ids;
}

/** Depot with the instant plan and the state floor, each on a fresh database, for `work`. */
async function withStateSides<T>(
  context: Context,
  name: string,
  work: (depot: BenchDepot, floor: Floor) => Promise<T>,
): Promise<T> {
  await dropDatabase(FLOOR_DATABASE);
  const { Client } = (await import('pg')).default;
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${FLOOR_DATABASE}`);
  await admin.end();
  const depot = await startBenchDepot(name, context.logDir, { TEST_OFFERING: 'enabled', DRIFT_CHECK_SECONDS: '0' });
  try {
    const floor = await startFloor('state-floor.ts', context.logDir, {
      DATABASE_URL: withDatabase(ADMIN_URL, FLOOR_DATABASE),
    });
    try {
      return await work(depot, floor);
    } finally {
      await floor.stop();
    }
  } finally {
    await depot.stop();
    await dropDatabase(FLOOR_DATABASE);
  }
}

export async function catalog(context: Context): Promise<Outcome> {
  // Depot's defaults: nothing but what a bench must set (bench/lib/depot.ts), LOG_LEVEL included.
  const depot = await startBenchDepot('catalog', context.logDir);
  try {
    const res = await fetch(`${depot.baseUrl}/v2/catalog`, { headers: OSB_HEADERS });
    if (res.status !== 200) throw new Error(`GET /v2/catalog answered ${res.status}`);
    const bodyFile = path.join(context.logDir, 'catalog.json');
    await writeFile(bodyFile, await res.text());
    const floor = await startFloor('catalog-floor.ts', context.logDir, { CATALOG_BODY_FILE: bodyFile });
    try {
      const workload: Workload = { method: 'GET', status: 200, request: () => ({ path: '/v2/catalog' }) };
      const result = await compare(
        { baseUrl: depot.baseUrl, pids: [depot.pid], workload },
        { baseUrl: floor.baseUrl, pids: [floor.pid], workload },
        context.settings,
      );
      return {
        rows: [ratioRow('catalog', result, 0.9)],
        details: { ...result, depotPeakRssKb: depot.memory().peakKb },
      };
    } finally {
      await floor.stop();
    }
  } finally {
    await depot.stop();
  }
}

export function provisionAccept(context: Context): Promise<Outcome> {
  return withStateSides(context, 'accept', async (depot, floor) => {
    const result = await compare(
      { baseUrl: depot.baseUrl, pids: [depot.pid], workload: accept },
      { baseUrl: floor.baseUrl, pids: [floor.pid], workload: accept },
      context.settings,
    );
    return {
      rows: [ratioRow('provision accept', result, 0.6)],
      details: { ...result, depotPeakRssKb: depot.memory().peakKb },
    };
  });
}

export function lastOperation(context: Context): Promise<Outcome> {
  return withStateSides(context, 'last_operation', async (depot, floor) => {
    const cycle = (ids: string[]): Workload => ({
      method: 'GET',
      status: 200,
      request: (i) => ({ path: `/v2/service_instances/${ids[i % ids.length]}/last_operation` }),
    });
    const [depotIds, floorIds] = [
      await provisioned(depot.baseUrl, READ_SET),
      await provisioned(floor.baseUrl, READ_SET),
    ];
    const result = await compare(
      { baseUrl: depot.baseUrl, pids: [depot.pid], workload: cycle(depotIds) },
      { baseUrl: floor.baseUrl, pids: [floor.pid], workload: cycle(floorIds) },
      context.settings,
    );
    return { rows: [ratioRow('last_operation', result, 0.8)], details: result };
  });
}

export function bind(context: Context): Promise<Outcome> {
  return withStateSides(context, 'bind', async (depot, floor) => {
    const [depotInstance] = await provisioned(depot.baseUrl, 1);
    const [floorInstance] = await provisioned(floor.baseUrl, 1);
    const result = await compare(
      { baseUrl: depot.baseUrl, pids: [depot.pid], workload: bindTo(depotInstance!) },
      { baseUrl: floor.baseUrl, pids: [floor.pid], workload: bindTo(floorInstance!) },
      context.settings,
    );
    return { rows: [ratioRow('bind (sync, encrypted)', result, undefined)], details: result };
  });
}

export function getBinding(context: Context): Promise<Outcome> {
  return withStateSides(context, 'get_binding', async (depot, floor) => {
    const cycle = (instance: string, ids: string[]): Workload => ({
      method: 'GET',
      status: 200,
      request: (i) => ({ path: `/v2/service_instances/${instance}/service_bindings/${ids[i % ids.length]}` }),
    });
    const [depotInstance] = await provisioned(depot.baseUrl, 1);
    const [floorInstance] = await provisioned(floor.baseUrl, 1);
    const depotIds = await bound(depot.baseUrl, depotInstance!, READ_SET);
    const floorIds = await bound(floor.baseUrl, floorInstance!, READ_SET);
    const result = await compare(
      { baseUrl: depot.baseUrl, pids: [depot.pid], workload: cycle(depotInstance!, depotIds) },
      { baseUrl: floor.baseUrl, pids: [floor.pid], workload: cycle(floorInstance!, floorIds) },
      context.settings,
    );
    return { rows: [ratioRow('GET binding (encrypted)', result, undefined)], details: result };
  });
}
