/**
 * Version-aware answers: a request of X-Broker-API-Version 2.N gets the catalog, and every
 * other body, with only the fields 2.N defines (a strict 2.13 checker sees no 2.15 field).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { CatalogResponse } from '../osb/index.js';
import {
  ASYNC,
  PASSWORD,
  SERVICE_ID,
  SMALL_PLAN_ID,
  USERNAME,
  bindBody,
  bindingPath,
  defaultCatalogDocument,
  instancePath,
  operationOf,
  osb,
  planOf,
  provisionInstance,
  startDepot,
  waitForOperation,
  type TestDepot,
} from './helpers.js';

const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const ASYNC_UPDATE_FAIL_PLAN = '0e570000-7e57-4000-8000-000000000014';
const VERSIONS = ['2.13', '2.14', '2.15', '2.16', '2.17'] as const;

/** An OSB client that sends `version` as X-Broker-API-Version. */
function osbAt(depot: TestDepot, version: string) {
  const call = (method: 'get' | 'put' | 'patch', url: string) =>
    request(depot.baseUrl)[method](url).auth(USERNAME, PASSWORD).set('X-Broker-API-Version', version);
  return {
    get: (url: string) => call('get', url),
    put: (url: string, body: object) => call('put', url).send(body),
    patch: (url: string, body: object) => call('patch', url).send(body),
  };
}

const minor = (version: string) => Number(version.split('.')[1]);

describe('answers per OSB API version', () => {
  let depot: TestDepot;
  before(async () => {
    const catalog = defaultCatalogDocument();
    // Bindings of the small plan expire, so that their answers carry metadata.expires_at and renew_before.
    planOf(catalog, SERVICE_ID, SMALL_PLAN_ID)['x-depot'] = { connection_limit: 10, credential_lifetime_seconds: 3600 };
    depot = await startDepot('api-versions', { catalog, env: { TEST_OFFERING: 'enabled' } });
  });
  after(async () => depot.close());

  it('the catalog of 2.13 has no field that 2.14–2.17 added; the rest is the same catalog', async () => {
    const old = (await osbAt(depot, '2.13').get('/v2/catalog').expect(200)).body as CatalogResponse;
    const text = JSON.stringify(old);
    for (const field of [
      'maintenance_info',
      'maximum_polling_duration',
      'binding_rotatable',
      'instances_retrievable',
      'bindings_retrievable',
      'allow_context_updates',
    ]) {
      assert.equal(text.includes(`"${field}"`), false, `2.13 catalog has ${field}`);
    }
    const latest = (await osbAt(depot, '2.17').get('/v2/catalog').expect(200)).body as CatalogResponse;
    assert.deepEqual(
      old.services.map((s) => [s.id, s.name, s.bindable, s.plans.map((p) => [p.id, p.name, Boolean(p.schemas)])]),
      latest.services.map((s) => [s.id, s.name, s.bindable, s.plans.map((p) => [p.id, p.name, Boolean(p.schemas)])]),
    );
  });

  for (const version of VERSIONS) {
    it(`the catalog of ${version} has exactly the fields ${version} defines`, async () => {
      const { services } = (await osbAt(depot, version).get('/v2/catalog').expect(200)).body as CatalogResponse;
      const postgresql = services.find((s) => s.id === SERVICE_ID)!;
      const small = postgresql.plans.find((p) => p.id === SMALL_PLAN_ID)!;
      const n = minor(version);
      assert.equal('instances_retrievable' in postgresql, n >= 14);
      assert.equal('bindings_retrievable' in postgresql, n >= 14);
      assert.equal('allow_context_updates' in postgresql, n >= 15);
      assert.equal('maximum_polling_duration' in small, n >= 15);
      assert.equal('maintenance_info' in small, n >= 15);
      assert.equal(small.maintenance_info !== undefined && 'description' in small.maintenance_info, n >= 15);
      assert.equal('binding_rotatable' in small, n >= 17);
    });
  }

  it('each version’s catalog has its own ETag (the same one only where the bodies are the same)', async () => {
    const seen: Array<{ etag: string; body: string }> = [];
    for (const version of VERSIONS) {
      const res = await osbAt(depot, version).get('/v2/catalog').expect(200);
      seen.push({ etag: res.headers.etag!, body: res.text });
      await osbAt(depot, version).get('/v2/catalog').set('If-None-Match', res.headers.etag!).expect(304);
    }
    for (const a of seen) for (const b of seen) assert.equal(a.etag === b.etag, a.body === b.body);
    assert.ok(new Set(seen.map((s) => s.etag)).size >= 4, '2.13, 2.14, 2.15 and 2.17 differ');
    await osbAt(depot, '2.17').get('/v2/catalog').set('If-None-Match', seen[0]!.etag).expect(200);
  });

  it('bind and GET binding: metadata.expires_at from 2.16, renew_before from 2.17', async () => {
    const instanceId = await provisionInstance(depot);
    for (const version of VERSIONS) {
      const bindingId = randomUUID();
      const bound = (await osbAt(depot, version).put(bindingPath(instanceId, bindingId), bindBody()).expect(201)).body;
      const fetched = (await osbAt(depot, version).get(bindingPath(instanceId, bindingId)).expect(200)).body;
      for (const body of [bound, fetched] as Array<{ credentials?: unknown; metadata?: Record<string, unknown> }>) {
        assert.ok(body.credentials, version);
        assert.equal(body.metadata !== undefined, minor(version) >= 16, `${version}: ${JSON.stringify(body.metadata)}`);
        if (body.metadata) {
          assert.ok(body.metadata.expires_at);
          assert.equal('renew_before' in body.metadata, minor(version) >= 17, version);
        }
      }
    }
  });

  it('GET instance: maintenance_info, with its description, from 2.15', async () => {
    const instanceId = await provisionInstance(depot);
    for (const version of VERSIONS) {
      const body = (await osbAt(depot, version).get(instancePath(instanceId)).expect(200)).body as {
        plan_id: string;
        maintenance_info?: { version: string; description?: string };
      };
      assert.equal(body.plan_id, SMALL_PLAN_ID);
      assert.equal(body.maintenance_info !== undefined, minor(version) >= 15, version);
      if (body.maintenance_info) assert.ok('description' in body.maintenance_info, version);
    }
  });

  it('last_operation of a failed update: instance_usable and update_repeatable from 2.16 only', async () => {
    const instanceId = randomUUID();
    const provisionBody = {
      service_id: TEST_SERVICE_ID,
      plan_id: ASYNC_UPDATE_FAIL_PLAN,
      organization_guid: 'org-guid',
      space_guid: 'space-guid',
    };
    const created = await osb(depot)
      .put(instancePath(instanceId) + ASYNC, provisionBody)
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operationOf(created))).state, 'succeeded');
    const update = { service_id: TEST_SERVICE_ID, parameters: { size: 2 } };
    const res = await osb(depot)
      .patch(instancePath(instanceId) + ASYNC, update)
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operationOf(res))).state, 'failed');
    const query = `/last_operation?operation=${encodeURIComponent(operationOf(res))}`;
    const at15 = (
      await osbAt(depot, '2.15')
        .get(instancePath(instanceId) + query)
        .expect(200)
    ).body as Record<string, unknown>;
    const at16 = (
      await osbAt(depot, '2.16')
        .get(instancePath(instanceId) + query)
        .expect(200)
    ).body as Record<string, unknown>;
    assert.equal(at15.state, 'failed');
    assert.equal('instance_usable' in at15 || 'update_repeatable' in at15, false, JSON.stringify(at15));
    assert.equal(at16.instance_usable, true);
    assert.equal(at16.update_repeatable, true);
  });
});
