/**
 * Service bindings: every row of the spec's Bind, Fetch binding, Unbind and binding
 * last_operation response tables of the OSB spec and its idempotency rules for bindings,
 * against a real Depot that creates real login roles.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { postgresNames, type PostgresqlCredentials } from '../broker/offerings/postgresql/postgresql-offering.js';
import {
  ASYNC,
  ADMIN_URL,
  SERVICE_ID,
  SMALL_PLAN_ID,
  STANDARD_PLAN_ID,
  adminQuery,
  bindBody,
  bindingPath,
  deleteQuery,
  deprovisionInstance,
  instancePath,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  stateCounts,
  waitForOperation,
  type LastOperationBody,
  type TestDepot,
  operationOf,
  unsealed,
} from './helpers.js';

type Credentials = PostgresqlCredentials;
interface BindingBody {
  credentials: Credentials;
  parameters?: Record<string, unknown>;
}
interface ErrorBody {
  error?: string;
  description: string;
}

const serviceHost = new URL(ADMIN_URL).hostname;
const servicePort = Number(new URL(ADMIN_URL).port || 5432);

/** Checks a bind response's credentials: the login role and database of this binding. */
function assertCredentials(body: unknown, instanceId: string, bindingId: string): Credentials {
  const { credentials } = body as BindingBody;
  assert.ok(credentials, `no credentials in ${JSON.stringify(body)}`);
  assert.deepEqual(Object.keys(credentials).sort(), [
    'database',
    'host',
    'jdbcUrl',
    'password',
    'port',
    'uri',
    'username',
  ]);
  const { database, login } = postgresNames(instanceId, bindingId);
  assert.equal(credentials.database, database);
  assert.equal(credentials.username, login);
  assert.equal(credentials.host, serviceHost);
  assert.equal(credentials.port, servicePort);
  assert.ok(credentials.password.length >= 20, 'a password of at least 20 characters');
  assert.equal(
    credentials.uri,
    `postgresql://${login}:${credentials.password}@${serviceHost}:${servicePort}/${database}`,
  );
  assert.equal(
    credentials.jdbcUrl,
    `jdbc:postgresql://${serviceHost}:${servicePort}/${database}?user=${login}&password=${credentials.password}`,
  );
  return credentials;
}

/** Depot's row for a binding (the response column holds credentials: only say whether it is set). */
async function bindingRow(target: TestDepot, bindingId: string) {
  const { rows } = await target.depot.pool.query<{
    instance_id: string;
    state: string;
    app_guid: string | null;
    parameters: Record<string, unknown>;
    has_response: boolean;
  }>(
    `select instance_id, state, app_guid, parameters, response is not null as has_response
       from service_bindings where id = $1`,
    [bindingId],
  );
  return rows[0] && unsealed(target, 'service_bindings', bindingId, rows[0]);
}

/** Depot's operations for a binding, oldest first. */
async function bindingOperations(target: TestDepot, bindingId: string) {
  const { rows } = await target.depot.pool.query<{ id: string; type: string; state: string }>(
    'select id, type, state from operations where binding_id = $1 order by created_at',
    [bindingId],
  );
  return rows;
}

/** The binding's login role on the server, if it exists. */
async function loginRole(instanceId: string, bindingId: string) {
  const { login, owner } = postgresNames(instanceId, bindingId);
  const rows = await adminQuery<{ rolcanlogin: boolean; member_of_owner: boolean }>(
    `select r.rolcanlogin, pg_has_role(r.oid, $2, 'member') as member_of_owner from pg_roles r where r.rolname = $1`,
    [login, owner],
  );
  return rows[0];
}

const unbindQuery = (planId = SMALL_PLAN_ID) => `?${deleteQuery(planId)}`;
const asyncUnbindQuery = (planId = SMALL_PLAN_ID) => `${ASYNC}&${deleteQuery(planId)}`;

describe('service bindings', () => {
  let depot: TestDepot;
  let instanceA: string;
  let instanceB: string;
  before(async () => {
    depot = await startDepot('bindings');
    instanceA = await provisionInstance(depot);
    instanceB = await provisionInstance(depot);
  });
  after(async () => {
    await deprovisionInstance(depot, instanceA);
    await deprovisionInstance(depot, instanceB);
    await depot.close();
  });

  describe('PUT binding (bind), synchronous', () => {
    it('201 with credentials of a new login role that is a member of the owner role', async () => {
      const bindingId = randomUUID();
      const res = await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      assert.deepEqual(Object.keys(res.body as object), ['credentials']);
      assertCredentials(res.body, instanceA, bindingId);
      assert.deepEqual(await loginRole(instanceA, bindingId), { rolcanlogin: true, member_of_owner: true });
      assert.deepEqual(await bindingRow(depot, bindingId), {
        instance_id: instanceA,
        state: 'bound',
        app_guid: null,
        parameters: {},
        has_response: true,
      });
      assert.deepEqual(
        (await bindingOperations(depot, bindingId)).map(({ type, state }) => ({ type, state })),
        [{ type: 'bind', state: 'succeeded' }],
      );
    });

    it('200, same body, for an identical PUT (with or without accepts_incomplete); nothing runs again', async () => {
      const bindingId = randomUUID();
      const first = await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      const { login } = postgresNames(instanceA, bindingId);
      const passwordHash = () =>
        adminQuery<{ rolpassword: string }>('select rolpassword from pg_authid where rolname = $1', [login]);
      const hashBefore = await passwordHash();
      const counts = await stateCounts(depot);
      // spec, Binding: an identical PUT of a binding that exists → 200 with the same body
      const again = await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(200);
      assert.deepEqual(again.body, first.body);
      const asyncAgain = await osb(depot)
        .put(bindingPath(instanceA, bindingId) + ASYNC, bindBody())
        .expect(200);
      assert.deepEqual(asyncAgain.body, first.body);
      assert.deepEqual(await stateCounts(depot), counts);
      assert.deepEqual(await passwordHash(), hashBefore, 'the password was not changed');
    });

    it('409 for the same binding id with a different app_guid or bind_resource, and nothing changes', async () => {
      const bindingId = randomUUID();
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      const counts = await stateCounts(depot);
      const row = await bindingRow(depot, bindingId);
      for (const change of [
        { bind_resource: { app_guid: 'another-app' } },
        { app_guid: 'app-guid' }, // the deprecated field in addition
        { bind_resource: undefined },
      ]) {
        const res = await osb(depot).put(bindingPath(instanceA, bindingId), bindBody(change)).expect(409);
        assert.match((res.body as ErrorBody).description, /already exists/);
      }
      assert.deepEqual(await stateCounts(depot), counts);
      assert.deepEqual(await bindingRow(depot, bindingId), row);
    });

    it('409 for an existing binding id with other attributes, whatever else is wrong with the request', async () => {
      const bindingId = randomUUID();
      const bound = await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      const counts = await stateCounts(depot);
      const row = await bindingRow(depot, bindingId);
      // Each of these would be a 400 (or 422) for a new binding id; for this one the conflict comes first (spec: 409).
      for (const change of [
        { plan_id: STANDARD_PLAN_ID }, // another plan than the instance's
        { plan_id: 'no-such-plan' },
        { service_id: 'no-such-service' },
        { parameters: { superuser: true } }, // refused by the plan's schema
        { bind_resource: undefined, parameters: { superuser: true } },
        { predecessor_binding_id: randomUUID() }, // a rotation of a binding that does not exist
      ]) {
        const res = await osb(depot).put(bindingPath(instanceA, bindingId), bindBody(change));
        assert.equal(res.status, 409, `${JSON.stringify(change)}: ${JSON.stringify(res.body)}`);
        assert.match((res.body as ErrorBody).description, /already exists with different attributes/);
      }
      // the same attributes are still the same binding
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(200, bound.body);
      // and for a new binding id the other faults are what they are
      await osb(depot)
        .put(bindingPath(instanceA, randomUUID()), bindBody({ plan_id: STANDARD_PLAN_ID }))
        .expect(400);
      await osb(depot)
        .put(bindingPath(instanceA, randomUUID()), bindBody({ parameters: { superuser: true } }))
        .expect(400);
      assert.deepEqual(await stateCounts(depot), counts);
      assert.deepEqual(await bindingRow(depot, bindingId), row);
    });

    it('409 for the same binding id under another instance, and no role is created there', async () => {
      const bindingId = randomUUID();
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      const counts = await stateCounts(depot);
      const res = await osb(depot).put(bindingPath(instanceB, bindingId), bindBody()).expect(409);
      assert.ok((res.body as ErrorBody).description);
      assert.equal(await loginRole(instanceB, bindingId), undefined);
      assert.equal((await bindingRow(depot, bindingId))?.instance_id, instanceA);
      assert.deepEqual(await stateCounts(depot), counts);
    });

    it('404 for an instance that does not exist', async () => {
      const counts = await stateCounts(depot);
      const res = await osb(depot).put(bindingPath(randomUUID(), randomUUID()), bindBody()).expect(404);
      assert.ok((res.body as ErrorBody).description);
      assert.deepEqual(await stateCounts(depot), counts);
    });

    it('400 for parameters the plan schema rejects (spec: invalid data MAY be 400)', async () => {
      const counts = await stateCounts(depot);
      const res = await osb(depot)
        .put(bindingPath(instanceA, randomUUID()), bindBody({ parameters: { superuser: true } }))
        .expect(400);
      assert.match((res.body as ErrorBody).description, /service_binding\.create/);
      assert.deepEqual(await stateCounts(depot), counts);
    });

    it('400 for a body without service_id or plan_id (spec: missing mandatory data MUST be 400)', async () => {
      const counts = await stateCounts(depot);
      await osb(depot).put(bindingPath(instanceA, randomUUID()), { plan_id: SMALL_PLAN_ID }).expect(400);
      await osb(depot).put(bindingPath(instanceA, randomUUID()), { service_id: SERVICE_ID }).expect(400);
      assert.deepEqual(await stateCounts(depot), counts);
    });
  });

  describe('PUT binding (bind), asynchronous', () => {
    it('202 with only an operation; last_operation succeeds; then GET returns credentials and parameters', async () => {
      const bindingId = randomUUID();
      const path = bindingPath(instanceA, bindingId);
      const res = await osb(depot)
        .put(path + ASYNC, bindBody())
        .expect(202);
      // spec: "credentials MUST NOT be returned" in a 202
      assert.deepEqual(Object.keys(res.body as object), ['operation']);
      const operation = operationOf(res);
      assert.ok(operation.length > 0 && operation.length <= 10_000);

      const last = await waitForOperation(depot, path, operation);
      assert.equal(last.state, 'succeeded');
      // without ?operation=, and with one Depot never returned: the binding's latest operation
      for (const query of ['', '?operation=bind', `?operation=${randomUUID()}`]) {
        const polled = await osb(depot).get(`${path}/last_operation${query}`).expect(200);
        assert.equal((polled.body as LastOperationBody).state, 'succeeded', `last_operation${query}`);
        assert.equal(polled.headers['retry-after'], undefined);
      }

      // spec: GET binding MUST be available right after last_operation says succeeded
      const fetched = await osb(depot).get(path).expect(200);
      assertCredentials(fetched.body, instanceA, bindingId);
      assert.deepEqual((fetched.body as BindingBody).parameters, {});
      assert.deepEqual(await loginRole(instanceA, bindingId), { rolcanlogin: true, member_of_owner: true });
      // the service_id and plan_id hints are accepted
      const hinted = await osb(depot).get(`${path}?${deleteQuery()}`).expect(200);
      assert.deepEqual(hinted.body, fetched.body);

      // an identical PUT once bound: 200 with the bind response (the fetched body without parameters)
      const again = await osb(depot)
        .put(path + ASYNC, bindBody())
        .expect(200);
      assert.deepEqual(again.body, { credentials: (fetched.body as BindingBody).credentials });
    });
  });

  describe('GET binding (fetch)', () => {
    it('404 for a binding that does not exist, and for a binding id under the wrong instance', async () => {
      await osb(depot).get(bindingPath(instanceA, randomUUID())).expect(404);
      await osb(depot).get(bindingPath(randomUUID(), randomUUID())).expect(404);
      const bindingId = randomUUID();
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      const res = await osb(depot).get(bindingPath(instanceB, bindingId)).expect(404);
      assert.equal(JSON.stringify(res.body).includes('password'), false);
    });
  });

  describe('DELETE binding (unbind)', () => {
    it('200 {} synchronously: the login role is dropped, the credentials forgotten; again → 410 Gone', async () => {
      const bindingId = randomUUID();
      const path = bindingPath(instanceA, bindingId);
      await osb(depot).put(path, bindBody()).expect(201);
      const res = await osb(depot)
        .delete(path + unbindQuery())
        .expect(200);
      assert.deepEqual(res.body, {});
      assert.equal(await loginRole(instanceA, bindingId), undefined);
      const row = await bindingRow(depot, bindingId);
      assert.equal(row?.state, 'deleted');
      assert.equal(row?.has_response, false);
      assert.deepEqual(
        (await bindingOperations(depot, bindingId)).map(({ type, state }) => ({ type, state })),
        [
          { type: 'bind', state: 'succeeded' },
          { type: 'unbind', state: 'succeeded' },
        ],
      );
      // spec, Unbinding: 410 Gone MUST if the binding does not exist, also when it was deleted
      const again = await osb(depot)
        .delete(path + unbindQuery())
        .expect(410);
      assert.ok((again.body as ErrorBody).description);
      await osb(depot)
        .delete(path + asyncUnbindQuery())
        .expect(410);
    });

    it('410 for a binding id never seen, under an unknown instance, or under the wrong instance', async () => {
      await osb(depot)
        .delete(bindingPath(instanceA, randomUUID()) + unbindQuery())
        .expect(410);
      await osb(depot)
        .delete(bindingPath(randomUUID(), randomUUID()) + unbindQuery())
        .expect(410);
      const bindingId = randomUUID();
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      const counts = await stateCounts(depot);
      await osb(depot)
        .delete(bindingPath(instanceB, bindingId) + unbindQuery())
        .expect(410);
      await osb(depot)
        .delete(bindingPath(instanceB, bindingId) + asyncUnbindQuery())
        .expect(410);
      // the binding under instance A is untouched
      assert.deepEqual(await stateCounts(depot), counts);
      assert.equal((await bindingRow(depot, bindingId))?.state, 'bound');
      assert.deepEqual(await loginRole(instanceA, bindingId), { rolcanlogin: true, member_of_owner: true });
    });

    it('400 without service_id or plan_id (spec: both are REQUIRED query parameters)', async () => {
      const bindingId = randomUUID();
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      await osb(depot).delete(bindingPath(instanceA, bindingId)).expect(400);
      await osb(depot)
        .delete(`${bindingPath(instanceA, bindingId)}?service_id=${SERVICE_ID}`)
        .expect(400);
      await osb(depot)
        .delete(`${bindingPath(instanceA, bindingId)}?plan_id=${SMALL_PLAN_ID}`)
        .expect(400);
      assert.equal((await bindingRow(depot, bindingId))?.state, 'bound');
    });

    it('202 with accepts_incomplete=true; last_operation succeeds and still answers after the unbind', async () => {
      const bindingId = randomUUID();
      const path = bindingPath(instanceA, bindingId);
      const bound = await osb(depot)
        .put(path + ASYNC, bindBody())
        .expect(202);
      const bindOperation = operationOf(bound);
      assert.equal((await waitForOperation(depot, path, bindOperation)).state, 'succeeded');

      const res = await osb(depot)
        .delete(path + asyncUnbindQuery())
        .expect(202);
      assert.deepEqual(Object.keys(res.body as object), ['operation']);
      const unbindOperation = operationOf(res);
      assert.notEqual(unbindOperation, bindOperation);
      assert.equal((await waitForOperation(depot, path, unbindOperation)).state, 'succeeded');
      assert.equal(await loginRole(instanceA, bindingId), undefined);

      // spec: B SHOULD NOT forget the state right after answering succeeded (retention)
      const latest = await osb(depot).get(`${path}/last_operation`).expect(200);
      assert.deepEqual(latest.body, { state: 'succeeded', description: 'Unbound.' });
      // ?operation= names the operation asked about; an unknown value falls back to the latest
      const named = await osb(depot).get(`${path}/last_operation?operation=${bindOperation}`).expect(200);
      assert.deepEqual(named.body, { state: 'succeeded', description: 'Bound.' });
      const unknown = await osb(depot).get(`${path}/last_operation?operation=${randomUUID()}`).expect(200);
      assert.deepEqual(unknown.body, { state: 'succeeded', description: 'Unbound.' });

      // spec: GET binding 404 when the binding does not exist
      await osb(depot).get(path).expect(404);
    });
  });

  describe('GET binding last_operation', () => {
    it('404 for a binding id never seen, for an unknown instance, and under the wrong instance', async () => {
      const res = await osb(depot)
        .get(`${bindingPath(instanceA, randomUUID())}/last_operation`)
        .expect(404);
      assert.ok((res.body as ErrorBody).description);
      await osb(depot)
        .get(`${bindingPath(randomUUID(), randomUUID())}/last_operation`)
        .expect(404);
      const bindingId = randomUUID();
      await osb(depot).put(bindingPath(instanceA, bindingId), bindBody()).expect(201);
      await osb(depot)
        .get(`${bindingPath(instanceA, bindingId)}/last_operation`)
        .expect(200);
      await osb(depot)
        .get(`${bindingPath(instanceB, bindingId)}/last_operation`)
        .expect(404);
    });
  });
});

// ---- Plans with other binding rules: a catalog of our own ----

const OPEN_PLAN_ID = '6a1d3c5e-0b2f-4e7a-8c9d-1f3e5a7b9c01';
const UNBINDABLE_PLAN_ID = '6a1d3c5e-0b2f-4e7a-8c9d-1f3e5a7b9c02';
const APP_PLAN_ID = '6a1d3c5e-0b2f-4e7a-8c9d-1f3e5a7b9c03';

/** The default-catalog.yaml shape as JSON, with three plans that bind differently. */
const testCatalog = {
  services: [
    {
      id: SERVICE_ID,
      name: 'postgresql',
      description: 'PostgreSQL for the binding tests.',
      bindable: true,
      plan_updateable: true,
      instances_retrievable: true,
      bindings_retrievable: true,
      'x-depot': { offering: 'postgresql' },
      plans: [
        // no schemas: any binding parameters are accepted
        {
          id: OPEN_PLAN_ID,
          name: 'open',
          description: 'Binding parameters allowed.',
          'x-depot': { connection_limit: 5 },
        },
        {
          id: UNBINDABLE_PLAN_ID,
          name: 'unbindable',
          description: 'Cannot be bound.',
          bindable: false,
          'x-depot': { connection_limit: 5 },
        },
        {
          id: APP_PLAN_ID,
          name: 'app-only',
          description: 'Bindings to applications only.',
          'x-depot': { connection_limit: 5, requires_app: true },
        },
      ],
    },
  ],
};

describe('service bindings: plan rules', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('bindings-custom', { catalog: testCatalog });
  });
  after(async () => depot.close());

  it('400 for a plan that is not bindable, and nothing is created', async () => {
    const instanceId = await provisionInstance(depot, randomUUID(), { plan_id: UNBINDABLE_PLAN_ID });
    const counts = await stateCounts(depot);
    const bindingId = randomUUID();
    for (const query of ['', ASYNC]) {
      const res = await osb(depot)
        .put(bindingPath(instanceId, bindingId) + query, bindBody({ plan_id: UNBINDABLE_PLAN_ID }))
        .expect(400);
      assert.match((res.body as ErrorBody).description, /not bindable/);
    }
    assert.deepEqual(await stateCounts(depot), counts);
    assert.equal(await loginRole(instanceId, bindingId), undefined);
    await deprovisionInstance(depot, instanceId, UNBINDABLE_PLAN_ID);
  });

  it('422 RequiresApp without an app_guid; 201 with bind_resource.app_guid or the deprecated app_guid', async () => {
    const instanceId = await provisionInstance(depot, randomUUID(), { plan_id: APP_PLAN_ID });
    const counts = await stateCounts(depot);
    for (const body of [
      bindBody({ plan_id: APP_PLAN_ID, bind_resource: undefined }),
      bindBody({ plan_id: APP_PLAN_ID, bind_resource: {} }),
      bindBody({ plan_id: APP_PLAN_ID, bind_resource: { route: 'app.example.com' } }),
    ]) {
      const res = await osb(depot).put(bindingPath(instanceId, randomUUID()), body).expect(422);
      assert.equal((res.body as ErrorBody).error, 'RequiresApp', JSON.stringify(body));
    }
    assert.deepEqual(await stateCounts(depot), counts);

    const withResource = randomUUID();
    const res = await osb(depot)
      .put(
        bindingPath(instanceId, withResource),
        bindBody({ plan_id: APP_PLAN_ID, bind_resource: { app_guid: 'app-1' } }),
      )
      .expect(201);
    assertCredentials(res.body, instanceId, withResource);
    const withDeprecated = randomUUID();
    const deprecated = await osb(depot)
      .put(
        bindingPath(instanceId, withDeprecated),
        bindBody({ plan_id: APP_PLAN_ID, bind_resource: undefined, app_guid: 'app-2' }),
      )
      .expect(201);
    assertCredentials(deprecated.body, instanceId, withDeprecated);
    assert.equal((await bindingRow(depot, withDeprecated))?.app_guid, 'app-2');
    await deprovisionInstance(depot, instanceId, APP_PLAN_ID);
  });

  it('409 for the same binding id with different parameters; 200 for the same ones; GET shows them', async () => {
    const instanceId = await provisionInstance(depot, randomUUID(), { plan_id: OPEN_PLAN_ID });
    const bindingId = randomUUID();
    const path = bindingPath(instanceId, bindingId);
    const first = await osb(depot)
      .put(path, bindBody({ plan_id: OPEN_PLAN_ID, parameters: { purpose: 'reports' } }))
      .expect(201);
    const counts = await stateCounts(depot);
    for (const parameters of [{ purpose: 'billing' }, {}, { purpose: 'reports', extra: 1 }]) {
      await osb(depot)
        .put(path, bindBody({ plan_id: OPEN_PLAN_ID, parameters }))
        .expect(409);
    }
    await osb(depot)
      .put(path, bindBody({ plan_id: OPEN_PLAN_ID }))
      .expect(409); // parameters absent ≠ given
    assert.deepEqual(await stateCounts(depot), counts);
    const same = await osb(depot)
      .put(path, bindBody({ plan_id: OPEN_PLAN_ID, parameters: { purpose: 'reports' } }))
      .expect(200);
    assert.deepEqual(same.body, first.body);
    const fetched = await osb(depot).get(path).expect(200);
    assert.deepEqual((fetched.body as BindingBody).parameters, { purpose: 'reports' });
    await deprovisionInstance(depot, instanceId, OPEN_PLAN_ID);
  });
});

// ---- In progress: an api-only Depot, with a worker only when the test starts one ----

describe('service bindings while operations are in progress', () => {
  let api: TestDepot;
  let worker: TestDepot | undefined;
  const instanceId = randomUUID(); // provisioned while a worker ran
  const provisioningId = randomUUID(); // provision accepted while no worker runs
  const creating = randomUUID(); // async bind accepted while no worker runs
  const deleting = randomUUID(); // bound while a worker ran; async unbind accepted while none runs
  let bindOperation = '';
  let unbindOperation = '';
  const body = (overrides: Record<string, unknown> = {}) =>
    bindBody({ plan_id: OPEN_PLAN_ID, parameters: { n: 1 }, ...overrides });
  const startWorker = (name: string) => startDepot(name, { role: 'worker', shareWith: api, catalog: testCatalog });

  before(async () => {
    api = await startDepot('bindings-inprogress', { role: 'api', catalog: testCatalog });
    worker = await startWorker('bindings-inprogress-worker');
    await provisionInstance(api, instanceId, { plan_id: OPEN_PLAN_ID });
    await osb(api).put(bindingPath(instanceId, deleting), body()).expect(201);
    await worker.close();
    worker = undefined;
  });
  after(async () => {
    await worker?.close();
    await api.close();
  });

  it('PUT: 202 for an async bind, and 202 with the SAME operation for an identical PUT', async () => {
    const res = await osb(api)
      .put(bindingPath(instanceId, creating) + ASYNC, body())
      .expect(202);
    bindOperation = operationOf(res);
    assert.deepEqual(res.body, { operation: bindOperation });
    // spec, Binding: an identical PUT while the bind is in progress → 202 with the same operation
    const again = await osb(api)
      .put(bindingPath(instanceId, creating) + ASYNC, body())
      .expect(202);
    assert.deepEqual(again.body, { operation: bindOperation });
    assert.equal((await bindingRow(api, creating))?.state, 'binding');
    assert.deepEqual(await bindingOperations(api, creating), [
      { id: bindOperation, type: 'bind', state: 'in progress' },
    ]);
  });

  it('GET binding: 404 while the bind is in progress', async () => {
    const res = await osb(api).get(bindingPath(instanceId, creating)).expect(404);
    assert.ok((res.body as ErrorBody).description);
  });

  it('last_operation: 200 "in progress" with a Retry-After of whole seconds', async () => {
    for (const query of ['', `?operation=${bindOperation}`, `?operation=${randomUUID()}`]) {
      const res = await osb(api)
        .get(`${bindingPath(instanceId, creating)}/last_operation${query}`)
        .expect(200);
      assert.equal((res.body as LastOperationBody).state, 'in progress', query);
      assert.match(res.headers['retry-after'] ?? '', /^\d+$/);
    }
  });

  it('PUT: 409 for different parameters or app_guid while the binding is being created', async () => {
    const counts = await stateCounts(api);
    for (const change of [
      { parameters: { n: 2 } },
      { parameters: {} },
      { bind_resource: { app_guid: 'another-app' } },
    ]) {
      const res = await osb(api)
        .put(bindingPath(instanceId, creating) + ASYNC, body(change))
        .expect(409);
      assert.ok((res.body as ErrorBody).description);
    }
    assert.deepEqual(await stateCounts(api), counts);
  });

  it('DELETE: 422 ConcurrencyError for a binding being created, and nothing changes', async () => {
    const counts = await stateCounts(api);
    for (const query of [unbindQuery(OPEN_PLAN_ID), asyncUnbindQuery(OPEN_PLAN_ID)]) {
      const res = await osb(api)
        .delete(bindingPath(instanceId, creating) + query)
        .expect(422);
      assert.equal((res.body as ErrorBody).error, 'ConcurrencyError');
    }
    assert.deepEqual(await stateCounts(api), counts);
    assert.equal((await bindingRow(api, creating))?.state, 'binding');
  });

  it('DELETE: 202, and 202 with the SAME operation for a re-sent DELETE while the unbind runs', async () => {
    const res = await osb(api)
      .delete(bindingPath(instanceId, deleting) + asyncUnbindQuery(OPEN_PLAN_ID))
      .expect(202);
    unbindOperation = operationOf(res);
    assert.deepEqual(res.body, { operation: unbindOperation });
    const again = await osb(api)
      .delete(bindingPath(instanceId, deleting) + asyncUnbindQuery(OPEN_PLAN_ID))
      .expect(202);
    assert.deepEqual(again.body, { operation: unbindOperation });
    const polled = await osb(api)
      .get(`${bindingPath(instanceId, deleting)}/last_operation?operation=${unbindOperation}`)
      .expect(200);
    assert.equal((polled.body as LastOperationBody).state, 'in progress');
    assert.equal((await bindingRow(api, deleting))?.state, 'unbinding');
    // the role is still there until the job runs
    assert.deepEqual(await loginRole(instanceId, deleting), { rolcanlogin: true, member_of_owner: true });
  });

  it('PUT: 422 ConcurrencyError for an instance still being provisioned, and no binding is recorded', async () => {
    await osb(api)
      .put(instancePath(provisioningId) + ASYNC, provisionBody({ plan_id: OPEN_PLAN_ID }))
      .expect(202);
    const counts = await stateCounts(api);
    const bindingId = randomUUID();
    for (const query of ['', ASYNC]) {
      const res = await osb(api)
        .put(bindingPath(provisioningId, bindingId) + query, body())
        .expect(422);
      assert.equal((res.body as ErrorBody).error, 'ConcurrencyError');
    }
    assert.deepEqual(await stateCounts(api), counts);
    await osb(api)
      .get(`${bindingPath(provisioningId, bindingId)}/last_operation`)
      .expect(404);
  });

  it('once a worker runs again, the bind, the unbind and the provision complete', async () => {
    worker = await startWorker('bindings-inprogress-worker-2');
    const creatingPath = bindingPath(instanceId, creating);
    assert.equal((await waitForOperation(api, creatingPath, bindOperation)).state, 'succeeded');
    const fetched = await osb(api).get(creatingPath).expect(200);
    assertCredentials(fetched.body, instanceId, creating);
    assert.deepEqual((fetched.body as BindingBody).parameters, { n: 1 });
    // the identical PUT now gets the finished binding
    const again = await osb(api)
      .put(creatingPath + ASYNC, body())
      .expect(200);
    assert.deepEqual(again.body, { credentials: (fetched.body as BindingBody).credentials });

    assert.equal((await waitForOperation(api, bindingPath(instanceId, deleting), unbindOperation)).state, 'succeeded');
    assert.equal(await loginRole(instanceId, deleting), undefined);
    await osb(api).get(bindingPath(instanceId, deleting)).expect(404);

    assert.equal((await waitForOperation(api, instancePath(provisioningId))).state, 'succeeded');
    await osb(api).put(bindingPath(provisioningId, randomUUID()), body()).expect(201);

    await deprovisionInstance(api, instanceId, OPEN_PLAN_ID);
    await deprovisionInstance(api, provisioningId, OPEN_PLAN_ID);
  });
});
