/**
 * A user's whole lifecycle with real logins: provision, bind twice, use the database with
 * each binding's credentials, change the plan, unbind, deprovision; and what Depot leaves on
 * the PostgreSQL server (databases, roles, sessions, extensions) at each step.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { withDatabase } from '../broker/config.js';
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
  passwordMatchesRole,
  provisionBody,
  provisionInstance,
  startDepot,
  waitForOperation,
  type LastOperationBody,
  type TestDepot,
} from './helpers.js';

type Credentials = PostgresqlCredentials;

/** A session opened with a binding's credentials.uri, as an application would. */
async function connect(uri: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: uri });
  await client.connect();
  return client;
}

async function connectionLimit(database: string): Promise<number | undefined> {
  const rows = await adminQuery<{ datconnlimit: number }>('select datconnlimit from pg_database where datname = $1', [
    database,
  ]);
  return rows[0]?.datconnlimit;
}

/** Every role whose name starts with the instance's database name (owner and logins). */
async function instanceRoles(database: string): Promise<Array<{ rolname: string; rolcanlogin: boolean }>> {
  return adminQuery('select rolname, rolcanlogin from pg_roles where starts_with(rolname, $1) order by rolname', [
    database,
  ]);
}

describe('lifecycle: provision, bind, use, update, unbind, deprovision', () => {
  let depot: TestDepot;
  const instanceId = randomUUID();
  const binding1 = randomUUID();
  const binding2 = randomUUID();
  const names = postgresNames(instanceId);
  const credentials: Credentials[] = [];
  /** Binding 1's session, kept open across the unbind. */
  let session1: pg.Client | undefined;
  const session1Errors: Error[] = [];
  let session1Pid = 0;

  before(async () => {
    depot = await startDepot('lifecycle');
  });
  after(async () => {
    await session1?.end().catch(() => undefined);
    await depot.close();
  });

  it('provisions a small instance: a database with 10 connections, owned by a NOLOGIN role', async () => {
    const res = await osb(depot)
      .put(instancePath(instanceId) + ASYNC, provisionBody())
      .expect(202);
    const { operation } = res.body as { operation: string };
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operation)).state, 'succeeded');

    // spec: GET instance MUST be available right after last_operation says succeeded
    const fetched = await osb(depot).get(instancePath(instanceId)).expect(200);
    assert.equal((fetched.body as { service_id: string }).service_id, SERVICE_ID);
    assert.equal((fetched.body as { plan_id: string }).plan_id, SMALL_PLAN_ID);

    const owner = await adminQuery<{ owner: string }>(
      'select pg_get_userbyid(datdba) as owner from pg_database where datname = $1',
      [names.database],
    );
    assert.deepEqual(owner, [{ owner: names.owner }]);
    assert.equal(await connectionLimit(names.database), 10);
    assert.deepEqual(await instanceRoles(names.database), [{ rolname: names.owner, rolcanlogin: false }]);
  });

  it('binds twice: two different login roles for the same database', async () => {
    for (const bindingId of [binding1, binding2]) {
      const res = await osb(depot).put(bindingPath(instanceId, bindingId), bindBody()).expect(201);
      const creds = (res.body as { credentials: Credentials }).credentials;
      assert.equal(creds.database, names.database);
      assert.equal(creds.username, postgresNames(instanceId, bindingId).login);
      credentials.push(creds);
    }
    assert.notEqual(credentials[0]!.username, credentials[1]!.username);
    assert.notEqual(credentials[0]!.password, credentials[1]!.password);
    // The password is the role's real one. (Checked against the stored SCRAM verifier: this
    // machine's server trusts local TCP logins, so a login alone would not prove it.)
    for (const creds of credentials) {
      assert.equal(await passwordMatchesRole(creds.username, creds.password), true);
      assert.equal(await passwordMatchesRole(creds.username, `${creds.password}x`), false);
      assert.equal(creds.uri, `postgresql://${creds.username}:${creds.password}@127.0.0.1:5432/${creds.database}`);
    }
    // one NOLOGIN owner and one LOGIN role per binding
    const roles = await instanceRoles(names.database);
    assert.deepEqual(
      roles
        .filter((r) => r.rolcanlogin)
        .map((r) => r.rolname)
        .sort(),
      credentials.map((c) => c.username).sort(),
    );
    assert.deepEqual(
      roles.filter((r) => !r.rolcanlogin),
      [{ rolname: names.owner, rolcanlogin: false }],
    );
  });

  it("binding 1 creates a table and a row; binding 2 reads it; both act as the instance's owner role", async () => {
    session1 = await connect(credentials[0]!.uri);
    session1.on('error', (error: Error) => session1Errors.push(error));
    const who1 = await session1.query<{ current_user: string; session_user: string; pid: number }>(
      'select current_user, session_user, pg_backend_pid() as pid',
    );
    const { current_user: currentUser, session_user: sessionUser, pid } = who1.rows[0]!;
    assert.equal(sessionUser, credentials[0]!.username); // logged in as the binding's role…
    assert.equal(currentUser, names.owner); // …acting as the owner role (ALTER ROLE … SET role)
    session1Pid = pid;
    await session1.query('create table notes (id integer primary key, body text not null)');
    await session1.query("insert into notes values (1, 'written by binding 1')");

    const session2 = await connect(credentials[1]!.uri);
    try {
      const who2 = await session2.query<{ current_user: string }>('select current_user');
      assert.equal(who2.rows[0]!.current_user, names.owner);
      const notes = await session2.query<{ id: number; body: string }>('select id, body from notes');
      assert.deepEqual(notes.rows, [{ id: 1, body: 'written by binding 1' }]);
      await session2.query("insert into notes values (2, 'written by binding 2')");
      // the table belongs to the instance, not to binding 1
      const owner = await session2.query<{ tableowner: string }>(
        "select tableowner from pg_tables where tablename = 'notes'",
      );
      assert.deepEqual(owner.rows, [{ tableowner: names.owner }]);
    } finally {
      await session2.end();
    }
  });

  it('updates the plan small → standard: 202, then 50 connections and GET shows the standard plan', async () => {
    const res = await osb(depot)
      .patch(instancePath(instanceId) + ASYNC, { service_id: SERVICE_ID, plan_id: STANDARD_PLAN_ID })
      .expect(202);
    const { operation } = res.body as { operation: string };
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operation)).state, 'succeeded');
    assert.equal(await connectionLimit(names.database), 50);
    const fetched = await osb(depot).get(instancePath(instanceId)).expect(200);
    assert.equal((fetched.body as { plan_id: string }).plan_id, STANDARD_PLAN_ID);
    // the data is still there, and binding 1's session still works
    const notes = await session1!.query<{ n: number }>('select count(*)::int as n from notes');
    assert.equal(notes.rows[0]!.n, 2);
  });

  it('unbinds binding 1: its login fails, its open session is ended, binding 2 still works', async () => {
    const before = await adminQuery('select 1 from pg_stat_activity where pid = $1', [session1Pid]);
    assert.equal(before.length, 1, 'binding 1 has an open session before the unbind');

    const res = await osb(depot)
      .delete(`${bindingPath(instanceId, binding1)}?${deleteQuery(STANDARD_PLAN_ID)}`)
      .expect(200);
    assert.deepEqual(res.body, {});

    // a new login with binding 1's credentials fails: the role is gone
    await assert.rejects(connect(credentials[0]!.uri), (error: Error & { code?: string }) => {
      assert.ok(['28000', '28P01'].includes(error.code ?? ''), `${error.code}: ${error.message}`);
      return true;
    });
    assert.deepEqual(await adminQuery('select 1 from pg_roles where rolname = $1', [credentials[0]!.username]), []);

    // the session that was open has been terminated (the backend may take a moment to exit)
    const deadline = Date.now() + 5000;
    while ((await adminQuery('select 1 from pg_stat_activity where pid = $1', [session1Pid])).length > 0) {
      assert.ok(Date.now() < deadline, 'binding 1 session still alive 5 s after the unbind');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await assert.rejects(session1!.query('select 1'));
    // ended by the server ("terminating connection due to administrator command"), not by the client
    assert.ok(
      session1Errors.some((error) => (error as Error & { code?: string }).code === '57P01'),
      `session errors: ${session1Errors.map((e) => e.message).join('; ')}`,
    );

    // binding 2 is unaffected
    const session2 = await connect(credentials[1]!.uri);
    try {
      const notes = await session2.query<{ n: number }>('select count(*)::int as n from notes');
      assert.equal(notes.rows[0]!.n, 2);
    } finally {
      await session2.end();
    }
  });

  it('deprovisions: the database and every role of the instance are gone; last_operation says succeeded', async () => {
    const res = await osb(depot)
      .delete(`${instancePath(instanceId)}${ASYNC}&${deleteQuery(STANDARD_PLAN_ID)}`)
      .expect(202);
    const { operation } = res.body as { operation: string };
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operation)).state, 'succeeded');

    assert.deepEqual(await adminQuery('select 1 from pg_database where datname = $1', [names.database]), []);
    // binding 2 was not unbound first: deprovision drops its login role too
    assert.deepEqual(await instanceRoles(names.database), []);
    await assert.rejects(connect(credentials[1]!.uri));

    for (const query of ['', `?operation=${operation}`]) {
      const last = await osb(depot)
        .get(`${instancePath(instanceId)}/last_operation${query}`)
        .expect(200);
      assert.equal((last.body as LastOperationBody).state, 'succeeded');
    }
    await osb(depot).get(instancePath(instanceId)).expect(404);
    await osb(depot).get(bindingPath(instanceId, binding2)).expect(404);
  });

  it('never writes a binding password or uri to the log', () => {
    assert.ok(depot.logs.length > 0, 'the log was captured');
    const log = depot.logs.join('');
    assert.equal(credentials.length, 2);
    for (const creds of credentials) {
      assert.equal(log.includes(creds.password), false, 'a binding password is in the log');
      assert.equal(log.includes(creds.uri), false, 'a binding uri is in the log');
      assert.equal(log.includes(creds.jdbcUrl), false, 'a binding jdbcUrl is in the log');
    }
  });
});

describe('lifecycle: extensions', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('lifecycle-extensions');
  });
  after(async () => depot.close());

  it('provision with parameters {"extensions":["citext","pgcrypto"]} creates them in the database', async () => {
    const parameters = { extensions: ['citext', 'pgcrypto'] };
    const instanceId = await provisionInstance(depot, randomUUID(), { parameters });
    const { database } = postgresNames(instanceId);
    const fetched = await osb(depot).get(instancePath(instanceId)).expect(200);
    assert.deepEqual((fetched.body as { parameters: unknown }).parameters, parameters);

    const admin = new pg.Client({ connectionString: withDatabase(ADMIN_URL, database) });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ extname: string }>(
        "select extname from pg_extension where extname in ('citext', 'pgcrypto') order by extname",
      );
      assert.deepEqual(
        rows.map((r) => r.extname),
        ['citext', 'pgcrypto'],
      );
    } finally {
      await admin.end();
    }

    // and a binding can use them
    const bindingId = randomUUID();
    const res = await osb(depot).put(bindingPath(instanceId, bindingId), bindBody()).expect(201);
    const session = await connect((res.body as { credentials: Credentials }).credentials.uri);
    try {
      const { rows } = await session.query<{ same: boolean; digest: string }>(
        "select 'Hello'::citext = 'hello'::citext as same, encode(digest('x', 'sha256'), 'hex') as digest",
      );
      assert.deepEqual(rows, [
        { same: true, digest: '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881' },
      ]);
    } finally {
      await session.end();
    }
    await deprovisionInstance(depot, instanceId);
  });
});
