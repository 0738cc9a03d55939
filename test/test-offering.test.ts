import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { buildCatalog } from '../broker/catalog/catalog-file.js';
import { loadConfig } from '../broker/config.js';
import { ConfigError } from '../runtime/config.js';
import { FaultCounter } from '../testing/fault-counter.js';
import { TestOffering } from '../testing/test-offering.js';
import {
  ASYNC,
  bindingPath,
  instancePath,
  operationOf,
  osb,
  startDepot,
  stateCounts,
  waitForOperation,
  type LastOperationBody,
  type TestDepot,
} from './helpers.js';

const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const SINGLE_SERVICE_ID = '0e570001-7e57-4000-8000-000000000000';

/** The test catalog's plan ids, by name (test-catalog.yaml). */
const PLAN = {
  ok: '0e570000-7e57-4000-8000-000000000001',
  slow: '0e570000-7e57-4000-8000-000000000002',
  provisionFail400: '0e570000-7e57-4000-8000-000000000003',
  provisionFail500: '0e570000-7e57-4000-8000-000000000004',
  provisionFail500x3: '0e570000-7e57-4000-8000-000000000005',
  updateFail400: '0e570000-7e57-4000-8000-000000000006',
  updateFail500x3: '0e570000-7e57-4000-8000-000000000007',
  deprovisionFail400: '0e570000-7e57-4000-8000-000000000008',
  deprovisionFail500x3: '0e570000-7e57-4000-8000-000000000009',
  bindFail400: '0e570000-7e57-4000-8000-000000000010',
  bindFail500: '0e570000-7e57-4000-8000-000000000011',
  unbindFail500x3: '0e570000-7e57-4000-8000-000000000012',
  asyncProvisionFail: '0e570000-7e57-4000-8000-000000000013',
  asyncUpdateFail: '0e570000-7e57-4000-8000-000000000014',
  asyncDeprovisionFail3x: '0e570000-7e57-4000-8000-000000000015',
  lastOperationFail400: '0e570000-7e57-4000-8000-000000000016',
  lastOperationFail500x3: '0e570000-7e57-4000-8000-000000000017',
  notBindable: '0e570000-7e57-4000-8000-000000000018',
} as const;

const testProvisionBody = (planId: string, overrides: Record<string, unknown> = {}) => ({
  service_id: TEST_SERVICE_ID,
  plan_id: planId,
  organization_guid: 'org-guid',
  space_guid: 'space-guid',
  ...overrides,
});
const testBindBody = (planId: string, overrides: Record<string, unknown> = {}) => ({
  service_id: TEST_SERVICE_ID,
  plan_id: planId,
  bind_resource: { app_guid: 'app-guid' },
  ...overrides,
});
const testDeleteQuery = (planId: string) => `service_id=${TEST_SERVICE_ID}&plan_id=${planId}`;
const descriptionOf = (res: { body: unknown }) => (res.body as { description?: string }).description;

type Services = Array<{
  id: string;
  name: string;
  bindable: boolean;
  plan_updateable?: boolean;
  plans: Array<{ id: string; name: string; bindable?: boolean }>;
}>;

describe('TEST_OFFERING configuration', () => {
  it('is disabled by default, and takes only "enabled" or "disabled"', () => {
    assert.equal(loadConfig({}).testOffering, false);
    assert.equal(loadConfig({ TEST_OFFERING: 'disabled' }).testOffering, false);
    assert.equal(loadConfig({ TEST_OFFERING: 'enabled' }).testOffering, true);
    assert.throws(
      () => loadConfig({ TEST_OFFERING: 'bogus' }),
      (error: Error) => error instanceof ConfigError && /^TEST_OFFERING .*"bogus"/.test(error.message),
    );
  });

  it('a plan needs a status for an http fault, and last_operation faults are http only', () => {
    const offering = new TestOffering(new FaultCounter());
    const catalog = (settings: unknown) => ({
      services: [
        {
          id: 's',
          name: 'depot-test',
          description: 'test',
          bindable: true,
          'x-depot': { offering: 'test' },
          plans: [{ id: 'p', name: 'p', description: 'p', 'x-depot': settings }],
        },
      ],
    });
    assert.ok(
      buildCatalog(catalog({ faults: { provision: { mode: 'job' }, bind: { status: 503, times: 2 } } }), [offering]),
    );
    for (const bad of [
      { faults: { provision: {} } },
      { faults: { provision: { status: 200 } } },
      { faults: { provision: { status: 500, times: 0 } } },
      { faults: { last_operation: { status: 500, mode: 'job' } } },
      { faults: { poll: { status: 500 } } },
      { delay_ms: -1 },
    ]) {
      assert.throws(() => buildCatalog(catalog(bad), [offering]), /x-depot/, JSON.stringify(bad));
    }
  });
});

describe('the default catalog has no test services', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('test-offering-disabled');
  });
  after(async () => depot.close());

  it('serves only postgresql, redis, mysql and rabbitmq, and refuses requests for the test service', async () => {
    const res = await osb(depot).get('/v2/catalog').expect(200);
    assert.deepEqual(
      (res.body as { services: Services }).services.map((s) => s.name),
      ['postgresql', 'redis', 'mysql', 'rabbitmq'],
    );
    const put = await osb(depot)
      .put(instancePath(randomUUID()) + ASYNC, testProvisionBody(PLAN.provisionFail400))
      .expect(400);
    assert.match(descriptionOf(put)!, /service_id .* is not in the catalog/);
  });
});

describe('TEST_OFFERING=enabled', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('test-offering', { env: { TEST_OFFERING: 'enabled' } });
  });
  after(async () => depot.close());

  /** Provisions on a test plan and waits for the outcome. */
  const provision = async (planId: string, id: string = randomUUID()): Promise<string> => {
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, testProvisionBody(planId))
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res), 10_000)).state, 'succeeded');
    return id;
  };
  const deprovision = async (id: string, planId: string): Promise<LastOperationBody> => {
    const res = await osb(depot)
      .delete(`${instancePath(id)}${ASYNC}&${testDeleteQuery(planId)}`)
      .expect(202);
    return waitForOperation(depot, instancePath(id), operationOf(res), 10_000);
  };
  const instanceRows = async (id: string) =>
    (await depot.depot.pool.query('select state from service_instances where id = $1', [id])).rows as Array<{
      state: string;
    }>;

  it('adds depot-test and depot-test-single to the default catalog', async () => {
    const res = await osb(depot).get('/v2/catalog').expect(200);
    const services = (res.body as { services: Services }).services;
    assert.deepEqual(
      services.map((s) => s.name),
      ['postgresql', 'redis', 'mysql', 'rabbitmq', 'depot-test', 'depot-test-single'],
    );
    const test = services[4]!;
    assert.equal(test.id, TEST_SERVICE_ID);
    assert.equal(test.bindable, true);
    assert.equal(test.plan_updateable, true);
    assert.deepEqual(
      test.plans.map((p) => p.name),
      [
        'ok',
        'slow',
        'provision-fail400',
        'provision-fail500',
        'provision-fail500-3x',
        'update-fail400',
        'update-fail500-3x',
        'deprovision-fail400',
        'deprovision-fail500-3x',
        'bind-fail400',
        'bind-fail500',
        'unbind-fail500-3x',
        'async-provision-fail',
        'async-update-fail',
        'async-deprovision-fail-3x',
        'last-operation-fail400',
        'last-operation-fail500-3x',
        'not-bindable',
      ],
    );
    assert.deepEqual(
      test.plans.map((p) => p.id),
      Object.values(PLAN),
    );
    assert.equal(test.plans.find((p) => p.name === 'not-bindable')!.bindable, false);
    const single = services[5]!;
    assert.equal(single.id, SINGLE_SERVICE_ID);
    assert.equal(single.plan_updateable, false);
    assert.deepEqual(
      single.plans.map((p) => [p.name, p.id]),
      [['default', '0e570001-7e57-4000-8000-000000000001']],
    );
    assert.equal(JSON.stringify(res.body).includes('x-depot'), false);
  });

  it('provision-fail400: 400 with an OSB error body, and no instance is recorded', async () => {
    const id = randomUUID();
    const before = await stateCounts(depot);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const res = await osb(depot)
        .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.provisionFail400))
        .expect(400);
      assert.match(res.headers['content-type']!, /^application\/json/);
      assert.deepEqual(res.body, {
        description: `injected fault: provision 400 (attempt ${attempt}, fails every time)`,
      });
    }
    assert.deepEqual(await instanceRows(id), []);
    assert.deepEqual(await stateCounts(depot), before);
  });

  it('provision-fail500: 500 every time', async () => {
    const id = randomUUID();
    for (let attempt = 0; attempt < 4; attempt++) {
      await osb(depot)
        .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.provisionFail500))
        .expect(500);
    }
    assert.deepEqual(await instanceRows(id), []);
  });

  it('provision-fail500-3x: 500, 500, 500, then 202 and succeeded', async () => {
    const id = randomUUID();
    for (let attempt = 1; attempt <= 3; attempt++) {
      const res = await osb(depot)
        .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.provisionFail500x3))
        .expect(500);
      assert.equal(descriptionOf(res), `injected fault: provision 500 (attempt ${attempt} of 3)`);
      assert.deepEqual(await instanceRows(id), []);
    }
    await provision(PLAN.provisionFail500x3, id);
    // Counted per instance: another instance fails its first three attempts too.
    await osb(depot)
      .put(instancePath(randomUUID()) + ASYNC, testProvisionBody(PLAN.provisionFail500x3))
      .expect(500);
    assert.equal((await deprovision(id, PLAN.provisionFail500x3)).state, 'succeeded');
  });

  it('async-provision-fail: 202, then last_operation failed with the description', async () => {
    const id = randomUUID();
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.asyncProvisionFail))
      .expect(202);
    const last = await waitForOperation(depot, instancePath(id), operationOf(res), 10_000);
    assert.equal(last.state, 'failed');
    assert.equal(last.description, 'Provision failed: injected fault: provision failed (attempt 1, fails every time)');
    await osb(depot).get(instancePath(id)).expect(404);
    // Orphan mitigation works: the delete succeeds.
    assert.equal((await deprovision(id, PLAN.asyncProvisionFail)).state, 'succeeded');
  });

  it('async-deprovision-fail-3x: three failed deprovisions, then the 4th DELETE succeeds', async () => {
    const id = await provision(PLAN.asyncDeprovisionFail3x);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const last = await deprovision(id, PLAN.asyncDeprovisionFail3x);
      assert.equal(last.state, 'failed');
      assert.equal(
        last.description,
        `Deprovision failed: injected fault: deprovision failed (attempt ${attempt} of 3)`,
      );
      assert.equal(last.instance_usable, true);
      await osb(depot).get(instancePath(id)).expect(200);
    }
    assert.equal((await deprovision(id, PLAN.asyncDeprovisionFail3x)).state, 'succeeded');
    await osb(depot).get(instancePath(id)).expect(404);
    await osb(depot)
      .delete(`${instancePath(id)}${ASYNC}&${testDeleteQuery(PLAN.asyncDeprovisionFail3x)}`)
      .expect(410);
  });

  it('deprovision-fail500-3x: 500 three times before any change, then 202; deprovision-fail400: 400', async () => {
    const id = await provision(PLAN.deprovisionFail500x3);
    for (let attempt = 1; attempt <= 3; attempt++) {
      await osb(depot)
        .delete(`${instancePath(id)}${ASYNC}&${testDeleteQuery(PLAN.deprovisionFail500x3)}`)
        .expect(500);
      assert.deepEqual(await instanceRows(id), [{ state: 'provisioned' }]);
    }
    assert.equal((await deprovision(id, PLAN.deprovisionFail500x3)).state, 'succeeded');

    const stuck = await provision(PLAN.deprovisionFail400);
    const res = await osb(depot)
      .delete(`${instancePath(stuck)}${ASYNC}&${testDeleteQuery(PLAN.deprovisionFail400)}`)
      .expect(400);
    assert.match(descriptionOf(res)!, /^injected fault: deprovision 400/);
    assert.deepEqual(await instanceRows(stuck), [{ state: 'provisioned' }]);
  });

  it('update-fail400: 400 for a PATCH naming no plan (stored plan decides); async-update-fail: job fails', async () => {
    const id = await provision(PLAN.updateFail400);
    const res = await osb(depot)
      .patch(instancePath(id) + ASYNC, { service_id: TEST_SERVICE_ID, parameters: { size: 2 } })
      .expect(400);
    assert.match(descriptionOf(res)!, /^injected fault: update 400/);
    // A plan change away from it goes to the target plan, which works.
    const moved = await osb(depot)
      .patch(instancePath(id) + ASYNC, { service_id: TEST_SERVICE_ID, plan_id: PLAN.ok })
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(moved))).state, 'succeeded');

    const failing = await provision(PLAN.asyncUpdateFail);
    const update = await osb(depot)
      .patch(instancePath(failing) + ASYNC, { service_id: TEST_SERVICE_ID, parameters: { size: 2 } })
      .expect(202);
    const last = await waitForOperation(depot, instancePath(failing), operationOf(update));
    assert.equal(last.state, 'failed');
    assert.match(last.description!, /^Update failed: injected fault: update failed/);
    assert.equal(last.instance_usable, true);
    assert.deepEqual(
      ((await osb(depot).get(instancePath(failing)).expect(200)).body as { parameters: unknown }).parameters,
      {},
    );
  });

  it('update-fail500-3x: 500 three times, then 202', async () => {
    const id = await provision(PLAN.ok);
    const patch = () =>
      osb(depot).patch(instancePath(id) + ASYNC, { service_id: TEST_SERVICE_ID, plan_id: PLAN.updateFail500x3 });
    for (let attempt = 0; attempt < 3; attempt++) await patch().expect(500);
    const res = await patch().expect(202);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res))).state, 'succeeded');
  });

  it('last-operation-fail400: last_operation answers 400, with or without the plan in the query', async () => {
    const id = randomUUID();
    await osb(depot)
      .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.lastOperationFail400))
      .expect(202);
    const plain = await osb(depot)
      .get(`${instancePath(id)}/last_operation`)
      .expect(400);
    assert.match(descriptionOf(plain)!, /^injected fault: last_operation 400/);
    await osb(depot)
      .get(`${instancePath(id)}/last_operation?${testDeleteQuery(PLAN.lastOperationFail400)}`)
      .expect(400);
    // Other endpoints work: the instance is there once its job has run.
    const deadline = Date.now() + 10_000;
    while ((await osb(depot).get(instancePath(id))).status !== 200) {
      assert.ok(Date.now() < deadline, 'the instance never appeared');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // An unknown instance answers 404 as usual (no stored plan to fault).
    await osb(depot)
      .get(`${instancePath(randomUUID())}/last_operation`)
      .expect(404);
  });

  it('last-operation-fail500-3x: 500 three times, then the real answer', async () => {
    const id = randomUUID();
    await osb(depot)
      .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.lastOperationFail500x3))
      .expect(202);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const res = await osb(depot)
        .get(`${instancePath(id)}/last_operation`)
        .expect(500);
      assert.equal(descriptionOf(res), `injected fault: last_operation 500 (attempt ${attempt} of 3)`);
    }
    assert.equal((await waitForOperation(depot, instancePath(id))).state, 'succeeded');
  });

  it('bind returns the special credentials, or the parameters.credentials object', async () => {
    const id = await provision(PLAN.ok);
    const plain = await osb(depot).put(bindingPath(id, randomUUID()), testBindBody(PLAN.ok)).expect(201);
    assert.deepEqual((plain.body as { credentials: unknown }).credentials, {
      'special-key-1': 'special-value-1',
      'special-key-2': 'special-value-2',
      port: 5432,
      nested: { a: 1 },
    });
    const chosen = { user: 'me', password: 'pw', deep: { list: [1, 2] } };
    const bindingId = randomUUID();
    const res = await osb(depot)
      .put(bindingPath(id, bindingId) + ASYNC, testBindBody(PLAN.ok, { parameters: { credentials: chosen } }))
      .expect(202);
    assert.equal((await waitForOperation(depot, bindingPath(id, bindingId), operationOf(res))).state, 'succeeded');
    const fetched = await osb(depot).get(bindingPath(id, bindingId)).expect(200);
    assert.deepEqual((fetched.body as { credentials: unknown }).credentials, chosen);
  });

  it('bind-fail500 and bind-fail400 answer their status and record no binding; not-bindable answers 400', async () => {
    const id = await provision(PLAN.bindFail500);
    const bindingId = randomUUID();
    const res = await osb(depot).put(bindingPath(id, bindingId), testBindBody(PLAN.bindFail500)).expect(500);
    assert.match(descriptionOf(res)!, /^injected fault: bind 500/);
    await osb(depot)
      .put(bindingPath(id, bindingId) + ASYNC, testBindBody(PLAN.bindFail500))
      .expect(500);
    const rows = await depot.depot.pool.query('select 1 from service_bindings where id = $1', [bindingId]);
    assert.equal(rows.rowCount, 0);

    const other = await provision(PLAN.bindFail400);
    await osb(depot).put(bindingPath(other, randomUUID()), testBindBody(PLAN.bindFail400)).expect(400);

    const unbindable = await provision(PLAN.notBindable);
    const refused = await osb(depot)
      .put(bindingPath(unbindable, randomUUID()), testBindBody(PLAN.notBindable))
      .expect(400);
    assert.match(descriptionOf(refused)!, /not bindable/);
  });

  it('unbind-fail500-3x: 500 three times per binding, then 200', async () => {
    const id = await provision(PLAN.unbindFail500x3);
    const bindingId = randomUUID();
    await osb(depot).put(bindingPath(id, bindingId), testBindBody(PLAN.unbindFail500x3)).expect(201);
    const unbind = () => osb(depot).delete(`${bindingPath(id, bindingId)}?${testDeleteQuery(PLAN.unbindFail500x3)}`);
    for (let attempt = 0; attempt < 3; attempt++) await unbind().expect(500);
    await osb(depot).get(bindingPath(id, bindingId)).expect(200);
    await unbind().expect(200);
    await unbind().expect(410);
  });

  it('slow: last_operation is in progress, then succeeded after about 3 seconds', async () => {
    const id = randomUUID();
    const started = Date.now();
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, testProvisionBody(PLAN.slow))
      .expect(202);
    const polled = await osb(depot)
      .get(`${instancePath(id)}/last_operation`)
      .expect(200);
    assert.equal((polled.body as LastOperationBody).state, 'in progress');
    assert.equal(polled.headers['retry-after'], '1');
    const last = await waitForOperation(depot, instancePath(id), operationOf(res), 10_000);
    assert.equal(last.state, 'succeeded');
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds >= 2.9 && seconds < 8, `took ${seconds} s`);
  });

  it('depot-test-single: its one plan provisions and binds', async () => {
    const id = randomUUID();
    const body = { ...testProvisionBody('0e570001-7e57-4000-8000-000000000001'), service_id: SINGLE_SERVICE_ID };
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, body)
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res))).state, 'succeeded');
    await osb(depot)
      .put(bindingPath(id, randomUUID()), { service_id: SINGLE_SERVICE_ID, plan_id: body.plan_id })
      .expect(201);
  });
});
