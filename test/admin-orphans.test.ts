/**
 * `depot orphans` and `depot drift` against the real servers: objects with Depot's names that no
 * live instance or binding owns are listed and, with --delete --yes, removed; live ones and names
 * that are not Depot's are never touched. `depot drift` puts back what was dropped by hand.
 * The servers are shared with other tests: assertions are about this file's objects (inclusion).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';
import { mysqlNames } from '../broker/offerings/mysql/mysql-offering.js';
import { rabbitmqNames, rabbitmqUsername } from '../broker/offerings/rabbitmq/rabbitmq-offering.js';
import { redisNames, redisUsername } from '../broker/offerings/redis/redis-offering.js';
import {
  adminQuery,
  ADMIN_URL,
  ASYNC,
  bindingPath,
  bindingRedis,
  deleteQuery,
  ENCRYPTION_KEYS,
  instancePath,
  operationOf,
  osb,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  REDIS_URL,
  SERVICE_ID,
  SMALL_PLAN_ID,
  startDepot,
  startRedisServer,
  waitForOperation,
  type TestDepot,
  type TestRedisServer,
} from './helpers.js';
import { runDepotCli } from './depot-cli.js';
import { closeMysql, databaseExists, mysqlAdmin, mysqlBody, mysqlLogin, MYSQL_URL } from './mysql-helpers.js';
import {
  adminGet,
  managementRequest,
  RABBITMQ_PLAN_ID,
  RABBITMQ_SERVICE_ID,
  RABBITMQ_URL,
} from './rabbitmq-helpers.js';

interface ListedOrphan {
  offering: string;
  kind: string;
  name: string;
  instanceId?: string;
  bindingId?: string;
  removed?: boolean;
}

let tenants: TestRedisServer;
let depot: TestDepot;
let env: Record<string, string>;
const cli = (...args: string[]) => runDepotCli(env, args);

async function bound(body: { service_id: string; plan_id: string }) {
  const instanceId = randomUUID();
  const created = await osb(depot)
    .put(`${instancePath(instanceId)}${ASYNC}`, { ...body, organization_guid: 'o', space_guid: 's' })
    .expect(202);
  assert.equal((await waitForOperation(depot, instancePath(instanceId), operationOf(created))).state, 'succeeded');
  const bindingId = randomUUID();
  const res = await osb(depot).put(bindingPath(instanceId, bindingId), body).expect(201);
  return { instanceId, bindingId, credentials: (res.body as { credentials: Record<string, string> }).credentials };
}

async function pgLoginWorks(uri: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: uri });
  try {
    await client.connect();
    return (await client.query('select 1 as one')).rows[0]?.one === 1;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const exists = {
  pgDatabase: async (name: string) => (await adminQuery('select 1 from pg_database where datname = $1', [name])).length,
  pgRole: async (name: string) => (await adminQuery('select 1 from pg_roles where rolname = $1', [name])).length,
  mysqlUser: async (user: string) => (await mysqlAdmin('select 1 from mysql.user where user = ?', [user])).length,
  vhost: async (name: string) => Number((await adminGet(`vhosts/${encodeURIComponent(name)}`)) !== undefined),
  rabbitUser: async (name: string) => Number((await adminGet(`users/${encodeURIComponent(name)}`)) !== undefined),
};

describe('depot orphans and depot drift', () => {
  const live = {} as Record<'postgresql' | 'redis' | 'mysql' | 'rabbitmq', Awaited<ReturnType<typeof bound>>>;
  const made = { instance: randomUUID(), binding: randomUUID() };
  const pgMade = postgresNames(made.instance, made.binding);
  const mysqlMade = mysqlNames(made.instance, made.binding);
  const redisUser = redisUsername(made.instance, made.binding);
  const redisKey = `${redisNames(made.instance).keyPrefix}k`;
  const rabbitVhost = rabbitmqNames(made.instance).vhost;
  const rabbitUser = rabbitmqUsername(made.instance, made.binding);
  /** Names that look like Depot's but are not of its shapes. */
  const foreign = { pgRole: `depot_keep_${randomUUID().slice(0, 8)}`, vhost: `depot-keep-${randomUUID().slice(0, 8)}` };
  let deprovisioned: string;

  before(async () => {
    tenants = await startRedisServer(true);
    depot = await startDepot('admin-orphans', {
      env: { REDIS_SERVICE_URL: tenants.url, MYSQL_SERVICE_URL: MYSQL_URL, RABBITMQ_SERVICE_URL: RABBITMQ_URL },
    });
    env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      DATABASE_URL: depot.depot.config.databaseUrl,
      ENCRYPTION_KEYS,
      REDIS_URL,
      QUEUE_PREFIX: depot.depot.config.queuePrefix,
      POSTGRES_SERVICE_URL: ADMIN_URL,
      REDIS_SERVICE_URL: tenants.url,
      MYSQL_SERVICE_URL: MYSQL_URL,
      RABBITMQ_SERVICE_URL: RABBITMQ_URL,
      LOG_LEVEL: 'info',
    };
    live.postgresql = await bound({ service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID });
    live.redis = await bound({ service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID });
    live.mysql = await bound(mysqlBody());
    live.rabbitmq = await bound({ service_id: RABBITMQ_SERVICE_ID, plan_id: RABBITMQ_PLAN_ID });
    const client = bindingRedis(live.redis.credentials.uri!);
    await client.set(`${live.redis.credentials.key_prefix}kept`, 'v');
    client.disconnect();

    // Left by hand, as a failed deprovision or a restored state database leaves them.
    await adminQuery(`create role "${pgMade.owner}" nologin`);
    await adminQuery(`create database "${pgMade.database}" owner "${pgMade.owner}"`);
    await adminQuery(`create role "${pgMade.login}" login in role "${pgMade.owner}"`);
    await adminQuery(`create role "${foreign.pgRole}" nologin`);
    const admin = bindingRedis(tenants.url);
    await admin.call('ACL', 'SETUSER', redisUser, 'on', '>orphan-password', `~${redisNames(made.instance).keyPrefix}*`);
    await admin.set(redisKey, 'left');
    admin.disconnect();
    await mysqlAdmin(`create database ${mysqlMade.database}`);
    await mysqlAdmin(`create user '${mysqlMade.username}'@'%' identified by 'orphan-password'`);
    for (const vhost of [rabbitVhost, foreign.vhost]) {
      assert.ok([201, 204].includes((await managementRequest(RABBITMQ_URL, 'PUT', `vhosts/${vhost}`, {})).status));
    }
    const user = { password: 'orphan-password', tags: '' };
    assert.ok([201, 204].includes((await managementRequest(RABBITMQ_URL, 'PUT', `users/${rabbitUser}`, user)).status));

    // A deprovisioned instance whose database came back (a server restored from a backup).
    deprovisioned = (await bound({ service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID })).instanceId;
    const gone = await osb(depot)
      .delete(`${instancePath(deprovisioned)}${ASYNC}&${deleteQuery()}`)
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(deprovisioned), operationOf(gone))).state, 'succeeded');
    await adminQuery(`create database "${postgresNames(deprovisioned).database}"`);
  });

  after(async () => {
    await depot?.close();
    await adminQuery(`drop role if exists "${foreign.pgRole}"`).catch(() => undefined);
    await managementRequest(RABBITMQ_URL, 'DELETE', `vhosts/${foreign.vhost}`).catch(() => undefined);
    await closeMysql();
    tenants?.stop();
  });

  /** The names this file left by hand; `ours` keeps the rows about them, by name. */
  const mine = new Set<string>();
  const ours = (rows: ListedOrphan[]) =>
    rows.filter((r) => mine.has(r.name)).sort((a, b) => a.name.localeCompare(b.name));

  it('lists each orphan by offering and kind, the deleted row it points to; nothing live or foreign', async () => {
    const expected: ListedOrphan[] = [
      { offering: 'postgresql', kind: 'login_role', name: pgMade.login! },
      { offering: 'postgresql', kind: 'database', name: pgMade.database },
      { offering: 'postgresql', kind: 'owner_role', name: pgMade.owner },
      {
        offering: 'postgresql',
        kind: 'database',
        name: postgresNames(deprovisioned).database,
        instanceId: deprovisioned,
      },
      { offering: 'redis', kind: 'acl_user', name: redisUser },
      { offering: 'redis', kind: 'keys', name: `${redisNames(made.instance).keyPrefix}*` },
      { offering: 'mysql', kind: 'user', name: `'${mysqlMade.username}'@'%'` },
      { offering: 'mysql', kind: 'database', name: mysqlMade.database },
      { offering: 'rabbitmq', kind: 'user', name: rabbitUser },
      { offering: 'rabbitmq', kind: 'vhost', name: rabbitVhost },
    ];
    for (const e of expected) mine.add(e.name);
    const run = await cli('orphans', '--json');
    assert.equal(run.code, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as ListedOrphan[];
    const pick = ({ offering, kind, name, instanceId }: ListedOrphan) => ({
      offering,
      kind,
      name,
      ...(instanceId ? { instanceId } : {}),
    });
    assert.deepEqual(
      ours(rows).map(pick),
      [...expected].sort((a, b) => a.name.localeCompare(b.name)),
    );
    const names = new Set(rows.map((r) => r.name));
    for (const { instanceId, bindingId } of Object.values(live)) {
      for (const name of [postgresNames(instanceId, bindingId).database, postgresNames(instanceId, bindingId).login!]) {
        assert.ok(!names.has(name), `live ${name} listed`);
      }
      assert.ok(!names.has(redisUsername(instanceId, bindingId)) && !names.has(rabbitmqNames(instanceId).vhost));
      assert.ok(!names.has(mysqlNames(instanceId).database));
    }
    assert.ok(!names.has(foreign.pgRole) && !names.has(foreign.vhost));

    const table = await cli('orphans', '--offering', 'postgresql');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^OFFERING\s+KIND\s+NAME\s+RECORD/);
    assert.match(table.stdout, new RegExp(`postgresql\\s+database\\s+${pgMade.database}\\s+no row`));
    assert.match(table.stdout, new RegExp(`instance ${deprovisioned} \\(deleted\\)`));
    assert.doesNotMatch(table.stdout, /^redis|^mysql|^rabbitmq/m);
  });

  it('refuses --delete without --yes (exit 1, nothing removed), --yes alone or an unknown offering (2)', async () => {
    const refused = await cli('orphans', '--delete');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /add --yes/);
    assert.equal(await exists.pgDatabase(pgMade.database), 1);
    assert.equal(await exists.vhost(rabbitVhost), 1);
    assert.equal((await cli('orphans', '--yes')).code, 2);
    const unknown = await cli('orphans', '--offering', 'nope');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /postgresql, redis, mysql, rabbitmq/);
  });

  it('--delete --yes removes every orphan, one log line each; live objects and foreign names stay', async () => {
    const run = await cli('orphans', '--delete', '--yes', '--json');
    assert.equal(run.code, 0, run.stderr);
    const rows = ours(JSON.parse(run.stdout) as ListedOrphan[]);
    assert.equal(rows.length, 10); // the postgresql and mysql databases share a name
    assert.ok(rows.every((r) => r.removed === true));
    const logged = run.stderr.split('\n').filter((line) => line.includes('"orphan removed"'));
    for (const name of mine) {
      const lines = logged.filter((line) => line.includes(`"name":${JSON.stringify(name)}`));
      assert.equal(lines.length, rows.filter((r) => r.name === name).length, name);
    }

    assert.equal(await exists.pgDatabase(pgMade.database), 0);
    assert.equal((await exists.pgRole(pgMade.owner)) + (await exists.pgRole(pgMade.login!)), 0);
    assert.equal(await exists.pgDatabase(postgresNames(deprovisioned).database), 0);
    const admin = bindingRedis(tenants.url);
    assert.deepEqual([await admin.call('ACL', 'GETUSER', redisUser), await admin.exists(redisKey)], [null, 0]);
    assert.equal(await admin.get(`${live.redis.credentials.key_prefix}kept`), 'v');
    admin.disconnect();
    assert.equal(await databaseExists(mysqlMade.database), false);
    assert.equal(await exists.mysqlUser(mysqlMade.username!), 0);
    assert.equal((await exists.vhost(rabbitVhost)) + (await exists.rabbitUser(rabbitUser)), 0);

    assert.ok(await pgLoginWorks(live.postgresql.credentials.uri!));
    await (await mysqlLogin(live.mysql.credentials.uri!)).query('select 1');
    assert.equal(await exists.vhost(rabbitmqNames(live.rabbitmq.instanceId).vhost), 1);
    assert.equal(await exists.rabbitUser(rabbitmqUsername(live.rabbitmq.instanceId, live.rabbitmq.bindingId)), 1);
    assert.equal(await exists.pgRole(foreign.pgRole), 1);
    assert.equal(await exists.vhost(foreign.vhost), 1);

    const again = await cli('orphans', '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(ours(JSON.parse(again.stdout) as ListedOrphan[]), []);
  });

  it('depot drift puts back a login role and an ACL user dropped by hand, then finds nothing', async () => {
    const { instanceId, bindingId, credentials } = live.postgresql;
    await adminQuery(`drop role "${postgresNames(instanceId, bindingId).login}"`);
    assert.equal(await pgLoginWorks(credentials.uri!), false);
    const admin = bindingRedis(tenants.url);
    await admin.call('ACL', 'DELUSER', redisUsername(live.redis.instanceId, live.redis.bindingId));
    admin.disconnect();

    const run = await cli('drift', '--json');
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { checked: number; repaired: unknown[]; failed: unknown[] };
    assert.equal(report.checked, 4);
    assert.deepEqual(
      report.repaired.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      [
        { instanceId, offering: 'postgresql', kind: 'login_role', bindingId },
        { instanceId: live.redis.instanceId, offering: 'redis', kind: 'acl_user', bindingId: live.redis.bindingId },
      ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    );
    assert.deepEqual(report.failed, []);
    assert.ok(await pgLoginWorks(credentials.uri!));
    const client = bindingRedis(live.redis.credentials.uri!);
    assert.equal(await client.get(`${live.redis.credentials.key_prefix}kept`), 'v');
    client.disconnect();

    const quiet = await cli('drift');
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /Nothing was missing or altered/);
    assert.match(quiet.stderr, /Checked 4 instance\(s\)/);
  });
});
