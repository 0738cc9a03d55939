/**
 * spec (v2.17) maintenance_info: a plan's `maintenance_info.version` is what a platform must
 * send (or leave out) on provision and update; an update carrying the plan's version upgrades
 * an instance that was built from an older catalog. Depot keeps each instance on the plan
 * settings (`x-depot`) it was built with until it is upgraded or changes plan.
 *
 * The upgrade tests restart Depot on the same state database with a newer catalog, as an
 * operator would roll one out, and check what the upgrade does on the real PostgreSQL server.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { withDatabase } from '../broker/config.js';
import { postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';
import {
  ADMIN_URL,
  ASYNC,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  SERVICE_ID,
  SMALL_PLAN_ID,
  STANDARD_PLAN_ID,
  adminQuery,
  deprovisionInstance,
  dropDatabase,
  forgetQueue,
  instancePath,
  operationOf,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  stateCounts,
  waitForOperation,
  type TestDepot,
  type CatalogDocument,
  type CatalogPlanDocument,
  defaultCatalogDocument,
  planOf,
} from './helpers.js';

// ---- Catalogs ----

/** v1: the built-in catalog (postgresql small/standard and redis shared at 1.0.0). */
function catalogV1(): CatalogDocument {
  return defaultCatalogDocument();
}

const SMALL_V2_INFO = {
  version: '1.1.0',
  description: 'PostgreSQL database: 15 connections, idle transactions end after 10 minutes.',
};
const STANDARD_V2_INFO = { version: '2.0.0', description: 'PostgreSQL database: statements end after 30 seconds.' };

const UNVERSIONED_PLAN_ID = '0b7e2d4c-8a61-4f3e-9c2d-5e1f7a9b3c14';

/** v2: the same plan ids, with new maintenance_info versions and new settings. */
function catalogV2(): CatalogDocument {
  const catalog = catalogV1();
  const small = planOf(catalog, SERVICE_ID, SMALL_PLAN_ID);
  small.maintenance_info = SMALL_V2_INFO;
  small['x-depot'] = { connection_limit: 15, database_settings: { idle_in_transaction_session_timeout: '10min' } };
  const standard = planOf(catalog, SERVICE_ID, STANDARD_PLAN_ID);
  standard.maintenance_info = STANDARD_V2_INFO;
  standard['x-depot'] = { connection_limit: 50, database_settings: { statement_timeout: '30s' } };
  // A plan without maintenance_info: it has no upgrades.
  const { maintenance_info: _none, ...unversioned } = structuredClone(standard);
  catalog.services
    .find((s) => s.id === SERVICE_ID)!
    .plans.push({ ...unversioned, id: UNVERSIONED_PLAN_ID, name: 'unversioned', 'x-depot': { connection_limit: 5 } });
  return catalog;
}

// ---- What the instances look like ----

interface ErrorBody {
  error?: string;
  description?: string;
}
interface InstanceBody {
  service_id: string;
  plan_id: string;
  parameters: Record<string, unknown>;
  maintenance_info?: NonNullable<CatalogPlanDocument['maintenance_info']>;
}

/** The instance's database on the server: its connection limit and its `ALTER DATABASE … SET`s. */
async function serverState(instanceId: string): Promise<{ connlimit: number; settings: string[] } | undefined> {
  const database = postgresNames(instanceId).database;
  const limits = await adminQuery<{ datconnlimit: number }>('select datconnlimit from pg_database where datname = $1', [
    database,
  ]);
  if (limits.length === 0) return undefined;
  const settings = await adminQuery<{ setconfig: string[] }>(
    `select s.setconfig from pg_db_role_setting s join pg_database d on s.setdatabase = d.oid
      where d.datname = $1 and s.setrole = 0`,
    [database],
  );
  return { connlimit: limits[0]!.datconnlimit, settings: settings.flatMap((row) => row.setconfig).sort() };
}

async function databaseExists(instanceId: string): Promise<boolean> {
  return (
    (await adminQuery('select 1 from pg_database where datname = $1', [postgresNames(instanceId).database])).length ===
    1
  );
}

/** Extensions created in the instance's database. */
async function extensionsOf(instanceId: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: withDatabase(ADMIN_URL, postgresNames(instanceId).database) });
  await client.connect();
  try {
    const { rows } = await client.query<{ extname: string }>(
      `select extname from pg_extension where extname <> 'plpgsql' order by 1`,
    );
    return rows.map((r) => r.extname);
  } finally {
    await client.end();
  }
}

async function fetchInstance(target: TestDepot, instanceId: string): Promise<InstanceBody> {
  return (await osb(target).get(instancePath(instanceId)).expect(200)).body as InstanceBody;
}

async function operationCount(target: TestDepot, instanceId: string): Promise<number> {
  const { rows } = await target.depot.pool.query<{ n: number }>(
    'select count(*)::int as n from operations where instance_id = $1',
    [instanceId],
  );
  return rows[0]!.n;
}

/** A PATCH that runs as a job: 202, then the operation must succeed; returns its description. */
async function updateInstance(target: TestDepot, instanceId: string, body: object): Promise<string | undefined> {
  const res = await osb(target)
    .patch(instancePath(instanceId) + ASYNC, body)
    .expect(202);
  const last = await waitForOperation(target, instancePath(instanceId), operationOf(res));
  assert.equal(last.state, 'succeeded', last.description);
  return last.description;
}

function assertMaintenanceInfoConflict(res: { body: unknown }): void {
  const body = res.body as ErrorBody;
  assert.equal(body.error, 'MaintenanceInfoConflict');
  assert.equal(typeof body.description, 'string');
  assert.ok(body.description!.length > 0);
}

const redisProvisionBody = (overrides: Record<string, unknown> = {}) => ({
  ...provisionBody({ service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID }),
  ...overrides,
});

// ---- The tests ----

/** One state database and queue, kept across a restart of Depot with a new catalog. */
const STATE_DATABASE = 'depot_test_maintenance_info';
const QUEUE_PREFIX = `depot-test-mi-${randomUUID().slice(0, 8)}`;
const SHARED_ENV = { DATABASE_URL: withDatabase(ADMIN_URL, STATE_DATABASE), QUEUE_PREFIX };

describe('maintenance_info', () => {
  /** The Depot serving requests now: v1 first, then v2 after the restart. */
  let depot: TestDepot | undefined;
  const live = (): TestDepot => {
    if (!depot) throw new Error('no Depot is running');
    return depot;
  };
  /** Instances provisioned under v1 and left for the v2 tests (outdated after the restart). */
  const outdated = randomUUID();
  const outdatedForPlanChange = randomUUID();

  before(async () => {
    await dropDatabase(STATE_DATABASE);
    depot = await startDepot('maintenance-info-v1', { catalog: catalogV1(), env: SHARED_ENV });
  });
  after(async () => {
    // close() deprovisions whatever instances a failed test left behind (databases and roles).
    await depot?.close();
    await forgetQueue(QUEUE_PREFIX);
    await dropDatabase(STATE_DATABASE);
  });

  describe('catalog v1: the plans at maintenance_info 1.0.0', () => {
    it('provision: 422 MaintenanceInfoConflict for a version that is not the plan’s; nothing is created', async () => {
      const id = randomUUID();
      const counts = await stateCounts(live());
      for (const version of ['0.9.0', '1.1.0']) {
        const res = await osb(live())
          .put(instancePath(id) + ASYNC, provisionBody({ maintenance_info: { version } }))
          .expect(422);
        assertMaintenanceInfoConflict(res);
      }
      assert.deepEqual(await stateCounts(live()), counts);
      assert.equal(await databaseExists(id), false);
      await osb(live()).get(instancePath(id)).expect(404);
      await osb(live())
        .get(`${instancePath(id)}/last_operation`)
        .expect(404);
    });

    it('provision: the same rule for the redis service; nothing is created', async () => {
      const id = randomUUID();
      const counts = await stateCounts(live());
      const res = await osb(live())
        .put(instancePath(id) + ASYNC, redisProvisionBody({ maintenance_info: { version: '0.9.0' } }))
        .expect(422);
      assertMaintenanceInfoConflict(res);
      assert.deepEqual(await stateCounts(live()), counts);
      await osb(live())
        .get(`${instancePath(id)}/last_operation`)
        .expect(404);
    });

    it('provision: a maintenance_info without version is as absent (202); the instance gets the plan’s', async () => {
      const id = randomUUID();
      const res = await osb(live())
        .put(instancePath(id) + ASYNC, provisionBody({ maintenance_info: { description: 'no version here' } }))
        .expect(202);
      assert.equal((await waitForOperation(live(), instancePath(id), operationOf(res))).state, 'succeeded');
      const fetched = await fetchInstance(live(), id);
      assert.deepEqual(fetched.maintenance_info, planOf(catalogV1(), SERVICE_ID, SMALL_PLAN_ID).maintenance_info);
      assert.deepEqual(await serverState(id), { connlimit: 10, settings: [] });
      await deprovisionInstance(live(), id);
      assert.equal(await databaseExists(id), false);
    });

    it('provision: the same for the redis service (version-less → 202, matching version → 200 on repeat)', async () => {
      const id = randomUUID();
      const res = await osb(live())
        .put(instancePath(id) + ASYNC, redisProvisionBody({ maintenance_info: { description: 'no version here' } }))
        .expect(202);
      assert.equal((await waitForOperation(live(), instancePath(id), operationOf(res))).state, 'succeeded');
      assert.equal((await fetchInstance(live(), id)).maintenance_info?.version, '1.0.0');
      await osb(live())
        .put(instancePath(id) + ASYNC, redisProvisionBody({ maintenance_info: { version: '1.0.0' } }))
        .expect(200);
      const gone = await osb(live())
        .delete(`${instancePath(id)}${ASYNC}&service_id=${REDIS_SERVICE_ID}&plan_id=${REDIS_PLAN_ID}`)
        .expect(202);
      assert.equal((await waitForOperation(live(), instancePath(id), operationOf(gone))).state, 'succeeded');
    });

    it('update: 422 MaintenanceInfoConflict for a version not the plan’s; the instance is unchanged', async () => {
      const id = await provisionInstance(live());
      const counts = await stateCounts(live());
      const operations = await operationCount(live(), id);
      for (const body of [
        { service_id: SERVICE_ID, maintenance_info: { version: '0.9.0' } },
        { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID, maintenance_info: { version: '2.0.0' } },
        // a plan change too must carry the target plan's version, if any
        { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID, maintenance_info: { version: '0.9.0' } },
        // with parameters: nothing of the request is applied
        { service_id: SERVICE_ID, parameters: { extensions: ['citext'] }, maintenance_info: { version: '0.9.0' } },
      ]) {
        assertMaintenanceInfoConflict(
          await osb(live())
            .patch(instancePath(id) + ASYNC, body)
            .expect(422),
        );
      }
      assert.deepEqual(await stateCounts(live()), counts);
      assert.equal(await operationCount(live(), id), operations);
      const fetched = await fetchInstance(live(), id);
      assert.equal(fetched.plan_id, SMALL_PLAN_ID);
      assert.deepEqual(fetched.parameters, {});
      assert.equal(fetched.maintenance_info?.version, '1.0.0');
      assert.deepEqual(await serverState(id), { connlimit: 10, settings: [] });
      await deprovisionInstance(live(), id);
    });

    it('update: the plan’s own version on an up-to-date instance is nothing to do (200 {})', async () => {
      const id = await provisionInstance(live());
      const counts = await stateCounts(live());
      const body = { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID, maintenance_info: { version: '1.0.0' } };
      await osb(live())
        .patch(instancePath(id) + ASYNC, body)
        .expect(200, {});
      await osb(live()).patch(instancePath(id), body).expect(422); // spec: updates are asynchronous only
      assert.deepEqual(await stateCounts(live()), counts);
      await deprovisionInstance(live(), id);
    });

    it('a plan change (small → standard) gives the instance the target’s maintenance_info and settings', async () => {
      const id = await provisionInstance(live());
      assert.deepEqual(await serverState(id), { connlimit: 10, settings: [] });
      await updateInstance(live(), id, {
        service_id: SERVICE_ID,
        plan_id: STANDARD_PLAN_ID,
        maintenance_info: { version: '1.0.0' },
        previous_values: { plan_id: SMALL_PLAN_ID, maintenance_info: { version: '1.0.0' } },
      });
      assert.deepEqual(await serverState(id), { connlimit: 50, settings: [] });
      const fetched = await fetchInstance(live(), id);
      assert.equal(fetched.plan_id, STANDARD_PLAN_ID);
      assert.deepEqual(fetched.maintenance_info, planOf(catalogV1(), SERVICE_ID, STANDARD_PLAN_ID).maintenance_info);
      await deprovisionInstance(live(), id, STANDARD_PLAN_ID);
    });
  });

  describe('catalog v2: small at 1.1.0 (15 connections, a database setting), standard at 2.0.0', () => {
    before(async () => {
      // Two instances built from v1, then Depot restarts on the same state database with v2.
      await provisionInstance(live(), outdated);
      await provisionInstance(live(), outdatedForPlanChange);
      const v1 = live();
      depot = undefined;
      await v1.depot.close(); // not v1.close(): that would deprovision the instances
      depot = await startDepot('maintenance-info-v2', { catalog: catalogV2(), env: SHARED_ENV });
    });

    it('the catalog serves the new versions', async () => {
      const res = await osb(live()).get('/v2/catalog').expect(200);
      const catalog = res.body as CatalogDocument;
      assert.deepEqual(planOf(catalog, SERVICE_ID, SMALL_PLAN_ID).maintenance_info, SMALL_V2_INFO);
      assert.deepEqual(planOf(catalog, SERVICE_ID, STANDARD_PLAN_ID).maintenance_info, STANDARD_V2_INFO);
      assert.equal(planOf(catalog, SERVICE_ID, SMALL_PLAN_ID)['x-depot'], undefined); // never served
    });

    it('an instance built from v1 keeps maintenance_info 1.0.0 and its settings until it is upgraded', async () => {
      const fetched = await fetchInstance(live(), outdated);
      assert.deepEqual(fetched.maintenance_info, planOf(catalogV1(), SERVICE_ID, SMALL_PLAN_ID).maintenance_info);
      assert.deepEqual(await serverState(outdated), { connlimit: 10, settings: [] });
    });

    it('update: 422 MaintenanceInfoConflict for the instance’s own (outdated) version or an unknown one', async () => {
      const counts = await stateCounts(live());
      for (const version of ['1.0.0', '0.9.0', '2.0.0']) {
        const res = await osb(live())
          .patch(instancePath(outdated) + ASYNC, { service_id: SERVICE_ID, maintenance_info: { version } })
          .expect(422);
        assertMaintenanceInfoConflict(res);
      }
      assert.deepEqual(await stateCounts(live()), counts);
      assert.equal((await fetchInstance(live(), outdated)).maintenance_info?.version, '1.0.0');
    });

    it('update without maintenance_info: parameters change, but the new plan settings are not applied', async () => {
      const description = await updateInstance(live(), outdated, {
        service_id: SERVICE_ID,
        parameters: { extensions: ['citext'] },
      });
      assert.equal(description, 'Updated.');
      assert.deepEqual(await extensionsOf(outdated), ['citext']);
      assert.deepEqual(await serverState(outdated), { connlimit: 10, settings: [] });
      const fetched = await fetchInstance(live(), outdated);
      assert.deepEqual(fetched.parameters, { extensions: ['citext'] });
      assert.equal(fetched.maintenance_info?.version, '1.0.0');
    });

    it('an upgrade without accepts_incomplete: 422 AsyncRequired; nothing changes', async () => {
      const counts = await stateCounts(live());
      const res = await osb(live())
        .patch(instancePath(outdated), {
          service_id: SERVICE_ID,
          plan_id: SMALL_PLAN_ID,
          maintenance_info: { version: '1.1.0' },
        })
        .expect(422);
      assert.equal((res.body as ErrorBody).error, 'AsyncRequired');
      assert.deepEqual(await stateCounts(live()), counts);
      assert.equal((await fetchInstance(live(), outdated)).maintenance_info?.version, '1.0.0');
      assert.deepEqual(await serverState(outdated), { connlimit: 10, settings: [] });
    });

    it('an upgrade (PATCH with the plan’s version): 202, then the new settings are on the server', async () => {
      const description = await updateInstance(live(), outdated, {
        service_id: SERVICE_ID,
        plan_id: SMALL_PLAN_ID,
        maintenance_info: { version: '1.1.0' },
        previous_values: { plan_id: SMALL_PLAN_ID, maintenance_info: { version: '1.0.0' } },
      });
      assert.match(description ?? '', /1\.0\.0.*1\.1\.0/);
      assert.deepEqual(await serverState(outdated), {
        connlimit: 15,
        settings: ['idle_in_transaction_session_timeout=10min'],
      });
      const fetched = await fetchInstance(live(), outdated);
      assert.deepEqual(fetched.maintenance_info, SMALL_V2_INFO);
      assert.equal(fetched.plan_id, SMALL_PLAN_ID);
      assert.deepEqual(fetched.parameters, { extensions: ['citext'] }); // the upgrade keeps them
      assert.deepEqual(await extensionsOf(outdated), ['citext']);
    });

    it('the same upgrade again: 200 {} (nothing to do); without accepts_incomplete 422 AsyncRequired', async () => {
      const counts = await stateCounts(live());
      const body = { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID, maintenance_info: { version: '1.1.0' } };
      await osb(live())
        .patch(instancePath(outdated) + ASYNC, body)
        .expect(200, {});
      await osb(live()).patch(instancePath(outdated), body).expect(422);
      assert.deepEqual(await stateCounts(live()), counts);
      assert.equal((await fetchInstance(live(), outdated)).maintenance_info?.version, '1.1.0');
    });

    it('a parameter update after the upgrade keeps the upgraded settings and the tenant’s own', async () => {
      // The tenant, as the database's owner, sets a default of its own.
      await adminQuery(`alter database ${postgresNames(outdated).database} set timezone = 'Europe/Paris'`);
      await updateInstance(live(), outdated, {
        service_id: SERVICE_ID,
        parameters: { extensions: ['citext', 'ltree'] },
      });
      assert.deepEqual(await serverState(outdated), {
        connlimit: 15,
        settings: ['TimeZone=Europe/Paris', 'idle_in_transaction_session_timeout=10min'],
      });
      assert.equal((await fetchInstance(live(), outdated)).maintenance_info?.version, '1.1.0');
      await deprovisionInstance(live(), outdated);
      assert.equal(await databaseExists(outdated), false);
    });

    it('provision with the old version: 422 MaintenanceInfoConflict; nothing is created', async () => {
      const id = randomUUID();
      const counts = await stateCounts(live());
      assertMaintenanceInfoConflict(
        await osb(live())
          .put(instancePath(id) + ASYNC, provisionBody({ maintenance_info: { version: '1.0.0' } }))
          .expect(422),
      );
      assert.deepEqual(await stateCounts(live()), counts);
      assert.equal(await databaseExists(id), false);
    });

    it('provision with the new version, or none: the instance gets the v2 settings at once', async () => {
      for (const overrides of [{ maintenance_info: { version: '1.1.0' } }, {}]) {
        const id = await provisionInstance(live(), randomUUID(), overrides);
        assert.deepEqual(await serverState(id), {
          connlimit: 15,
          settings: ['idle_in_transaction_session_timeout=10min'],
        });
        assert.deepEqual((await fetchInstance(live(), id)).maintenance_info, SMALL_V2_INFO);
        await deprovisionInstance(live(), id);
        assert.equal(await databaseExists(id), false);
      }
    });

    it('outdated instance’s plan change: 422 for the source plan’s version, then it gets the target’s', async () => {
      const id = outdatedForPlanChange;
      const counts = await stateCounts(live());
      assertMaintenanceInfoConflict(
        await osb(live())
          .patch(instancePath(id) + ASYNC, {
            service_id: SERVICE_ID,
            plan_id: STANDARD_PLAN_ID,
            maintenance_info: { version: '1.1.0' },
          })
          .expect(422),
      );
      assert.deepEqual(await stateCounts(live()), counts);

      const description = await updateInstance(live(), id, { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID });
      assert.match(description ?? '', /1\.0\.0.*2\.0\.0/);
      assert.deepEqual(await serverState(id), { connlimit: 50, settings: ['statement_timeout=30s'] });
      const fetched = await fetchInstance(live(), id);
      assert.equal(fetched.plan_id, STANDARD_PLAN_ID);
      assert.deepEqual(fetched.maintenance_info, STANDARD_V2_INFO);

      // and back to small: the small plan's current version and settings
      await updateInstance(live(), id, { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID });
      assert.deepEqual(await serverState(id), {
        connlimit: 15,
        settings: ['idle_in_transaction_session_timeout=10min'],
      });
      assert.deepEqual((await fetchInstance(live(), id)).maintenance_info, SMALL_V2_INFO);
      await deprovisionInstance(live(), id);
      assert.equal(await databaseExists(id), false);
    });

    it('change to a plan without maintenance_info: 422 if one is sent; else the instance ends with none', async () => {
      const id = await provisionInstance(live());
      const counts = await stateCounts(live());
      assertMaintenanceInfoConflict(
        await osb(live())
          .patch(instancePath(id) + ASYNC, {
            service_id: SERVICE_ID,
            plan_id: UNVERSIONED_PLAN_ID,
            maintenance_info: { version: '1.1.0' },
          })
          .expect(422),
      );
      assert.deepEqual(await stateCounts(live()), counts);

      await updateInstance(live(), id, { service_id: SERVICE_ID, plan_id: UNVERSIONED_PLAN_ID });
      assert.deepEqual(await serverState(id), { connlimit: 5, settings: [] });
      const fetched = await fetchInstance(live(), id);
      assert.equal(fetched.plan_id, UNVERSIONED_PLAN_ID);
      // The small plan's maintenance_info does not describe an instance of another plan.
      assert.equal(fetched.maintenance_info, undefined);
      await deprovisionInstance(live(), id, UNVERSIONED_PLAN_ID);
      assert.equal(await databaseExists(id), false);
    });
  });
});
