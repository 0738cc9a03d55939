/**
 * While Depot's state PostgreSQL cannot be reached, every endpoint that needs it answers 503
 * with a JSON description and Retry-After (never a 500, never a hang), the catalog keeps
 * serving from memory, /readyz names PostgreSQL, and everything works again once it is back.
 * The outage is real: Depot reaches its state database through a proxy that the test cuts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { withDatabase } from '../broker/config.js';
import { TcpProxy } from './tcp-proxy.js';
import {
  ADMIN_URL,
  ASYNC,
  SERVICE_ID,
  bindBody,
  bindingPath,
  deleteQuery,
  deprovisionInstance,
  dropDatabase,
  instancePath,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  type TestDepot,
} from './helpers.js';

const DATABASE = 'depot_test_state_outage';

describe('state PostgreSQL down', () => {
  let proxy: TcpProxy;
  let depot: TestDepot;
  let instanceId: string;
  let bindingId: string;
  before(async () => {
    await dropDatabase(DATABASE);
    proxy = await TcpProxy.start(ADMIN_URL, 5432);
    depot = await startDepot('state-outage', { env: { DATABASE_URL: proxy.via(withDatabase(ADMIN_URL, DATABASE)) } });
    instanceId = await provisionInstance(depot);
    bindingId = randomUUID();
    await osb(depot).put(bindingPath(instanceId, bindingId), bindBody()).expect(201);
    await proxy.cut();
  });
  after(async () => {
    await proxy.restore();
    await depot.close();
    await proxy.close();
    await dropDatabase(DATABASE);
  });

  const instance = () => instancePath(instanceId);
  const binding = () => bindingPath(instanceId, bindingId);
  const calls: Array<[string, () => request.Test]> = [
    ['PUT instance (async)', () => osb(depot).put(instancePath(randomUUID()) + ASYNC, provisionBody())],
    ['PUT instance (sync)', () => osb(depot).put(instance(), provisionBody())],
    ['GET instance', () => osb(depot).get(instance())],
    [
      'PATCH instance',
      () => osb(depot).patch(instance() + ASYNC, { service_id: SERVICE_ID, parameters: { extensions: [] } }),
    ],
    ['DELETE instance', () => osb(depot).delete(`${instance()}${ASYNC}&${deleteQuery()}`)],
    ['GET instance last_operation', () => osb(depot).get(`${instance()}/last_operation`)],
    ['PUT binding (sync)', () => osb(depot).put(bindingPath(instanceId, randomUUID()), bindBody())],
    ['PUT binding (async)', () => osb(depot).put(bindingPath(instanceId, randomUUID()) + ASYNC, bindBody())],
    ['GET binding', () => osb(depot).get(binding())],
    ['DELETE binding', () => osb(depot).delete(`${binding()}?${deleteQuery()}`)],
    ['GET binding last_operation', () => osb(depot).get(`${binding()}/last_operation`)],
  ];
  for (const [name, call] of calls) {
    it(`${name}: 503 with a JSON description and Retry-After`, async () => {
      const res = await call().timeout(15_000);
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.match(res.headers['content-type']!, /^application\/json/);
      assert.match(
        (res.body as { description: string }).description,
        /state database cannot be reached or did not answer in time/,
      );
      assert.match(res.headers['retry-after']!, /^\d+$/);
    });
  }

  it('the catalog is served from memory', async () => {
    const res = await osb(depot).get('/v2/catalog').timeout(5000).expect(200);
    assert.ok((res.body as { services: unknown[] }).services.length > 0);
  });

  it('/healthz is fine; /readyz answers 503 naming PostgreSQL', async () => {
    await request(depot.baseUrl).get('/healthz').expect(200);
    const res = await request(depot.baseUrl).get('/readyz').timeout(15_000).expect(503);
    // It names the dependency and nothing more: no error text, address or port.
    assert.deepEqual(res.body, { status: 'not ready', description: 'PostgreSQL is unavailable' });
  });

  it('the outage is logged as one warning per request, and nothing as an error', async () => {
    const lines = depot.logs.flatMap((chunk) => chunk.split('\n')).filter(Boolean);
    const warnings = lines.filter((line) => line.includes('"msg":"state database unavailable"'));
    assert.ok(warnings.length >= calls.length, `${warnings.length} warnings for ${calls.length} requests`);
    for (const line of warnings) assert.equal((JSON.parse(line) as { level: number }).level, 40);
    assert.deepEqual(
      lines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50),
      [],
    );
  });

  it('once PostgreSQL is back, the same requests work again', async () => {
    await proxy.restore();
    await osb(depot).get(binding()).expect(200);
    await osb(depot).delete(`${binding()}?${deleteQuery()}`).expect(200);
    await deprovisionInstance(depot, instanceId);
    await osb(depot).get('/readyz').expect(200);
  });
});
