/**
 * Drift repair: what a tenant's server lost (a Redis restart without an ACL file, a role dropped by
 * hand) is put back by the workers from Depot's record, so the credentials the platform already
 * holds work again; a server that does not answer is counted and tried again, never failed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2';
import pg from 'pg';
import request from 'supertest';
import {
  adminQuery,
  ASYNC,
  bindBody,
  bindingPath,
  bindingRedis,
  instancePath,
  operationOf,
  osb,
  provisionInstance,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  startDepot,
  startRedisServer,
  waitForOperation,
  type TestDepot,
  type TestRedisServer,
} from './helpers.js';
import { closeMysql, mysqlAdmin, mysqlBody, mysqlLogin, MYSQL_URL } from './mysql-helpers.js';
import {
  AmqpConnections,
  managementRequest,
  RABBITMQ_PLAN_ID,
  RABBITMQ_SERVICE_ID,
  RABBITMQ_URL,
  roundTrip,
} from './rabbitmq-helpers.js';

const PERIOD_SECONDS = 2;

/** `'name'@'%'`, as Depot creates a binding's MySQL user. */
const mysqlEscapeAccount = (user: string) => `'${user.replace(/'/g, "''")}'@'%'`;

/** Polls `works` until it resolves true; the time it took, in ms. */
async function until(works: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const start = Date.now();
  while (!(await works().catch(() => false))) {
    if (Date.now() - start > timeoutMs) throw new Error(`not working again after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Date.now() - start;
}

async function metric(target: TestDepot, pattern: RegExp): Promise<number> {
  const text = (await request(target.metricsUrl).get('/metrics').expect(200)).text;
  return text
    .split('\n')
    .filter((line) => pattern.test(line))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('drift repair', () => {
  let tenants: TestRedisServer;
  let depot: TestDepot;
  before(async () => {
    tenants = await startRedisServer(true);
    depot = await startDepot('drift-repair', {
      env: {
        REDIS_SERVICE_URL: tenants.url,
        MYSQL_SERVICE_URL: MYSQL_URL,
        RABBITMQ_SERVICE_URL: RABBITMQ_URL,
        DRIFT_CHECK_SECONDS: String(PERIOD_SECONDS),
      },
    });
  });
  after(async () => {
    await amqp.closeAll();
    await depot.close();
    await closeMysql();
    tenants.stop();
  });
  const amqp = new AmqpConnections();

  /** Provisions an instance of `body`'s plan and binds it; the binding's credentials. */
  async function boundCredentials<T>(body: { service_id: string; plan_id: string }) {
    const instanceId = randomUUID();
    const created = await osb(depot)
      .put(`${instancePath(instanceId)}${ASYNC}`, { ...body, organization_guid: 'o', space_guid: 's' })
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operationOf(created))).state, 'succeeded');
    const bindingId = randomUUID();
    const bound = await osb(depot).put(bindingPath(instanceId, bindingId), body).expect(201);
    return { instanceId, bindingId, ...(bound.body as { credentials: T }).credentials };
  }

  /** Resolves once a check of `offering` finds nothing to put back (the repaired objects are as recorded). */
  async function settles(offering: string) {
    const ok = () => metric(depot, new RegExp(`^depot_drift_checks_total\\{.*offering="${offering}".*outcome="ok"`));
    const before = await ok();
    await until(async () => (await ok()) > before);
  }

  const redisBinding = () =>
    boundCredentials<{ uri: string; key_prefix: string }>({ service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID });

  const redisWorks = async (uri: string, key: string) => {
    const client = bindingRedis(uri);
    try {
      return (await client.set(key, 'v')) === 'OK' && (await client.get(key)) === 'v';
    } finally {
      client.disconnect();
    }
  };

  it("a restart of the tenants' Redis: the credentials the platform holds work again within a period", async (t) => {
    const { uri, key_prefix, bindingId } = await redisBinding();
    assert.ok(await redisWorks(uri, `${key_prefix}before`));
    const repairedBefore = await metric(depot, /^depot_drift_repaired_total\{.*offering="redis".*kind="acl_user"/);
    await tenants.restart();
    const restarted = Date.now();
    assert.equal(await redisWorks(uri, `${key_prefix}lost`).catch(() => false), false, 'the restart lost the user');
    await until(() => redisWorks(uri, `${key_prefix}after`));
    const ms = Date.now() - restarted;
    t.diagnostic(
      `the bound credentials worked again ${ms} ms after the restart (DRIFT_CHECK_SECONDS=${PERIOD_SECONDS})`,
    );
    assert.ok(
      (await metric(depot, /^depot_drift_repaired_total\{.*offering="redis".*kind="acl_user"/)) > repairedBefore,
    );
    const line = depot.logs.find((l) => l.includes('drift repaired') && l.includes(bindingId));
    assert.ok(line, 'the repair is logged with the binding id');
    assert.ok(!line.includes(uri.split('@')[0]!.split(':').pop()!), 'the password is not logged');
    // What the user may do is what bind gave it: nothing outside its prefix.
    const client = bindingRedis(uri);
    try {
      await assert.rejects(client.set('elsewhere', 'x'), /NOPERM/);
    } finally {
      client.disconnect();
    }
  });

  it('a PostgreSQL login role dropped by hand: the bound login works again, and sees its tables', async () => {
    const instanceId = await provisionInstance(depot);
    const bound = await osb(depot).put(bindingPath(instanceId, randomUUID()), bindBody()).expect(201);
    const { uri, username } = (bound.body as { credentials: { uri: string; username: string } }).credentials;
    const query = async (sql: string) => {
      const client = new pg.Client({ connectionString: uri });
      await client.connect();
      try {
        return (await client.query(sql)).rows;
      } finally {
        await client.end();
      }
    };
    await query('create table kept (n int); insert into kept values (42)');
    await adminQuery(`drop role ${pg.escapeIdentifier(username)}`);
    await assert.rejects(query('select 1'), /password authentication failed|does not exist/);
    await until(async () => (await query('select n from kept'))[0]?.n === 42);
  });

  it('a MySQL user dropped by hand, then its grant revoked: the bound login and its tables come back', async () => {
    const { uri, username, database, bindingId } = await boundCredentials<{
      uri: string;
      username: string;
      database: string;
    }>(mysqlBody());
    const readKept = async () => {
      const session = await mysqlLogin(uri);
      try {
        const [rows] = await session.query<Array<{ n: number } & RowDataPacket>>('select n from kept');
        return rows[0]?.n === 42;
      } finally {
        await session.end();
      }
    };
    const session = await mysqlLogin(uri);
    await session.query('create table kept (n int)');
    await session.query('insert into kept values (42)');
    await session.end();
    const repaired = () => metric(depot, /^depot_drift_repaired_total\{.*offering="mysql".*kind="user"/);
    const before = await repaired();
    await mysqlAdmin(`drop user ${mysqlEscapeAccount(username)}`);
    await assert.rejects(mysqlLogin(uri), /Access denied/);
    await until(readKept);
    assert.ok((await repaired()) > before, 'counted as a repaired mysql user');
    assert.ok(depot.logs.some((l) => l.includes('drift repaired') && l.includes(bindingId) && l.includes('"user"')));
    // A grant revoked by hand comes back too, and nothing more than bind gave.
    await mysqlAdmin(
      `revoke all privileges on \`${database.replace(/_/g, '\\_')}\`.* from ${mysqlEscapeAccount(username)}`,
    );
    assert.equal(await readKept().catch(() => false), false, 'the revoke took the table away');
    await until(readKept);
    const grants = await mysqlAdmin<Record<string, string>>(`show grants for ${mysqlEscapeAccount(username)}`);
    const text = grants.map((row) => Object.values(row)[0]).join('\n');
    assert.doesNotMatch(text, /ON \*\.\* TO .*WITH GRANT OPTION|GRANT ALL PRIVILEGES ON \*\.\*/);
    await settles('mysql');
  });

  it('a RabbitMQ vhost deleted by hand: the bound user can publish and consume again, on that vhost only', async () => {
    const { uri, username, vhost } = await boundCredentials<{ uri: string; username: string; vhost: string }>({
      service_id: RABBITMQ_SERVICE_ID,
      plan_id: RABBITMQ_PLAN_ID,
    });
    const works = async () => {
      const [publisher, consumer] = [await amqp.connect(uri), await amqp.connect(uri)];
      try {
        return (await roundTrip(publisher, consumer, 'kept', 'hello')) === 'hello';
      } finally {
        await publisher.close().catch(() => undefined);
        await consumer.close().catch(() => undefined);
      }
    };
    assert.equal(await works(), true);
    const deleted = await managementRequest(RABBITMQ_URL, 'DELETE', `vhosts/${encodeURIComponent(vhost)}`);
    assert.equal(deleted.status, 204);
    assert.equal(await works().catch(() => false), false, 'the vhost is gone');
    await until(works);
    const permissions = await managementRequest(
      RABBITMQ_URL,
      'GET',
      `users/${encodeURIComponent(username)}/permissions`,
    );
    assert.deepEqual(
      (permissions.body as Array<{ vhost: string }>).map((p) => p.vhost),
      [vhost],
      'permissions on its own vhost only',
    );
    await settles('rabbitmq');
  });

  it('a server that does not answer: the check is counted as failed and tried again; nothing is failed', async () => {
    const { uri, key_prefix, bindingId } = await redisBinding();
    const failed = () => metric(depot, /^depot_drift_checks_total\{.*offering="redis".*outcome="failed"/);
    const before = await failed();
    tenants.stop();
    await until(async () => (await failed()) > before);
    await tenants.restart();
    await until(() => redisWorks(uri, `${key_prefix}back`));
    const instanceId = (
      await depot.depot.pool.query<{ instance_id: string }>('select instance_id from service_bindings where id = $1', [
        bindingId,
      ])
    ).rows[0]!.instance_id;
    const last = await osb(depot)
      .get(`${instancePath(instanceId)}/last_operation`)
      .expect(200);
    assert.equal((last.body as { state: string }).state, 'succeeded', 'the instance was not marked failed');
    await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
  });
});
