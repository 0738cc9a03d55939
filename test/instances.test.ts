import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  operationOf,
  ASYNC,
  SERVICE_ID,
  SMALL_PLAN_ID,
  STANDARD_PLAN_ID,
  adminQuery,
  deleteQuery,
  deprovisionInstance,
  instancePath,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  stateCounts,
  waitForOperation,
  type TestDepot,
  unsealed,
} from './helpers.js';
import { postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';

/** spec "Provisioning", "Updating", "Deprovisioning", "Fetching", "Polling" tables, with a worker running. */
describe('service instances', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('instances');
  });
  after(async () => depot.close());

  describe('PUT (provision)', () => {
    it('202 with an operation, then last_operation succeeds and the database exists', async () => {
      const id = randomUUID();
      const res = await osb(depot)
        .put(instancePath(id) + ASYNC, provisionBody())
        .expect(202);
      const { operation } = res.body as { operation: string };
      assert.equal(typeof operation, 'string');
      assert.deepEqual(Object.keys(res.body as object), ['operation']); // no null fields
      const last = await waitForOperation(depot, instancePath(id), operation);
      assert.deepEqual(last, { state: 'succeeded', description: 'Provisioned.' });
      const rows = await adminQuery<{ datconnlimit: number }>(
        'select datconnlimit from pg_database where datname = $1',
        [postgresNames(id).database],
      );
      assert.deepEqual(rows, [{ datconnlimit: 10 }]);
      await deprovisionInstance(depot, id);
    });

    it('200 {} for an identical PUT of a provisioned instance, with or without accepts_incomplete', async () => {
      const id = await provisionInstance(depot);
      const again = await osb(depot)
        .put(instancePath(id) + ASYNC, provisionBody())
        .expect(200);
      assert.deepEqual(again.body, {});
      // spec: the 200 is the synchronous answer, so it needs no accepts_incomplete
      await osb(depot).put(instancePath(id), provisionBody()).expect(200, {});
      // a different one is a conflict, with or without accepts_incomplete (spec: 409)
      await osb(depot)
        .put(instancePath(id), provisionBody({ plan_id: STANDARD_PLAN_ID }))
        .expect(409);
      // key order and the context do not make a request different
      const reordered = { ...provisionBody(), context: { platform: 'cloudfoundry', instance_name: 'renamed' } };
      await osb(depot)
        .put(instancePath(id) + ASYNC, reordered)
        .expect(200);
      await deprovisionInstance(depot, id);
    });

    it('409 for the same id with a different plan, parameters, organization or space', async () => {
      const id = await provisionInstance(depot);
      const before = await stateCounts(depot);
      for (const change of [
        { plan_id: STANDARD_PLAN_ID },
        { parameters: { extensions: ['citext'] } },
        { organization_guid: 'another-org' },
        { space_guid: 'another-space' },
      ]) {
        const res = await osb(depot)
          .put(instancePath(id) + ASYNC, provisionBody(change))
          .expect(409);
        assert.match((res.body as { description: string }).description, /already exists/);
      }
      assert.deepEqual(await stateCounts(depot), before);
      await deprovisionInstance(depot, id);
    });

    it('409 for an existing id with other attributes, whatever else is wrong with the request', async () => {
      const id = await provisionInstance(depot);
      const before = await stateCounts(depot);
      // Each of these is a 400 or 422 for a new id; for this one the conflict comes first (spec: 409).
      for (const change of [
        { plan_id: 'no-such-plan' },
        { service_id: 'no-such-service' },
        { parameters: { extensions: ['no-such-extension'] } }, // refused by the plan's schema
      ]) {
        for (const query of [ASYNC, '']) {
          const res = await osb(depot).put(instancePath(id) + query, provisionBody(change));
          assert.equal(res.status, 409, `${JSON.stringify(change)}${query}: ${JSON.stringify(res.body)}`);
        }
      }
      await osb(depot)
        .put(instancePath(randomUUID()) + ASYNC, provisionBody({ plan_id: 'no-such-plan' }))
        .expect(400);
      assert.deepEqual(await stateCounts(depot), before);
      await deprovisionInstance(depot, id);
    });

    it('422 AsyncRequired without accepts_incomplete=true, and nothing is created', async () => {
      const id = randomUUID();
      const before = await stateCounts(depot);
      for (const query of ['', '?accepts_incomplete=false']) {
        const res = await osb(depot)
          .put(instancePath(id) + query, provisionBody())
          .expect(422);
        assert.equal((res.body as { error: string }).error, 'AsyncRequired');
      }
      assert.deepEqual(await stateCounts(depot), before);
    });

    it('422 MaintenanceInfoConflict for another maintenance_info.version; matching or version-less is ok', async () => {
      const id = randomUUID();
      const res = await osb(depot)
        .put(instancePath(id) + ASYNC, provisionBody({ maintenance_info: { version: '0.9.0' } }))
        .expect(422);
      assert.equal((res.body as { error: string }).error, 'MaintenanceInfoConflict');
      await provisionInstance(depot, id, { maintenance_info: { version: '1.0.0' } });
      const fetched = await osb(depot).get(instancePath(id)).expect(200);
      assert.equal((fetched.body as { maintenance_info: { version: string } }).maintenance_info.version, '1.0.0');
      await deprovisionInstance(depot, id);
    });

    it('400 naming the field for parameters the plan schema rejects; nothing is created', async () => {
      const id = randomUUID();
      const before = await stateCounts(depot);
      const res = await osb(depot)
        .put(instancePath(id) + ASYNC, provisionBody({ parameters: { extensions: ['plpython3u'], size: 3 } }))
        .expect(400);
      const { description } = res.body as { description: string };
      assert.match(description, /parameters\.extensions\[0\]/);
      assert.match(description, /parameters\.size is not an allowed property/);
      assert.deepEqual(await stateCounts(depot), before);
    });

    it('creates the requested extensions', async () => {
      const id = await provisionInstance(depot, randomUUID(), { parameters: { extensions: ['citext', 'pg_trgm'] } });
      const database = postgresNames(id).database;
      const client = new (await import('pg')).default.Client({
        connectionString: `postgresql://postgres:postgres@127.0.0.1:5432/${database}`,
      });
      await client.connect();
      const { rows } = await client.query<{ extname: string }>('select extname from pg_extension order by 1');
      await client.end();
      assert.deepEqual(
        rows.map((r) => r.extname).filter((e) => e !== 'plpgsql'),
        ['citext', 'pg_trgm'],
      );
      await deprovisionInstance(depot, id);
    });

    it('a new PUT after a deprovision provisions the id again', async () => {
      const id = await provisionInstance(depot);
      await deprovisionInstance(depot, id);
      await provisionInstance(depot, id, { plan_id: STANDARD_PLAN_ID });
      const fetched = await osb(depot).get(instancePath(id)).expect(200);
      assert.equal((fetched.body as { plan_id: string }).plan_id, STANDARD_PLAN_ID);
      await deprovisionInstance(depot, id, STANDARD_PLAN_ID);
    });

    it('records the originating identity and the request identity with the operation', async () => {
      const id = randomUUID();
      const identity = Buffer.from(JSON.stringify({ user_id: 'user-42' })).toString('base64');
      const res = await osb(depot)
        .put(instancePath(id) + ASYNC, provisionBody())
        .set('X-Broker-API-Originating-Identity', `cloudfoundry ${identity}`)
        .set('X-Broker-API-Request-Identity', 'request-77')
        .expect(202);
      const { rows } = await depot.depot.pool.query<{ originating_identity: unknown; request_identity: string }>(
        'select originating_identity, request_identity from operations where id = $1',
        [operationOf(res)],
      );
      assert.deepEqual(unsealed(depot, 'operations', operationOf(res), rows[0]!), {
        originating_identity: { platform: 'cloudfoundry', value: { user_id: 'user-42' } },
        request_identity: 'request-77',
      });
      await waitForOperation(depot, instancePath(id));
      await deprovisionInstance(depot, id);
    });
  });

  describe('GET (fetch)', () => {
    it('200 with service_id, plan_id, parameters and maintenance_info; no null fields', async () => {
      const id = await provisionInstance(depot, randomUUID(), { parameters: { extensions: ['hstore'] } });
      const res = await osb(depot).get(instancePath(id)).expect(200);
      assert.deepEqual(res.body, {
        service_id: SERVICE_ID,
        plan_id: SMALL_PLAN_ID,
        parameters: { extensions: ['hstore'] },
        maintenance_info: { version: '1.0.0', description: 'PostgreSQL database, first release.' },
      });
      await deprovisionInstance(depot, id);
      await osb(depot).get(instancePath(id)).expect(404);
    });

    it('404 for an unknown instance', async () => {
      const res = await osb(depot).get(instancePath(randomUUID())).expect(404);
      assert.ok((res.body as { description: string }).description);
    });
  });

  describe('PATCH (update)', () => {
    it('changes the plan: 202, then the connection limit and the fetched plan follow', async () => {
      const id = await provisionInstance(depot);
      const res = await osb(depot)
        .patch(instancePath(id) + ASYNC, {
          service_id: SERVICE_ID,
          plan_id: STANDARD_PLAN_ID,
          previous_values: { plan_id: SMALL_PLAN_ID },
        })
        .expect(202);
      const last = await waitForOperation(depot, instancePath(id), operationOf(res));
      assert.equal(last.state, 'succeeded');
      const rows = await adminQuery<{ datconnlimit: number }>(
        'select datconnlimit from pg_database where datname = $1',
        [postgresNames(id).database],
      );
      assert.deepEqual(rows, [{ datconnlimit: 50 }]);
      const fetched = await osb(depot).get(instancePath(id)).expect(200);
      assert.equal((fetched.body as { plan_id: string }).plan_id, STANDARD_PLAN_ID);
      // and back down
      const down = await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID })
        .expect(202);
      await waitForOperation(depot, instancePath(id), operationOf(down));
      const after = await adminQuery<{ datconnlimit: number }>(
        'select datconnlimit from pg_database where datname = $1',
        [postgresNames(id).database],
      );
      assert.deepEqual(after, [{ datconnlimit: 10 }]);
      await deprovisionInstance(depot, id);
    });

    it('merges new parameters into the instance and adds the extension', async () => {
      const id = await provisionInstance(depot, randomUUID(), { parameters: { extensions: ['citext'] } });
      const res = await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, parameters: { extensions: ['citext', 'ltree'] } })
        .expect(202);
      await waitForOperation(depot, instancePath(id), operationOf(res));
      const fetched = await osb(depot).get(instancePath(id)).expect(200);
      assert.deepEqual((fetched.body as { parameters: unknown }).parameters, { extensions: ['citext', 'ltree'] });
      await deprovisionInstance(depot, id);
    });

    it('200 {} for an update that changes nothing; 422 AsyncRequired for it without accepts_incomplete', async () => {
      const id = await provisionInstance(depot);
      const before = await stateCounts(depot);
      await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID })
        .expect(200, {});
      await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID })
        .expect(200, {});
      // spec: every update of Depot's is asynchronous, so a synchronous PATCH is refused whatever it changes
      const sync = await osb(depot).patch(instancePath(id), { service_id: SERVICE_ID }).expect(422);
      assert.equal((sync.body as { error: string }).error, 'AsyncRequired');
      assert.deepEqual(await stateCounts(depot), before);
      await deprovisionInstance(depot, id);
    });

    it('applies a context-only update at once (allow_context_updates)', async () => {
      const id = await provisionInstance(depot);
      const context = { platform: 'cloudfoundry', instance_name: 'renamed-db' };
      await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, context })
        .expect(200, {});
      const { rows } = await depot.depot.pool.query<{ context: unknown }>(
        'select context from service_instances where id = $1',
        [id],
      );
      assert.deepEqual(unsealed(depot, 'service_instances', id, rows[0]!).context, context);
      await deprovisionInstance(depot, id);
    });

    it('422 AsyncRequired for a real change without accepts_incomplete; nothing changes', async () => {
      const id = await provisionInstance(depot);
      const res = await osb(depot)
        .patch(instancePath(id), { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID })
        .expect(422);
      assert.equal((res.body as { error: string }).error, 'AsyncRequired');
      const fetched = await osb(depot).get(instancePath(id)).expect(200);
      assert.equal((fetched.body as { plan_id: string }).plan_id, SMALL_PLAN_ID);
      await deprovisionInstance(depot, id);
    });

    it('4xx for an unknown plan, a schema violation or a maintenance_info conflict; nothing changes', async () => {
      const id = await provisionInstance(depot);
      const before = await stateCounts(depot);
      await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, plan_id: 'no-such-plan' })
        .expect(400);
      const schema = await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, parameters: { extensions: 'citext' } })
        .expect(400);
      assert.match((schema.body as { description: string }).description, /parameters\.extensions/);
      const conflict = await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, maintenance_info: { version: '2.0.0' } })
        .expect(422);
      assert.equal((conflict.body as { error: string }).error, 'MaintenanceInfoConflict');
      await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: 'another-service' })
        .expect(400);
      assert.deepEqual(await stateCounts(depot), before);
      await deprovisionInstance(depot, id);
    });

    it('404 for an instance that does not exist', async () => {
      await osb(depot)
        .patch(instancePath(randomUUID()) + ASYNC, { service_id: SERVICE_ID })
        .expect(404);
    });
  });

  describe('DELETE (deprovision)', () => {
    it('202, then the database and its roles are gone and last_operation keeps answering succeeded', async () => {
      const id = await provisionInstance(depot);
      const res = await osb(depot)
        .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
        .expect(202);
      const last = await waitForOperation(depot, instancePath(id), operationOf(res));
      assert.deepEqual(last, { state: 'succeeded', description: 'Deprovisioned.' });
      const names = postgresNames(id);
      assert.deepEqual(await adminQuery('select 1 from pg_database where datname = $1', [names.database]), []);
      assert.deepEqual(await adminQuery('select 1 from pg_roles where rolname like $1', [`${names.database}%`]), []);
      // spec: the broker SHOULD NOT forget the state at once; 200 succeeded, not 404 or 410
      const polled = await osb(depot)
        .get(`${instancePath(id)}/last_operation`)
        .expect(200);
      assert.deepEqual(polled.body, { state: 'succeeded', description: 'Deprovisioned.' });
    });

    it('410 Gone for an unknown or already deleted instance', async () => {
      await osb(depot)
        .delete(`${instancePath(randomUUID())}${ASYNC}&${deleteQuery()}`)
        .expect(410);
      const id = await provisionInstance(depot);
      await deprovisionInstance(depot, id);
      const res = await osb(depot)
        .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
        .expect(410);
      assert.ok((res.body as { description: string }).description);
    });

    it('422 AsyncRequired without accepts_incomplete=true; the instance stays', async () => {
      const id = await provisionInstance(depot);
      const res = await osb(depot)
        .delete(`${instancePath(id)}?${deleteQuery()}`)
        .expect(422);
      assert.equal((res.body as { error: string }).error, 'AsyncRequired');
      await osb(depot).get(instancePath(id)).expect(200);
      await deprovisionInstance(depot, id);
    });

    it('400 without service_id or plan_id, or with a service_id that is not the instance’s', async () => {
      const id = await provisionInstance(depot);
      await osb(depot)
        .delete(`${instancePath(id)}?accepts_incomplete=true&plan_id=${SMALL_PLAN_ID}`)
        .expect(400);
      await osb(depot)
        .delete(`${instancePath(id)}?accepts_incomplete=true&service_id=${SERVICE_ID}`)
        .expect(400);
      await osb(depot)
        .delete(`${instancePath(id)}?accepts_incomplete=true&service_id=nope&plan_id=${SMALL_PLAN_ID}`)
        .expect(400);
      await osb(depot).get(instancePath(id)).expect(200);
      await deprovisionInstance(depot, id);
    });
  });

  describe('GET last_operation', () => {
    it('404 for an instance never seen', async () => {
      await osb(depot)
        .get(`${instancePath(randomUUID())}/last_operation`)
        .expect(404);
    });

    it('falls back to the latest operation for an unknown operation value', async () => {
      const id = await provisionInstance(depot);
      const res = await osb(depot)
        .get(`${instancePath(id)}/last_operation?operation=provision`)
        .expect(200);
      assert.equal((res.body as { state: string }).state, 'succeeded');
      await deprovisionInstance(depot, id);
    });

    it('answers the operation asked for, not only the latest', async () => {
      const id = randomUUID();
      const provision = await osb(depot)
        .put(instancePath(id) + ASYNC, provisionBody())
        .expect(202);
      const provisionOp = operationOf(provision);
      await waitForOperation(depot, instancePath(id), provisionOp);
      const update = await osb(depot)
        .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID })
        .expect(202);
      await waitForOperation(depot, instancePath(id), operationOf(update));
      const first = await osb(depot)
        .get(`${instancePath(id)}/last_operation?operation=${provisionOp}`)
        .expect(200);
      assert.equal((first.body as { description: string }).description, 'Provisioned.');
      const latest = await osb(depot)
        .get(`${instancePath(id)}/last_operation`)
        .expect(200);
      assert.equal((latest.body as { description: string }).description, 'Updated.');
      await deprovisionInstance(depot, id, STANDARD_PLAN_ID);
    });
  });
});

/**
 * Operations that are still running. The API runs without a worker (`npm run start:api`
 * with no `start:worker`), so each operation stays "in progress" until a worker starts.
 */
describe('service instances while an operation runs', () => {
  let api: TestDepot;
  before(async () => {
    api = await startDepot('instances-in-progress', { role: 'api' });
  });
  after(async () => api.close());

  /** Runs the queued jobs to completion with a worker sharing the API's database and queue. */
  async function runWorker(until: () => Promise<boolean>): Promise<void> {
    const worker = await startDepot('instances-in-progress-worker', { role: 'worker', shareWith: api });
    try {
      const deadline = Date.now() + 30_000;
      while (!(await until())) {
        if (Date.now() > deadline) throw new Error('the worker did not finish in time');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await worker.close();
    }
  }
  const succeeded = (id: string) => async () => {
    const res = await osb(api).get(`${instancePath(id)}/last_operation`);
    return (res.body as { state: string }).state === 'succeeded';
  };

  it('provisioning: same PUT → 202 same op; other → 409; GET → 404; DELETE/PATCH → 422 ConcurrencyError', async () => {
    const id = randomUUID();
    const first = await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    const operation = operationOf(first);

    // spec: a re-sent PUT MUST return 202 with the same operation while provisioning
    const again = await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    assert.equal(operationOf(again), operation);
    await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody({ plan_id: STANDARD_PLAN_ID }))
      .expect(409);

    const polled = await osb(api)
      .get(`${instancePath(id)}/last_operation?operation=${operation}`)
      .expect(200);
    assert.deepEqual(polled.body, { state: 'in progress' });
    assert.match(polled.headers['retry-after']!, /^\d+$/);

    await osb(api).get(instancePath(id)).expect(404); // spec: 404 while provisioning is in progress
    const del = await osb(api)
      .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
      .expect(422);
    assert.equal((del.body as { error: string }).error, 'ConcurrencyError');
    const patch = await osb(api)
      .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID })
      .expect(422);
    assert.equal((patch.body as { error: string }).error, 'ConcurrencyError');

    await runWorker(succeeded(id));
    await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(200);
    await osb(api).get(instancePath(id)).expect(200);
  });

  it('updating: GET → 422 ConcurrencyError; same PATCH → 202 same operation; another → 422', async () => {
    const id = randomUUID();
    await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    await runWorker(succeeded(id));
    const update = { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID };
    const first = await osb(api)
      .patch(instancePath(id) + ASYNC, update)
      .expect(202);
    const operation = operationOf(first);

    const again = await osb(api)
      .patch(instancePath(id) + ASYNC, update)
      .expect(202);
    assert.equal(operationOf(again), operation);
    // a 202 is only for a platform that accepts incomplete operations
    const sync = await osb(api).patch(instancePath(id), update).expect(422);
    assert.equal((sync.body as { error: string }).error, 'AsyncRequired');
    const other = await osb(api)
      .patch(instancePath(id) + ASYNC, { service_id: SERVICE_ID, parameters: { extensions: ['citext'] } })
      .expect(422);
    assert.equal((other.body as { error: string }).error, 'ConcurrencyError');
    const fetched = await osb(api).get(instancePath(id)).expect(422);
    assert.equal((fetched.body as { error: string }).error, 'ConcurrencyError');
    const del = await osb(api)
      .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
      .expect(422);
    assert.equal((del.body as { error: string }).error, 'ConcurrencyError');

    await runWorker(succeeded(id));
    const after = await osb(api).get(instancePath(id)).expect(200);
    assert.equal((after.body as { plan_id: string }).plan_id, STANDARD_PLAN_ID);
  });

  it('deprovisioning: a re-sent DELETE → 202 same operation; PUT → 422; then last_operation succeeded', async () => {
    const id = randomUUID();
    await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(202);
    await runWorker(succeeded(id));
    const first = await osb(api)
      .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
      .expect(202);
    const operation = operationOf(first);
    const again = await osb(api)
      .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
      .expect(202);
    assert.equal(operationOf(again), operation);
    const put = await osb(api)
      .put(instancePath(id) + ASYNC, provisionBody())
      .expect(422);
    assert.equal((put.body as { error: string }).error, 'ConcurrencyError');
    await runWorker(succeeded(id));
    const last = await osb(api)
      .get(`${instancePath(id)}/last_operation?operation=${operation}`)
      .expect(200);
    assert.deepEqual(last.body, { state: 'succeeded', description: 'Deprovisioned.' });
    assert.deepEqual(
      await adminQuery('select 1 from pg_database where datname = $1', [postgresNames(id).database]),
      [],
    );
  });
});
