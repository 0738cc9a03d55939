/**
 * Binding rotation (OSB v2.17 `predecessor_binding_id`, plan `binding_rotatable`) and binding
 * credential lifetimes (`metadata.expires_at` / `renew_before`), against a real Depot that
 * creates real PostgreSQL login roles and real Redis ACL users. Credentials are proved to work
 * (or not) for real: PostgreSQL passwords against the role's SCRAM verifier (this server trusts
 * local TCP logins), Redis ones by AUTH.
 */
import assert from 'node:assert/strict';
import { place } from '../broker/db/sealed-columns.js';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { BindingMetadata, FetchBindingResponse } from '../osb/index.js';
import { postgresNames, type PostgresqlCredentials } from '../broker/offerings/postgresql/postgresql-offering.js';
import { redisNames, redisUsername, type RedisCredentials } from '../broker/offerings/redis/redis-offering.js';
import {
  ASYNC,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  bindingRedis,
  tenantRedisUrl,
  SERVICE_ID,
  SMALL_PLAN_ID,
  STANDARD_PLAN_ID,
  adminQuery,
  bindBody,
  bindingPath,
  deleteQuery,
  deprovisionInstance,
  dropDatabase,
  instancePath,
  operationOf,
  osb,
  passwordMatchesRole,
  provisionInstance,
  startDepot,
  stateCounts,
  waitForOperation,
  type TestDepot,
  type CatalogDocument,
  type CatalogPlanDocument,
  defaultCatalogDocument,
  planOf,
  unsealed,
} from './helpers.js';

interface ErrorBody {
  error?: string;
  description: string;
}
interface BindBody<C> {
  credentials: C;
  metadata?: BindingMetadata;
}

const unbindQuery = `?${deleteQuery()}`;
const redisQuery = `service_id=${REDIS_SERVICE_ID}&plan_id=${REDIS_PLAN_ID}`;
const redisBindBody = (overrides: Record<string, unknown> = {}) =>
  bindBody({ service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID, ...overrides });
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/** Depot's row for a binding (without its response, which holds credentials). */
async function bindingRow(target: TestDepot, bindingId: string) {
  const { rows } = await target.depot.pool.query<{
    state: string;
    app_guid: string | null;
    bind_resource: Record<string, unknown> | null;
    parameters: Record<string, unknown>;
    predecessor_binding_id: string | null;
  }>('select state, app_guid, bind_resource, parameters, predecessor_binding_id from service_bindings where id = $1', [
    bindingId,
  ]);
  return rows[0] && unsealed(target, 'service_bindings', bindingId, rows[0]);
}

/** The binding's login role on the PostgreSQL server, if it exists. */
async function pgRole(instanceId: string, bindingId: string) {
  const rows = await adminQuery<{ rolname: string; rolvaliduntil: Date | number | null; valid_until: string | null }>(
    'select rolname, rolvaliduntil, rolvaliduntil::text as valid_until from pg_roles where rolname = $1',
    [postgresNames(instanceId, bindingId).login],
  );
  return rows[0];
}

// ---- Redis clients: real logins, that fail fast and quietly ----

const redisClients: Redis[] = [];

/** Logs in with a binding's uri; rejects with the server's error (WRONGPASS …) when refused. */
async function redisLogin(uri: string): Promise<Redis> {
  const client = bindingRedis(uri);
  const errors: Error[] = [];
  client.on('error', (error: Error) => errors.push(error));
  redisClients.push(client);
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw errors[0] ?? error;
  }
  return client;
}

async function redisUsers(): Promise<string[]> {
  const admin = await redisLogin(await tenantRedisUrl());
  try {
    return (await admin.call('ACL', 'USERS')) as string[];
  } finally {
    admin.disconnect();
  }
}

async function deprovisionRedis(target: TestDepot, instanceId: string): Promise<void> {
  const res = await osb(target)
    .delete(`${instancePath(instanceId)}${ASYNC}&${redisQuery}`)
    .expect(202);
  assert.equal((await waitForOperation(target, instancePath(instanceId), operationOf(res))).state, 'succeeded');
}

// ---- The built-in catalog: postgresql small and redis shared are binding_rotatable ----

describe('binding rotation (built-in catalog)', () => {
  let depot: TestDepot;
  let pgInstance: string;
  let otherPgInstance: string;
  let redisInstance: string;
  before(async () => {
    depot = await startDepot('rotation');
    [pgInstance, otherPgInstance, redisInstance] = await Promise.all([
      provisionInstance(depot),
      provisionInstance(depot),
      provisionInstance(depot, randomUUID(), { service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID }),
    ]);
  });
  after(async () => {
    for (const client of redisClients) client.disconnect();
    await deprovisionInstance(depot, pgInstance);
    await deprovisionInstance(depot, otherPgInstance);
    await deprovisionRedis(depot, redisInstance);
    await depot.close();
  });

  it('postgresql: 201 with a login role of its own; both passwords work until the predecessor is unbound', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const bound = await osb(depot).put(bindingPath(pgInstance, a), bindBody()).expect(201);
    const credsA = (bound.body as BindBody<PostgresqlCredentials>).credentials;

    const rotated = await osb(depot)
      .put(bindingPath(pgInstance, b), bindBody({ predecessor_binding_id: a }))
      .expect(201);
    assert.deepEqual(
      Object.keys(rotated.body as object),
      ['credentials'],
      'no metadata: the plan has no credential lifetime',
    );
    const credsB = (rotated.body as BindBody<PostgresqlCredentials>).credentials;
    assert.equal(credsB.username, postgresNames(pgInstance, b).login);
    assert.notEqual(credsB.username, credsA.username);
    assert.notEqual(credsB.password, credsA.password);
    assert.equal(credsB.database, credsA.database, 'the same database');
    assert.ok(await passwordMatchesRole(credsA.username, credsA.password), "A's password still works");
    assert.ok(await passwordMatchesRole(credsB.username, credsB.password), "B's password works");
    assert.equal(await passwordMatchesRole(credsB.username, credsA.password), false);

    // bindings_retrievable: B's GET has its own credentials and A's parameters
    const fetchedA = (await osb(depot).get(bindingPath(pgInstance, a)).expect(200)).body as FetchBindingResponse;
    const fetchedB = (await osb(depot).get(bindingPath(pgInstance, b)).expect(200)).body as FetchBindingResponse;
    assert.deepEqual(fetchedB.parameters, fetchedA.parameters);
    assert.deepEqual(fetchedB.credentials, credsB);
    assert.equal((await bindingRow(depot, b))?.predecessor_binding_id, a);

    await osb(depot)
      .delete(bindingPath(pgInstance, a) + unbindQuery)
      .expect(200);
    assert.equal(await pgRole(pgInstance, a), undefined, "A's role is dropped");
    assert.ok(await passwordMatchesRole(credsB.username, credsB.password), "B's password still works");
    assert.deepEqual((await osb(depot).get(bindingPath(pgInstance, b)).expect(200)).body, fetchedB);
    await osb(depot)
      .delete(bindingPath(pgInstance, b) + unbindQuery)
      .expect(200);
  });

  it('postgresql, asynchronous: 202, last_operation succeeds, then GET binding has the new credentials', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const credsA = (
      (await osb(depot).put(bindingPath(pgInstance, a), bindBody()).expect(201)).body as BindBody<PostgresqlCredentials>
    ).credentials;
    const path = bindingPath(pgInstance, b);
    const res = await osb(depot)
      .put(path + ASYNC, bindBody({ predecessor_binding_id: a }))
      .expect(202);
    assert.deepEqual(Object.keys(res.body as object), ['operation']);
    assert.equal((await waitForOperation(depot, path, operationOf(res))).state, 'succeeded');
    const fetched = (await osb(depot).get(path).expect(200)).body as FetchBindingResponse &
      BindBody<PostgresqlCredentials>;
    assert.deepEqual(fetched.parameters, {});
    assert.equal(fetched.credentials.username, postgresNames(pgInstance, b).login);
    assert.notEqual(fetched.credentials.password, credsA.password);
    assert.ok(await passwordMatchesRole(credsA.username, credsA.password));
    assert.ok(await passwordMatchesRole(fetched.credentials.username, fetched.credentials.password));
    // the identical PUT, now that B is bound: 200 with the bind response
    const again = await osb(depot)
      .put(path + ASYNC, bindBody({ predecessor_binding_id: a }))
      .expect(200);
    assert.deepEqual(again.body, { credentials: fetched.credentials });
  });

  it("redis: B uses A's keys; unbinding A ends A's open connection and its logins, B keeps working", async () => {
    const a = randomUUID();
    const b = randomUUID();
    const credsA = (
      (await osb(depot).put(bindingPath(redisInstance, a), redisBindBody()).expect(201))
        .body as BindBody<RedisCredentials>
    ).credentials;
    const { keyPrefix } = redisNames(redisInstance);
    assert.equal(credsA.key_prefix, keyPrefix);
    const clientA = await redisLogin(credsA.uri);
    await clientA.set(`${keyPrefix}written-by-a`, 'hello');

    const rotated = await osb(depot)
      .put(bindingPath(redisInstance, b), redisBindBody({ predecessor_binding_id: a }))
      .expect(201);
    const credsB = (rotated.body as BindBody<RedisCredentials>).credentials;
    assert.equal(credsB.username, redisUsername(redisInstance, b));
    assert.notEqual(credsB.username, credsA.username);
    assert.notEqual(credsB.password, credsA.password);
    assert.equal(credsB.key_prefix, keyPrefix, 'the same instance prefix');
    const clientB = await redisLogin(credsB.uri);
    assert.equal(await clientB.get(`${keyPrefix}written-by-a`), 'hello');
    await clientB.set(`${keyPrefix}written-by-b`, 'world');
    assert.equal(await clientA.get(`${keyPrefix}written-by-b`), 'world', 'A still works');
    // a second login with A's credentials works too
    const clientA2 = await redisLogin(credsA.uri);
    assert.equal(await clientA2.get(`${keyPrefix}written-by-a`), 'hello');
    clientA2.disconnect();

    await osb(depot)
      .delete(`${bindingPath(redisInstance, a)}?${redisQuery}`)
      .expect(200);
    await assert.rejects(clientA.get(`${keyPrefix}written-by-a`), "A's open connection is closed");
    await assert.rejects(redisLogin(credsA.uri), /WRONGPASS/);
    assert.equal((await redisUsers()).includes(credsA.username), false, "A's ACL user is deleted");
    assert.equal(await clientB.get(`${keyPrefix}written-by-a`), 'hello', 'B keeps working');
    await clientB.set(`${keyPrefix}written-by-b`, 'again');
    const clientB2 = await redisLogin(credsB.uri);
    assert.equal(await clientB2.get(`${keyPrefix}written-by-b`), 'again');
    clientB.disconnect();
    clientB2.disconnect();
  });

  it("keeps the predecessor's parameters and bind_resource if a rotation omits them (redis read_only)", async () => {
    const a = randomUUID();
    const b = randomUUID();
    const c = randomUUID();
    const { keyPrefix } = redisNames(redisInstance);
    const readOnly = { parameters: { read_only: true }, bind_resource: { app_guid: 'reporting-app' } };
    await osb(depot).put(bindingPath(redisInstance, a), redisBindBody(readOnly)).expect(201);

    // no `parameters` and no `bind_resource`: both inherited
    const rotated = await osb(depot)
      .put(bindingPath(redisInstance, b), redisBindBody({ predecessor_binding_id: a, bind_resource: undefined }))
      .expect(201);
    assert.deepEqual(await bindingRow(depot, b), {
      state: 'bound',
      app_guid: null,
      bind_resource: { app_guid: 'reporting-app' },
      parameters: { read_only: true },
      predecessor_binding_id: a,
    });
    const fetched = (await osb(depot).get(bindingPath(redisInstance, b)).expect(200)).body as FetchBindingResponse;
    assert.deepEqual(fetched.parameters, { read_only: true });
    // and they take effect: B reads, but cannot write
    const clientB = await redisLogin((rotated.body as BindBody<RedisCredentials>).credentials.uri);
    assert.equal(await clientB.get(`${keyPrefix}nothing`), null);
    await assert.rejects(clientB.set(`${keyPrefix}nothing`, 'x'), /NOPERM/);
    clientB.disconnect();

    // the same values given explicitly are accepted too
    await osb(depot)
      .put(bindingPath(redisInstance, c), redisBindBody({ predecessor_binding_id: b, ...readOnly }))
      .expect(201);
    assert.deepEqual((await bindingRow(depot, c))?.parameters, { read_only: true });

    for (const id of [a, b, c])
      await osb(depot)
        .delete(`${bindingPath(redisInstance, id)}?${redisQuery}`)
        .expect(200);
  });

  it('400 naming the field for other parameters, bind_resource or app_guid, and nothing is created', async () => {
    const a = randomUUID();
    await osb(depot)
      .put(bindingPath(redisInstance, a), redisBindBody({ parameters: { read_only: false } }))
      .expect(201);
    const counts = await stateCounts(depot);
    const users = await redisUsers();
    const b = randomUUID();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ parameters: { read_only: true } }, /parameters/],
      [{ parameters: {} }, /parameters/],
      [{ bind_resource: { app_guid: 'another-app' } }, /bind_resource/],
      [{ bind_resource: undefined, app_guid: 'another-app' }, /app_guid/],
    ];
    for (const [change, field] of cases) {
      for (const query of ['', ASYNC]) {
        const res = await osb(depot)
          .put(bindingPath(redisInstance, b) + query, redisBindBody({ predecessor_binding_id: a, ...change }))
          .expect(400);
        assert.match((res.body as ErrorBody).description, field, JSON.stringify(change));
      }
    }
    // postgresql: parameters the predecessor did not have
    const p = randomUUID();
    await osb(depot).put(bindingPath(pgInstance, p), bindBody()).expect(201);
    const pgCounts = await stateCounts(depot);
    const res = await osb(depot)
      .put(bindingPath(pgInstance, b), bindBody({ predecessor_binding_id: p, parameters: { schema: 'x' } }))
      .expect(400);
    assert.match((res.body as ErrorBody).description, /parameters/);
    assert.deepEqual(await stateCounts(depot), pgCounts);
    assert.equal(await pgRole(pgInstance, b), undefined);

    assert.deepEqual(await stateCounts(depot), {
      ...counts,
      bindings: counts.bindings! + 1,
      operations: counts.operations! + 1,
    });
    assert.equal(await bindingRow(depot, b), undefined);
    assert.deepEqual(await redisUsers(), users, 'no ACL user was created');
    await osb(depot)
      .delete(`${bindingPath(redisInstance, a)}?${redisQuery}`)
      .expect(200);
    await osb(depot)
      .delete(bindingPath(pgInstance, p) + unbindQuery)
      .expect(200);
  });

  it('400 for an unknown predecessor, one of another instance, an unbound one, and the binding itself', async () => {
    const elsewhere = randomUUID();
    await osb(depot).put(bindingPath(otherPgInstance, elsewhere), bindBody()).expect(201);
    const unbound = randomUUID();
    await osb(depot).put(bindingPath(pgInstance, unbound), bindBody()).expect(201);
    await osb(depot)
      .delete(bindingPath(pgInstance, unbound) + unbindQuery)
      .expect(200);
    const counts = await stateCounts(depot);
    const b = randomUUID();
    const cases: Array<[string, string, RegExp]> = [
      ['unknown', randomUUID(), /predecessor_binding_id/],
      ['of another instance', elsewhere, /predecessor_binding_id/],
      ['unbound', unbound, /predecessor_binding_id/],
      ['the new binding itself', b, /predecessor_binding_id/],
    ];
    for (const [what, predecessor, pattern] of cases) {
      for (const query of ['', ASYNC]) {
        const res = await osb(depot)
          .put(bindingPath(pgInstance, b) + query, bindBody({ predecessor_binding_id: predecessor }))
          .expect(400);
        assert.match((res.body as ErrorBody).description, pattern, `${what}${query}`);
        assert.equal(JSON.stringify(res.body).includes('password'), false);
      }
    }
    // a redis binding is no predecessor for a postgresql one (another instance, another service)
    const redisBinding = randomUUID();
    await osb(depot).put(bindingPath(redisInstance, redisBinding), redisBindBody()).expect(201);
    const withRedis = await stateCounts(depot);
    await osb(depot)
      .put(bindingPath(pgInstance, b), bindBody({ predecessor_binding_id: redisBinding }))
      .expect(400);
    assert.deepEqual(await stateCounts(depot), withRedis);
    assert.deepEqual(withRedis, { ...counts, bindings: counts.bindings! + 1, operations: counts.operations! + 1 });
    assert.equal(await bindingRow(depot, b), undefined);
    assert.equal(await pgRole(pgInstance, b), undefined);
    await osb(depot)
      .delete(`${bindingPath(redisInstance, redisBinding)}?${redisQuery}`)
      .expect(200);
    await osb(depot)
      .delete(bindingPath(otherPgInstance, elsewhere) + unbindQuery)
      .expect(200);
  });

  it('idempotency: an identical rotation PUT → 200, same body; another predecessor, or none → 409', async () => {
    const a = randomUUID();
    const c = randomUUID();
    const b = randomUUID();
    await osb(depot).put(bindingPath(pgInstance, a), bindBody()).expect(201);
    await osb(depot).put(bindingPath(pgInstance, c), bindBody()).expect(201);
    const path = bindingPath(pgInstance, b);
    const first = await osb(depot)
      .put(path, bindBody({ predecessor_binding_id: a }))
      .expect(201);
    const { login } = postgresNames(pgInstance, b);
    const verifier = () =>
      adminQuery<{ rolpassword: string }>('select rolpassword from pg_authid where rolname = $1', [login]);
    const verifierBefore = await verifier();
    const counts = await stateCounts(depot);

    for (const query of ['', ASYNC]) {
      const again = await osb(depot)
        .put(path + query, bindBody({ predecessor_binding_id: a }))
        .expect(200);
      assert.deepEqual(again.body, first.body);
    }
    for (const change of [{ predecessor_binding_id: c }, {}]) {
      const res = await osb(depot).put(path, bindBody(change)).expect(409);
      assert.match((res.body as ErrorBody).description, /already exists/);
    }
    assert.deepEqual(await stateCounts(depot), counts);
    assert.deepEqual(await verifier(), verifierBefore, 'the password was not changed');
    assert.equal((await bindingRow(depot, b))?.predecessor_binding_id, a);
    for (const id of [a, b, c])
      await osb(depot)
        .delete(bindingPath(pgInstance, id) + unbindQuery)
        .expect(200);
  });

  it('idempotency: the identical rotation PUT → 200 even once the predecessor is unbound', async () => {
    const a = randomUUID();
    const b = randomUUID();
    await osb(depot).put(bindingPath(pgInstance, a), bindBody()).expect(201);
    const first = await osb(depot)
      .put(bindingPath(pgInstance, b), bindBody({ predecessor_binding_id: a }))
      .expect(201);
    await osb(depot)
      .delete(bindingPath(pgInstance, a) + unbindQuery)
      .expect(200);
    try {
      const again = await osb(depot).put(bindingPath(pgInstance, b), bindBody({ predecessor_binding_id: a }));
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.deepEqual(again.body, first.body);
    } finally {
      await osb(depot)
        .delete(bindingPath(pgInstance, b) + unbindQuery)
        .expect(200);
    }
  });
});

// ---- A catalog of our own: plan rules and credential lifetimes ----

const DEFAULT_RENEW_PLAN_ID = '5b7e9d1f-3a2c-4e6b-8d0f-2a4c6e8b0d14';

/**
 * The built-in catalog with: small not binding_rotatable and without a lifetime; standard with
 * a one-hour lifetime renewed 10 minutes early; `default-renew` with a lifetime only.
 */
async function lifetimeCatalog(): Promise<CatalogDocument> {
  const catalog = defaultCatalogDocument();
  delete planOf(catalog, SERVICE_ID, SMALL_PLAN_ID).binding_rotatable;
  const standard = planOf(catalog, SERVICE_ID, STANDARD_PLAN_ID);
  standard['x-depot'] = {
    connection_limit: 10,
    credential_lifetime_seconds: 3600,
    credential_renew_before_seconds: 600,
  };
  const defaultRenew: CatalogPlanDocument = {
    ...structuredClone(standard),
    id: DEFAULT_RENEW_PLAN_ID,
    name: 'default-renew',
    'x-depot': { connection_limit: 10, credential_lifetime_seconds: 1000 },
  };
  catalog.services.find((s) => s.id === SERVICE_ID)!.plans.push(defaultRenew);
  return catalog;
}

describe('binding rotation and credential lifetimes (custom catalog)', () => {
  let depot: TestDepot;
  let smallInstance: string;
  let standardInstance: string;
  let defaultRenewInstance: string;
  before(async () => {
    depot = await startDepot('rotation-lifetime', { catalog: await lifetimeCatalog() });
    [smallInstance, standardInstance, defaultRenewInstance] = await Promise.all([
      provisionInstance(depot),
      provisionInstance(depot, randomUUID(), { plan_id: STANDARD_PLAN_ID }),
      provisionInstance(depot, randomUUID(), { plan_id: DEFAULT_RENEW_PLAN_ID }),
    ]);
  });
  after(async () => {
    await deprovisionInstance(depot, smallInstance);
    await deprovisionInstance(depot, standardInstance, STANDARD_PLAN_ID);
    await deprovisionInstance(depot, defaultRenewInstance, DEFAULT_RENEW_PLAN_ID);
    await depot.close();
  });

  it('400 for a plan without binding_rotatable, and nothing is created', async () => {
    const a = randomUUID();
    await osb(depot).put(bindingPath(smallInstance, a), bindBody()).expect(201);
    const counts = await stateCounts(depot);
    const b = randomUUID();
    for (const query of ['', ASYNC]) {
      const res = await osb(depot)
        .put(bindingPath(smallInstance, b) + query, bindBody({ predecessor_binding_id: a }))
        .expect(400);
      assert.match((res.body as ErrorBody).description, /small/);
      assert.match((res.body as ErrorBody).description, /rotation/);
    }
    assert.deepEqual(await stateCounts(depot), counts);
    assert.equal(await pgRole(smallInstance, b), undefined);
    // a bind without predecessor_binding_id still works on that plan
    await osb(depot).put(bindingPath(smallInstance, b), bindBody()).expect(201);
  });

  it('expires_at ≈ now + lifetime = VALID UNTIL; renew_before is credential_renew_before_seconds earlier', async () => {
    const a = randomUUID();
    const start = Date.now();
    const res = await osb(depot)
      .put(bindingPath(standardInstance, a), bindBody({ plan_id: STANDARD_PLAN_ID }))
      .expect(201);
    const end = Date.now();
    const { metadata, credentials } = res.body as BindBody<PostgresqlCredentials>;
    assert.ok(metadata?.expires_at && metadata.renew_before, JSON.stringify(metadata));
    assert.match(metadata.expires_at, ISO_UTC);
    assert.match(metadata.renew_before, ISO_UTC);
    const expiresAt = Date.parse(metadata.expires_at);
    assert.ok(expiresAt >= start + 3600_000 - 1000 && expiresAt <= end + 3600_000 + 1000, metadata.expires_at);
    assert.equal(Date.parse(metadata.renew_before), expiresAt - 600_000);
    const role = await pgRole(standardInstance, a);
    assert.ok(role?.rolvaliduntil instanceof Date, `rolvaliduntil is a timestamp: ${String(role?.rolvaliduntil)}`);
    assert.equal(Math.floor(role.rolvaliduntil.getTime() / 1000), Math.floor(expiresAt / 1000));
    assert.ok(await passwordMatchesRole(credentials.username, credentials.password));
    // GET binding returns the same metadata
    const fetched = (await osb(depot).get(bindingPath(standardInstance, a)).expect(200)).body as FetchBindingResponse;
    assert.deepEqual(fetched.metadata, metadata);

    // a rotation gets a lifetime of its own, from its own bind
    const b = randomUUID();
    const rotated = await osb(depot)
      .put(bindingPath(standardInstance, b), bindBody({ plan_id: STANDARD_PLAN_ID, predecessor_binding_id: a }))
      .expect(201);
    const rotatedMetadata = (rotated.body as BindBody<PostgresqlCredentials>).metadata;
    assert.ok(rotatedMetadata?.expires_at && rotatedMetadata.renew_before);
    assert.ok(Date.parse(rotatedMetadata.expires_at) >= expiresAt);
    assert.equal(Date.parse(rotatedMetadata.renew_before), Date.parse(rotatedMetadata.expires_at) - 600_000);
    const rotatedRole = await pgRole(standardInstance, b);
    assert.ok(rotatedRole?.rolvaliduntil instanceof Date);
    assert.equal(
      Math.floor(rotatedRole.rolvaliduntil.getTime() / 1000),
      Math.floor(Date.parse(rotatedMetadata.expires_at) / 1000),
    );
  });

  it('without credential_renew_before_seconds: renew_before = expires_at − lifetime/5', async () => {
    const a = randomUUID();
    const start = Date.now();
    const res = await osb(depot)
      .put(bindingPath(defaultRenewInstance, a) + ASYNC, bindBody({ plan_id: DEFAULT_RENEW_PLAN_ID }))
      .expect(202);
    assert.equal(
      (await waitForOperation(depot, bindingPath(defaultRenewInstance, a), operationOf(res))).state,
      'succeeded',
    );
    const end = Date.now();
    const { metadata } = (await osb(depot).get(bindingPath(defaultRenewInstance, a)).expect(200))
      .body as FetchBindingResponse;
    assert.ok(metadata?.expires_at && metadata.renew_before, JSON.stringify(metadata));
    assert.match(metadata.expires_at, ISO_UTC);
    assert.match(metadata.renew_before, ISO_UTC);
    const expiresAt = Date.parse(metadata.expires_at);
    assert.ok(expiresAt >= start + 1000_000 - 1000 && expiresAt <= end + 1000_000 + 1000, metadata.expires_at);
    assert.equal(Date.parse(metadata.renew_before), expiresAt - 200_000);
    const role = await pgRole(defaultRenewInstance, a);
    assert.ok(role?.rolvaliduntil instanceof Date);
    assert.equal(Math.floor(role.rolvaliduntil.getTime() / 1000), Math.floor(expiresAt / 1000));
  });

  it('a plan without a lifetime: no metadata key, and the role is VALID UNTIL infinity', async () => {
    const a = randomUUID();
    const res = await osb(depot).put(bindingPath(smallInstance, a), bindBody()).expect(201);
    assert.deepEqual(Object.keys(res.body as object), ['credentials']);
    const fetched = (await osb(depot).get(bindingPath(smallInstance, a)).expect(200)).body as FetchBindingResponse;
    assert.equal('metadata' in fetched, false);
    const role = await pgRole(smallInstance, a);
    assert.equal(role?.valid_until, 'infinity');
    assert.equal(role.rolvaliduntil, Infinity, 'node-postgres parses infinity as Infinity');
  });

  it("400 mentioning 'expired' for an expired predecessor, and nothing is created", async () => {
    const a = randomUUID();
    await osb(depot)
      .put(bindingPath(standardInstance, a), bindBody({ plan_id: STANDARD_PLAN_ID }))
      .expect(201);
    // The stored response is sealed (encryption at rest): open it, age it, seal it again.
    const where = place('service_bindings', 'response', a);
    const { rows } = await depot.depot.pool.query<{ response: string }>(
      'select response from service_bindings where id = $1',
      [a],
    );
    const stored = depot.depot.cipher.open<{ metadata?: Record<string, unknown> }>(rows[0]!.response, where);
    stored.metadata = { ...stored.metadata, expires_at: '2000-01-01T00:00:00.000Z' };
    await depot.depot.pool.query('update service_bindings set response = $2 where id = $1', [
      a,
      depot.depot.cipher.seal(stored, where),
    ]);
    const counts = await stateCounts(depot);
    const b = randomUUID();
    for (const query of ['', ASYNC]) {
      const res = await osb(depot)
        .put(
          bindingPath(standardInstance, b) + query,
          bindBody({ plan_id: STANDARD_PLAN_ID, predecessor_binding_id: a }),
        )
        .expect(400);
      assert.match((res.body as ErrorBody).description, /expired/);
    }
    assert.deepEqual(await stateCounts(depot), counts);
    assert.equal(await pgRole(standardInstance, b), undefined);
    // a new binding without predecessor is the way out
    await osb(depot)
      .put(bindingPath(standardInstance, b), bindBody({ plan_id: STANDARD_PLAN_ID }))
      .expect(201);
  });
});

describe('credential lifetime: catalogs Depot refuses at start', () => {
  const refused = async (name: string, catalog: CatalogDocument, pattern: RegExp) => {
    try {
      await assert.rejects(startDepot(name, { catalog }), (error: Error) => {
        assert.match(error.message, pattern);
        return true;
      });
    } finally {
      await dropDatabase(`depot_test_${name.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`);
    }
  };

  it('a redis plan with credential_lifetime_seconds (Redis ACL users cannot expire)', async () => {
    const catalog = defaultCatalogDocument();
    planOf(catalog, REDIS_SERVICE_ID, REDIS_PLAN_ID)['x-depot'] = { credential_lifetime_seconds: 3600 };
    await refused('rotation-refused-redis', catalog, /\(shared\).*credential_lifetime_seconds/);
  });

  it('credential_renew_before_seconds ≥ credential_lifetime_seconds', async () => {
    for (const renewBefore of [3600, 7200]) {
      const catalog = defaultCatalogDocument();
      planOf(catalog, SERVICE_ID, STANDARD_PLAN_ID)['x-depot'] = {
        connection_limit: 50,
        credential_lifetime_seconds: 3600,
        credential_renew_before_seconds: renewBefore,
      };
      await refused(
        'rotation-refused-renew',
        catalog,
        /\(standard\).*credential_renew_before_seconds must be less than/,
      );
    }
  });
});
