import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';
import {
  operationOf,
  ASYNC,
  SERVICE_ID,
  STANDARD_PLAN_ID,
  adminQuery,
  passwordMatchesRole,
  bindBody,
  bindingPath,
  deleteQuery,
  deprovisionInstance,
  instancePath,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  waitForOperation,
  type TestDepot,
  defaultCatalogDocument,
} from './helpers.js';

/** The default catalog with a plan whose schema lets any extension name through. */
function catalogWithOpenExtensions(): unknown {
  const catalog = defaultCatalogDocument();
  delete catalog.services[0]!.plans[0]!.schemas;
  return catalog;
}

describe('failed operations end in a terminal state with a useful description', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('failures', { catalog: catalogWithOpenExtensions() });
  });
  after(async () => depot.close());

  it('a provision that cannot succeed fails at once; DELETE then cleans up, and a new PUT starts over', async () => {
    const id = randomUUID();
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, provisionBody({ parameters: { extensions: ['no_such_extension'] } }))
      .expect(202);
    const last = await waitForOperation(depot, instancePath(id), operationOf(res), 10_000);
    assert.equal(last.state, 'failed');
    assert.match(last.description!, /^Provision failed: .*no_such_extension/);
    assert.equal(last.instance_usable, undefined); // spec: only for failed update or deprovision
    await osb(depot).get(instancePath(id)).expect(404);

    // Orphan mitigation: the platform deletes what may have been created.
    await deprovisionInstance(depot, id);
    assert.deepEqual(
      await adminQuery('select 1 from pg_database where datname = $1', [postgresNames(id).database]),
      [],
    );

    await provisionInstance(depot, id);
    await deprovisionInstance(depot, id);
  });

  it('the offering refuses an extension outside its allow-list even when the plan schema allows it', async () => {
    const id = randomUUID();
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, provisionBody({ parameters: { extensions: ['citext', 'dblink'] } }))
      .expect(202);
    const last = await waitForOperation(depot, instancePath(id), operationOf(res), 10_000);
    assert.equal(last.state, 'failed');
    assert.match(last.description!, /extensions "dblink" are not allowed/);
    const [row] = await adminQuery<{ n: number }>(
      `select count(*)::int as n from pg_extension where extname = 'dblink'`,
    );
    assert.equal(row!.n, 0);
    await deprovisionInstance(depot, id);
  });

  it('a bind whose database vanished fails: 500 with the reason if synchronous, "failed" if asynchronous', async () => {
    const id = await provisionInstance(depot);
    await adminQuery(`drop database ${postgresNames(id).database} with (force)`);

    const sync = await osb(depot).put(bindingPath(id, randomUUID()), bindBody()).expect(500);
    assert.match((sync.body as { description: string }).description, /^Bind failed: .*does not exist/);

    const bindingId = randomUUID();
    const res = await osb(depot)
      .put(bindingPath(id, bindingId) + ASYNC, bindBody())
      .expect(202);
    const last = await waitForOperation(depot, bindingPath(id, bindingId), operationOf(res));
    assert.equal(last.state, 'failed');
    assert.match(last.description!, /does not exist/);
    await osb(depot).get(bindingPath(id, bindingId)).expect(404);
    await deprovisionInstance(depot, id);
  });
});

describe('the sweeper: nothing stays in progress forever', () => {
  let api: TestDepot;
  before(async () => {
    api = await startDepot('sweeper', { role: 'api' });
  });
  after(async () => api.close());

  it('runs an operation whose job was lost (Redis flushed) once it has been idle for a while', async () => {
    const id = randomUUID();
    const res = await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    await api.depot.queue.obliterate(); // the job is gone, the operation row remains
    await api.depot.pool.query(`update operations set updated_at = now() - interval '5 minutes' where id = $1`, [
      operationOf(res),
    ]);
    const worker = await startDepot('sweeper-worker', { role: 'worker', shareWith: api, sweeperIntervalMs: 100 });
    try {
      const last = await waitForOperation(api, instancePath(id), undefined, 20_000);
      assert.equal(last.state, 'succeeded');
    } finally {
      await worker.close();
    }
    await osb(api).get(instancePath(id)).expect(200);
  });

  it('fails an operation that overran OPERATION_TIMEOUT_SECONDS', async () => {
    const id = randomUUID();
    const res = await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    await api.depot.queue.obliterate();
    await api.depot.pool.query(`update operations set created_at = now() - interval '2 hours' where id = $1`, [
      operationOf(res),
    ]);
    const worker = await startDepot('sweeper-worker', { role: 'worker', shareWith: api, sweeperIntervalMs: 100 });
    try {
      const last = await waitForOperation(api, instancePath(id), undefined, 20_000);
      assert.deepEqual(last, { state: 'failed', description: 'provision did not finish within 3600 seconds.' });
    } finally {
      await worker.close();
    }
    await osb(api).get(instancePath(id)).expect(404);
  });
});

describe('bookkeeping', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('bookkeeping', { sweeperIntervalMs: 100 });
  });
  after(async () => depot.close());

  it('re-adds the job of an operation that BullMQ keeps as completed while Postgres says in progress', async () => {
    const id = randomUUID();
    // The worker finds the operation already ended and completes the job without doing anything…
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    const operation = operationOf(res);
    // …as if it had died between BullMQ and Postgres: the job is done, the operation is not.
    await depot.depot.pool.query(`update operations set state = 'succeeded' where id = $1`, [operation]);
    const queue = depot.depot.queue;
    assert.ok(
      await queue.waitUntilEnded(operation, 10_000, async () => (await queue.jobState(operation)) === 'completed'),
    );
    await depot.depot.pool.query(
      `update operations set state = 'in progress', updated_at = now() - interval '5 minutes' where id = $1`,
      [operation],
    );
    await depot.depot.pool.query(`update service_instances set state = 'provisioning' where id = $1`, [id]);
    const last = await waitForOperation(depot, instancePath(id), operation, 20_000);
    assert.deepEqual(last, { state: 'succeeded', description: 'Provisioned.' });
    assert.equal(
      (await adminQuery('select 1 from pg_database where datname = $1', [postgresNames(id).database])).length,
      1,
    );
    await deprovisionInstance(depot, id);
  });

  it('forgets deleted instances and bindings after DELETED_RETENTION_HOURS: last_operation answers 404', async () => {
    const id = await provisionInstance(depot);
    const bindingId = randomUUID();
    await osb(depot).put(bindingPath(id, bindingId), bindBody()).expect(201);
    await osb(depot)
      .delete(`${bindingPath(id, bindingId)}?${deleteQuery()}`)
      .expect(200);
    await osb(depot)
      .get(`${bindingPath(id, bindingId)}/last_operation`)
      .expect(200);
    const other = await provisionInstance(depot);
    await deprovisionInstance(depot, other);
    await osb(depot)
      .get(`${instancePath(other)}/last_operation`)
      .expect(200);

    await depot.depot.pool.query(
      `update service_bindings set deleted_at = now() - interval '169 hours' where id = $1`,
      [bindingId],
    );
    await depot.depot.pool.query(
      `update service_instances set deleted_at = now() - interval '169 hours' where id = $1`,
      [other],
    );
    await depot.depot.sweeper!.sweep();
    await osb(depot)
      .get(`${bindingPath(id, bindingId)}/last_operation`)
      .expect(404);
    await osb(depot)
      .get(`${instancePath(other)}/last_operation`)
      .expect(404);
    const { rows } = await depot.depot.pool.query(
      'select 1 from operations where binding_id = $1 or instance_id = $2',
      [bindingId, other],
    );
    assert.equal(rows.length, 0);
    await osb(depot)
      .get(`${instancePath(id)}/last_operation`)
      .expect(200); // the live instance is kept
    await deprovisionInstance(depot, id);
  });

  it('a binding id stays with its instance: reusing it under another instance is a 409, even deleted', async () => {
    const first = await provisionInstance(depot);
    const second = await provisionInstance(depot);
    const bindingId = randomUUID();
    await osb(depot).put(bindingPath(first, bindingId), bindBody()).expect(201);
    await osb(depot)
      .delete(`${bindingPath(first, bindingId)}?${deleteQuery()}`)
      .expect(200);
    const res = await osb(depot).put(bindingPath(second, bindingId), bindBody()).expect(409);
    assert.match((res.body as { description: string }).description, /another service instance/);
    // under its own instance it can be bound again
    await osb(depot).put(bindingPath(first, bindingId), bindBody()).expect(201);
    await deprovisionInstance(depot, first);
    await deprovisionInstance(depot, second);
  });

  it('a bind must name the instance’s plan: 400 otherwise, nothing created', async () => {
    const id = await provisionInstance(depot);
    const res = await osb(depot)
      .put(bindingPath(id, randomUUID()), bindBody({ plan_id: STANDARD_PLAN_ID }))
      .expect(400);
    assert.match((res.body as { description: string }).description, /plan_id/);
    const { rows } = await depot.depot.pool.query('select 1 from service_bindings where instance_id = $1', [id]);
    assert.equal(rows.length, 0);
    await deprovisionInstance(depot, id);
  });
});

describe('several broker replicas', () => {
  let first: TestDepot;
  let second: TestDepot;
  before(async () => {
    first = await startDepot('replicas');
    second = await startDepot('replicas-2', { role: 'api', shareWith: first });
  });
  after(async () => {
    await second.close();
    await first.close();
  });

  it('identical PUTs racing on two replicas create one instance and one operation', async () => {
    const id = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => osb(i % 2 ? second : first).put(instancePath(id) + ASYNC, provisionBody())),
    );
    const operations = new Set<string>();
    for (const res of responses) {
      assert.ok(res.status === 202 || res.status === 200, `status ${res.status}: ${JSON.stringify(res.body)}`);
      if (res.status === 202) operations.add(operationOf(res));
    }
    assert.equal(operations.size, 1);
    const { rows } = await first.depot.pool.query('select id from operations where instance_id = $1', [id]);
    assert.equal(rows.length, 1);
    await waitForOperation(first, instancePath(id));
    await deprovisionInstance(first, id);
  });

  it('different PUTs racing for one id: one wins, the others get 409', async () => {
    const id = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        osb(i % 2 ? second : first).put(instancePath(id) + ASYNC, provisionBody({ space_guid: `space-${i}` })),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [202, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    await waitForOperation(first, instancePath(id));
    await deprovisionInstance(first, id);
  });

  it('binds racing on two replicas for one binding id: one binding, one bind, and credentials that work', async () => {
    const id = await provisionInstance(first);
    const bindingId = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        osb(i % 2 ? second : first).put(bindingPath(id, bindingId) + ASYNC, bindBody()),
      ),
    );
    const operations = new Set<string>();
    for (const res of responses) {
      // 202 (same operation), 200 once bound, or 422 ConcurrencyError while another request inserts it
      assert.ok([200, 202, 422].includes(res.status), `status ${res.status}`);
      if (res.status === 202) operations.add(operationOf(res));
      if (res.status === 422) assert.equal((res.body as { error: string }).error, 'ConcurrencyError');
    }
    assert.equal(operations.size, 1);
    await waitForOperation(first, bindingPath(id, bindingId));
    // One bind ran: one binding row, one operation. A second run would have set a new password
    // after the first was recorded, and the credentials handed out would no longer log in.
    const { rows: counts } = await first.depot.pool.query<{ bindings: number; operations: number }>(
      `select (select count(*)::int from service_bindings where id = $1) as bindings,
              (select count(*)::int from operations where binding_id = $1) as operations`,
      [bindingId],
    );
    assert.deepEqual(counts[0], { bindings: 1, operations: 1 });
    for (const replica of [first, second]) {
      const fetched = await osb(replica).get(bindingPath(id, bindingId)).expect(200);
      const { credentials } = fetched.body as { credentials: { username: string; password: string } };
      assert.equal(credentials.username, postgresNames(id, bindingId).login);
      assert.ok(
        await passwordMatchesRole(credentials.username, credentials.password),
        'the bound password is the role’s',
      );
    }
    await osb(first)
      .delete(`${bindingPath(id, bindingId)}?${deleteQuery()}`)
      .expect(200);
    await deprovisionInstance(first, id);
  });

  it('a plan change started on one replica is seen on the other', async () => {
    const id = await provisionInstance(first);
    const res = await osb(first)
      .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID })
      .expect(202);
    const polled = await osb(second).get(`${instancePath(id)}/last_operation?operation=${operationOf(res)}`);
    assert.equal(polled.status, 200);
    await waitForOperation(second, instancePath(id));
    const fetched = await osb(second).get(instancePath(id)).expect(200);
    assert.equal((fetched.body as { plan_id: string }).plan_id, STANDARD_PLAN_ID);
    await deprovisionInstance(second, id, STANDARD_PLAN_ID);
  });
});
