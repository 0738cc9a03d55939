/**
 * The `mysql` offering against the machine's real MariaDB: an instance is a database, a binding
 * a user with every privilege on it and none elsewhere. Isolation is checked by logging in with
 * the bound credentials (mysql2, and the `mariadb` client): between two instances, between two
 * bindings, and against the server itself (no other database, no mysql.*, no PROCESS, FILE or
 * SUPER). Also: unbind and deprovision end sessions and leave no user behind, every step can
 * run twice, plan changes and maintenance_info upgrades reach every user, rotation and expiry,
 * and what a newcomer's start does with a MariaDB that answers or does not.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { BindingMetadata, CatalogResponse } from '../osb/index.js';
import { loadConfig, withDatabase } from '../broker/config.js';
import { createDepot, StartupError } from '../broker/depot.js';
import { CHARACTER_SETS, COLLATION_PATTERN } from '../broker/offerings/mysql/character-sets.js';
import { MysqlOffering, mysqlNames, type MysqlCredentials } from '../broker/offerings/mysql/mysql-offering.js';
import { nativePasswordHash } from '../broker/offerings/mysql/native-password.js';
import { OperationEndedError, PermanentOfferingError } from '../broker/offerings/offering.js';
import { ConfigError } from '../runtime/config.js';
import { createLogger } from '../runtime/logger.js';
import {
  ADMIN_URL,
  ASYNC,
  ENCRYPTION_KEYS,
  REDIS_URL,
  bindingPath,
  defaultCatalogDocument,
  dropDatabase,
  forgetQueue,
  freePort,
  instancePath,
  operationOf,
  osb,
  planOf,
  startDepot,
  stateCounts,
  tenantRedisUrl,
  waitForOperation,
  type CatalogDocument,
  type LastOperationBody,
  type TestDepot,
  catalogAtStart,
} from './helpers.js';
import {
  MYSQL_SERVICE_ID,
  MYSQL_SMALL_PLAN_ID,
  MYSQL_STANDARD_PLAN_ID,
  MYSQL_URL,
  closeMysql,
  databaseExists,
  mysqlAdmin,
  mysqlBody,
  mysqlLogin,
  mysqlQuery,
  refusal,
  rowsOf,
  sessionsOf,
  usersLike,
} from './mysql-helpers.js';
import { npmScriptNodeArgs } from './npm-script.js';

const run = promisify(execFile);

// MariaDB's error numbers, as a refused statement reports them.
const ER_DBACCESS_DENIED = 1044;
const ER_ACCESS_DENIED = 1045;
const ER_ACCESS_DENIED_NO_PASSWORD = 1698;
const ER_KILL_DENIED = 1095;
const ER_TABLEACCESS_DENIED = 1142;
const ER_USER_LIMIT_REACHED = 1226;
const ER_SPECIFIC_ACCESS_DENIED = 1227;
const ER_MUST_CHANGE_PASSWORD = 1820;

interface BindBody {
  credentials: MysqlCredentials;
  metadata?: BindingMetadata;
}
interface ErrorBody {
  description: string;
}

/** An OSB client of a Depot with the mysql offering on MYSQL_URL, and the steps the tests repeat. */
function mysqlSteps(target: () => TestDepot) {
  const steps = {
    async provision(parameters: Record<string, unknown> = {}, planId = MYSQL_SMALL_PLAN_ID): Promise<string> {
      const instanceId = randomUUID();
      const last = await steps.provisionOutcome(instanceId, parameters, planId);
      assert.equal(last.state, 'succeeded', last.description);
      return instanceId;
    },
    async provisionOutcome(
      instanceId: string,
      parameters: Record<string, unknown>,
      planId = MYSQL_SMALL_PLAN_ID,
    ): Promise<LastOperationBody> {
      const res = await osb(target())
        .put(instancePath(instanceId) + ASYNC, {
          ...mysqlBody(planId),
          organization_guid: 'org',
          space_guid: 'space',
          parameters,
        })
        .expect(202);
      return waitForOperation(target(), instancePath(instanceId), operationOf(res));
    },
    async bind(instanceId: string, planId = MYSQL_SMALL_PLAN_ID, extra: Record<string, unknown> = {}) {
      const bindingId = randomUUID();
      const res = await osb(target())
        .put(bindingPath(instanceId, bindingId), { ...mysqlBody(planId), ...extra })
        .expect(201);
      return { bindingId, ...(res.body as BindBody) };
    },
    async unbind(instanceId: string, bindingId: string, planId = MYSQL_SMALL_PLAN_ID): Promise<void> {
      await osb(target())
        .delete(`${bindingPath(instanceId, bindingId)}?${mysqlQuery(planId)}`)
        .expect(200);
    },
    async deprovision(instanceId: string, planId = MYSQL_SMALL_PLAN_ID): Promise<LastOperationBody> {
      const res = await osb(target())
        .delete(`${instancePath(instanceId)}${ASYNC}&${mysqlQuery(planId)}`)
        .expect(202);
      return waitForOperation(target(), instancePath(instanceId), operationOf(res));
    },
    async update(instanceId: string, body: Record<string, unknown>): Promise<LastOperationBody> {
      const res = await osb(target())
        .patch(instancePath(instanceId) + ASYNC, { service_id: MYSQL_SERVICE_ID, ...body })
        .expect(202);
      return waitForOperation(target(), instancePath(instanceId), operationOf(res));
    },
  };
  return steps;
}

/**
 * A login with these credentials is refused: "Access denied for user …" (1045; for a user just
 * dropped MariaDB at times answers 1698, with the same message).
 */
async function assertLoginRefused(uri: string): Promise<void> {
  const refused = await refusal(mysqlLogin(uri));
  assert.ok(refused, 'the login was refused');
  assert.ok([ER_ACCESS_DENIED, ER_ACCESS_DENIED_NO_PASSWORD].includes(refused.errno!), refused.message);
  assert.match(refused.message, /^Access denied for user/);
}

/** The per-user connection limit the server has for a user. */
async function connectionLimitOf(username: string): Promise<number | undefined> {
  const [row] = await mysqlAdmin<{ limit: number }>(
    'select max_user_connections as `limit` from mysql.user where User = ?',
    [username],
  );
  return row === undefined ? undefined : Number(row.limit);
}

async function createUserOf(username: string): Promise<string> {
  const [row] = await mysqlAdmin<Record<string, string>>(`show create user '${username}'@'%'`);
  return Object.values(row ?? {})[0] ?? '';
}

async function schemaDefaults(database: string): Promise<{ charset: string; collation: string } | undefined> {
  const [row] = await mysqlAdmin<{ charset: string; collation: string }>(
    `select DEFAULT_CHARACTER_SET_NAME as charset, DEFAULT_COLLATION_NAME as collation
       from information_schema.SCHEMATA where SCHEMA_NAME = ?`,
    [database],
  );
  return row && { charset: row.charset, collation: row.collation };
}

describe('mysql offering', () => {
  let depot: TestDepot;
  const steps = mysqlSteps(() => depot);

  before(async () => {
    depot = await startDepot('mysql-offering', { env: { MYSQL_SERVICE_URL: MYSQL_URL } });
  });
  after(async () => {
    await closeMysql();
    await depot.close();
  });

  it('the catalog serves mysql with the plans small and standard, their connection limits and schemas', async () => {
    const res = await osb(depot).get('/v2/catalog').expect(200);
    const service = (res.body as CatalogResponse).services.find((s) => s.id === MYSQL_SERVICE_ID);
    assert.ok(service, 'the mysql service is in the catalog');
    assert.equal(service.name, 'mysql');
    assert.equal(service.bindable, true);
    assert.equal(service.plan_updateable, true);
    assert.deepEqual(
      service.plans.map((p) => [p.id, p.name, p.binding_rotatable, p.maintenance_info?.version]),
      [
        [MYSQL_SMALL_PLAN_ID, 'small', true, '1.0.0'],
        [MYSQL_STANDARD_PLAN_ID, 'standard', true, '1.0.0'],
      ],
    );
    assert.deepEqual(depot.depot.catalog.plan(MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID)?.settings, {
      max_user_connections: 10,
    });
    assert.deepEqual(depot.depot.catalog.plan(MYSQL_SERVICE_ID, MYSQL_STANDARD_PLAN_ID)?.settings, {
      max_user_connections: 50,
    });
    for (const plan of service.plans) {
      for (const schema of [plan.schemas?.service_instance?.create, plan.schemas?.service_instance?.update]) {
        const properties = schema?.parameters?.properties as Record<string, { enum?: unknown; pattern?: unknown }>;
        // The schemas list what the offering allows, no more, no less.
        assert.deepEqual(properties.character_set?.enum, [...CHARACTER_SETS]);
        assert.equal(properties.collation?.pattern, COLLATION_PATTERN);
      }
    }
  });

  it('provision and bind: a database of its own, and credentials that log in and can create tables', async () => {
    const instanceId = await steps.provision();
    const { bindingId, credentials } = await steps.bind(instanceId);
    const { database, username } = mysqlNames(instanceId, bindingId);
    assert.deepEqual(Object.keys(credentials).sort(), [
      'database',
      'host',
      'jdbcUrl',
      'password',
      'port',
      'uri',
      'username',
    ]);
    assert.equal(credentials.database, database);
    assert.equal(credentials.username, username);
    assert.ok(username!.length <= 32 && database.length <= 64, `${username} / ${database}`);
    assert.equal(credentials.host, '127.0.0.1');
    assert.equal(credentials.port, 3306);
    assert.match(credentials.password, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(credentials.uri, `mysql://${username}:${credentials.password}@127.0.0.1:3306/${database}`);
    assert.equal(
      credentials.jdbcUrl,
      `jdbc:mysql://127.0.0.1:3306/${database}?user=${username}&password=${credentials.password}`,
    );

    const session = await mysqlLogin(credentials.uri);
    assert.deepEqual(await rowsOf(session, 'select database() as db, current_user() as me'), [
      { db: database, me: `${username}@%` },
    ]);
    await session.query('create table notes (id int primary key auto_increment, body text)');
    await session.query('insert into notes (body) values (?)', ['Hello, Depot']);
    assert.deepEqual(await rowsOf(session, 'select body from notes'), [{ body: 'Hello, Depot' }]);
    assert.deepEqual(await schemaDefaults(database), { charset: 'utf8mb4', collation: 'utf8mb4_general_ci' });
    assert.equal(await connectionLimitOf(username!), 10);

    // Fetched again, the same credentials; neither the password nor its hash reaches the log.
    const fetched = await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
    assert.deepEqual((fetched.body as BindBody).credentials, credentials);
    const everything = depot.logs.join('\n');
    assert.equal(everything.includes(credentials.password), false);
    assert.equal(everything.includes(nativePasswordHash(credentials.password)), false);
    assert.equal(everything.includes(nativePasswordHash(credentials.password).slice(1)), false);
  });

  it('character_set and collation set the database defaults that new tables get', async () => {
    const german = await steps.provision({ character_set: 'latin1', collation: 'latin1_german1_ci' });
    assert.deepEqual(await schemaDefaults(mysqlNames(german).database), {
      charset: 'latin1',
      collation: 'latin1_german1_ci',
    });
    const session = await mysqlLogin((await steps.bind(german)).credentials.uri);
    await session.query('create table words (w varchar(20))');
    assert.deepEqual(
      await rowsOf(session, 'select TABLE_COLLATION as collation from information_schema.TABLES where TABLE_NAME = ?', [
        'words',
      ]),
      [{ collation: 'latin1_german1_ci' }],
    );

    // A collation alone brings its character set.
    const unicode = await steps.provision({ collation: 'utf8mb4_unicode_ci' });
    assert.deepEqual(await schemaDefaults(mysqlNames(unicode).database), {
      charset: 'utf8mb4',
      collation: 'utf8mb4_unicode_ci',
    });
    // An update changes the defaults (tables made before keep theirs).
    const last = await steps.update(unicode, { parameters: { collation: 'utf8mb4_bin' } });
    assert.equal(last.state, 'succeeded', last.description);
    assert.deepEqual(await schemaDefaults(mysqlNames(unicode).database), {
      charset: 'utf8mb4',
      collation: 'utf8mb4_bin',
    });
  });

  it('bad character_set or collation: 400 naming the field, and nothing is created', async () => {
    const counts = await stateCounts(depot);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ character_set: 'klingon' }, /parameters\.character_set must be one of "utf8mb4", "utf8mb3"/],
      [{ character_set: 'utf8mb4; drop database mysql' }, /parameters\.character_set must be one of/],
      [{ collation: "utf8mb4_bin'; drop database mysql; --" }, /parameters\.collation must match pattern/],
      [{ collation: 'klingon_ci' }, /parameters\.collation must match pattern/],
      [{ collation: 5 }, /parameters\.collation must be string/],
      [{ charset: 'utf8mb4' }, /parameters\.charset is not an allowed property/],
    ];
    const ids: string[] = [];
    for (const [parameters, message] of cases) {
      const instanceId = randomUUID();
      ids.push(instanceId);
      const res = await osb(depot)
        .put(instancePath(instanceId) + ASYNC, { ...mysqlBody(), organization_guid: 'o', space_guid: 's', parameters })
        .expect(400);
      assert.match((res.body as ErrorBody).description, message);
    }
    assert.deepEqual(await stateCounts(depot), counts);
    for (const id of ids) assert.equal(await databaseExists(mysqlNames(id).database), false);

    // An update's parameters are checked the same way; the instance keeps its defaults.
    const instanceId = await steps.provision({ collation: 'utf8mb4_unicode_ci' });
    const res = await osb(depot)
      .patch(instancePath(instanceId) + ASYNC, { service_id: MYSQL_SERVICE_ID, parameters: { character_set: 'x' } })
      .expect(400);
    assert.match((res.body as ErrorBody).description, /parameters\.character_set must be one of/);
    assert.equal((await schemaDefaults(mysqlNames(instanceId).database))?.collation, 'utf8mb4_unicode_ci');
  });

  it('a collation of another character set, or one the server lacks: the provision fails saying so', async () => {
    const mismatch = randomUUID();
    const last = await steps.provisionOutcome(mismatch, { character_set: 'utf8mb4', collation: 'latin1_swedish_ci' });
    assert.equal(last.state, 'failed');
    assert.match(
      last.description!,
      /parameters\.collation: latin1_swedish_ci is a collation of latin1, not of utf8mb4 \(parameters\.character_set\)/,
    );
    assert.equal(await databaseExists(mysqlNames(mismatch).database), false);
    const unknown = randomUUID();
    const missing = await steps.provisionOutcome(unknown, { collation: 'utf8mb4_klingon_ci' });
    assert.equal(missing.state, 'failed');
    assert.match(missing.description!, /parameters\.collation: MySQL at 127\.0\.0\.1:3306 .* has no collation/);
    assert.equal(await databaseExists(mysqlNames(unknown).database), false);
  });

  it("isolation between instances: a binding sees, reads and changes nothing of another instance's", async () => {
    const [first, second] = [await steps.provision(), await steps.provision()];
    const a = (await steps.bind(first)).credentials;
    const b = (await steps.bind(second)).credentials;
    assert.notEqual(a.database, b.database);
    const sessionA = await mysqlLogin(a.uri);
    const sessionB = await mysqlLogin(b.uri);
    await sessionB.query('create table secret (v text)');
    await sessionB.query("insert into secret values ('of b')");
    const [{ id: idOfB }] = (await rowsOf<{ id: number }>(sessionB, 'select connection_id() as id')) as [
      { id: number },
    ];
    const errno = async (sql: string) => (await refusal(sessionA.query(sql)))?.errno;

    // SHOW DATABASES and information_schema: its own database only.
    const databases = await rowsOf<{ Database: string }>(sessionA, 'show databases');
    assert.deepEqual(databases.map((row) => row.Database).sort(), [a.database, 'information_schema']);
    const tables = await rowsOf(sessionA, 'select TABLE_NAME from information_schema.TABLES where TABLE_SCHEMA = ?', [
      b.database,
    ]);
    assert.deepEqual(tables, []);
    // No way into the other database.
    assert.equal(await errno(`select * from \`${b.database}\`.secret`), ER_TABLEACCESS_DENIED);
    assert.equal(await errno(`insert into \`${b.database}\`.secret values ('x')`), ER_TABLEACCESS_DENIED);
    assert.equal(await errno(`drop table \`${b.database}\`.secret`), ER_TABLEACCESS_DENIED);
    assert.equal(await errno(`use \`${b.database}\``), ER_DBACCESS_DENIED);
    const crossLogin = await refusal(mysqlLogin(a.uri.replace(`/${a.database}`, `/${b.database}`)));
    assert.equal(crossLogin?.errno, ER_DBACCESS_DENIED);
    // Nor another database of its own: not even one that `_` as a wildcard in its grant would match.
    assert.equal(await errno('create database elsewhere'), ER_DBACCESS_DENIED);
    assert.equal(await errno(`create database \`${a.database.replace('_', 'x')}\``), ER_DBACCESS_DENIED);
    // No mysql.*, no PROCESS, FILE or SUPER; no users, no grants to anyone.
    assert.equal(await errno('select * from mysql.user'), ER_TABLEACCESS_DENIED);
    assert.equal(await errno('select * from mysql.db'), ER_TABLEACCESS_DENIED);
    assert.equal(await errno('show engine innodb status'), ER_SPECIFIC_ACCESS_DENIED); // PROCESS
    assert.equal(await errno("select 1 into outfile '/tmp/depot-mysql-test'"), ER_SPECIFIC_ACCESS_DENIED); // FILE
    assert.equal(await errno("load data infile '/etc/passwd' into table notes"), ER_ACCESS_DENIED); // FILE
    assert.deepEqual(await rowsOf(sessionA, "select load_file('/etc/passwd') as f"), [{ f: null }]);
    assert.equal(await errno('set global max_connections = 1000'), ER_SPECIFIC_ACCESS_DENIED); // SUPER
    assert.equal(await errno(`kill ${Number(idOfB)}`), ER_KILL_DENIED);
    assert.equal(await errno("create user 'intruder'@'%'"), ER_SPECIFIC_ACCESS_DENIED);
    assert.equal(await errno(`grant select on \`${a.database}\`.* to '${b.username}'@'%'`), ER_DBACCESS_DENIED);
    // Another session is invisible: the process list shows its own sessions only.
    const processes = await rowsOf<{ User: string }>(sessionA, 'show processlist');
    assert.ok(processes.length >= 1);
    assert.deepEqual([...new Set(processes.map((p) => p.User))], [a.username]);
    assert.deepEqual(await rowsOf(sessionA, 'select ID from information_schema.PROCESSLIST where ID = ?', [idOfB]), []);
    // Its privileges: all on its database, and at the server level nothing (USAGE).
    const lines = (await rowsOf<Record<string, string>>(sessionA, 'show grants')).map((row) => Object.values(row)[0]!);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0]!, /^GRANT USAGE ON \*\.\* TO `[^`]+`@`%`/);
    assert.equal(
      lines[1],
      `GRANT ALL PRIVILEGES ON \`${a.database.replace(/_/g, '\\_')}\`.* TO \`${a.username}\`@\`%\``,
    );
    assert.deepEqual(await rowsOf(sessionA, 'select PRIVILEGE_TYPE as p from information_schema.USER_PRIVILEGES'), [
      { p: 'USAGE' },
    ]);

    assert.deepEqual(await rowsOf(sessionB, 'select v from secret'), [{ v: 'of b' }], "b's row is untouched");
  });

  it("one instance's bindings share its tables; unbinding one kills its sessions, the other goes on", async () => {
    const instanceId = await steps.provision();
    const kept = (await steps.bind(instanceId)).credentials;
    const { bindingId, credentials: gone } = await steps.bind(instanceId);
    assert.notEqual(kept.username, gone.username);
    const open = await mysqlLogin(gone.uri);
    const second = await mysqlLogin(gone.uri);
    await open.query('create table shared (v int)');
    await open.query('insert into shared values (1)');
    const survivor = await mysqlLogin(kept.uri);
    assert.deepEqual(await rowsOf(survivor, 'select v from shared'), [{ v: 1 }]);
    assert.equal(await sessionsOf(gone.username), 2);

    await steps.unbind(instanceId, bindingId);
    // Its open sessions were killed, its user dropped, its password refused.
    assert.ok(await refusal(open.query('select 1')), 'the open session was killed');
    assert.ok(await refusal(second.query('select 1')), 'every open session was killed');
    assert.equal(await sessionsOf(gone.username), 0);
    assert.deepEqual(await usersLike(gone.username), []);
    await assertLoginRefused(gone.uri);
    // The other binding, its open session and new ones, go on; the table stays with the instance.
    await survivor.query('insert into shared values (2)');
    const fresh = await mysqlLogin(kept.uri);
    assert.deepEqual(await rowsOf(fresh, 'select v from shared order by v'), [{ v: 1 }, { v: 2 }]);
    // A second DELETE: 410 Gone, nothing else happens.
    await osb(depot)
      .delete(`${bindingPath(instanceId, bindingId)}?${mysqlQuery()}`)
      .expect(410);
  });

  it("a binding opens up to its plan's max_user_connections sessions: 10 on small", async () => {
    const { credentials } = await steps.bind(await steps.provision());
    for (let i = 0; i < 10; i++) await mysqlLogin(credentials.uri);
    const refused = await refusal(mysqlLogin(credentials.uri));
    assert.equal(refused?.errno, ER_USER_LIMIT_REACHED, refused?.message);
  });

  it('deprovision drops the database, every user on it and their sessions; the neighbour stays', async () => {
    const [doomed, neighbour] = [await steps.provision(), await steps.provision()];
    const first = (await steps.bind(doomed)).credentials;
    const second = (await steps.bind(doomed)).credentials;
    const other = (await steps.bind(neighbour)).credentials;
    // A user granted on the database by hand, not named after the instance: it goes too.
    const stray = `depot_test_stray_${randomUUID().slice(0, 8)}`;
    await mysqlAdmin(`create user '${stray}'@'%' identified by 'x'`);
    await mysqlAdmin(`grant select on \`${first.database}\`.* to '${stray}'@'%'`);
    const open = await mysqlLogin(first.uri);
    await open.query('create table t (v int)');
    const neighbourSession = await mysqlLogin(other.uri);
    await neighbourSession.query('create table mine (v int)');
    await neighbourSession.query('insert into mine values (7)');

    const last = await steps.deprovision(doomed);
    assert.deepEqual(last, { state: 'succeeded', description: 'Deprovisioned.' });
    assert.ok(await refusal(open.query('select 1')), 'the open session was killed');
    assert.equal(await databaseExists(first.database), false);
    assert.deepEqual(await usersLike(mysqlNames(doomed).userPrefix), []);
    assert.deepEqual(await usersLike(stray), []);
    for (const gone of [first, second]) await assertLoginRefused(gone.uri);
    assert.deepEqual(await rowsOf(neighbourSession, 'select v from mine'), [{ v: 7 }]);
    assert.equal(await databaseExists(other.database), true);
  });

  it('a plan change gives every user of the instance the new connection limit, and nothing else', async () => {
    const instanceId = await steps.provision();
    const { credentials } = await steps.bind(instanceId);
    assert.equal(await connectionLimitOf(credentials.username), 10);
    // A default the tenant set itself stays.
    await (await mysqlLogin(credentials.uri)).query(`alter database \`${credentials.database}\` collate utf8mb4_bin`);
    const last = await steps.update(instanceId, { plan_id: MYSQL_STANDARD_PLAN_ID });
    assert.deepEqual(last, { state: 'succeeded', description: 'Updated.' });
    assert.equal(await connectionLimitOf(credentials.username), 50);
    assert.equal((await schemaDefaults(credentials.database))?.collation, 'utf8mb4_bin');
    const later = (await steps.bind(instanceId, MYSQL_STANDARD_PLAN_ID)).credentials;
    assert.equal(await connectionLimitOf(later.username), 50);
    await mysqlLogin(credentials.uri); // the password is untouched
  });

  it('rotation: a user of its own for the new binding; both log in until the predecessor is unbound', async () => {
    const instanceId = await steps.provision();
    const old = await steps.bind(instanceId);
    const rotated = await steps.bind(instanceId, MYSQL_SMALL_PLAN_ID, { predecessor_binding_id: old.bindingId });
    assert.notEqual(rotated.credentials.username, old.credentials.username);
    assert.notEqual(rotated.credentials.password, old.credentials.password);
    assert.equal(rotated.credentials.database, old.credentials.database);
    await (await mysqlLogin(old.credentials.uri)).query('create table kept (v int)');
    await (await mysqlLogin(rotated.credentials.uri)).query('insert into kept values (1)');
    await steps.unbind(instanceId, old.bindingId);
    await assertLoginRefused(old.credentials.uri);
    assert.deepEqual(await rowsOf(await mysqlLogin(rotated.credentials.uri), 'select v from kept'), [{ v: 1 }]);
  });

  it('the mariadb client, with the bound credentials: its own database works, another is refused', async () => {
    const mine = (await steps.bind(await steps.provision())).credentials;
    const theirs = (await steps.bind(await steps.provision())).credentials;
    const client = (database: string, sql: string) =>
      run('mariadb', [
        '-h',
        mine.host,
        '-P',
        String(mine.port),
        '-u',
        mine.username,
        `-p${mine.password}`,
        database,
        '--batch',
        '-e',
        sql,
      ]);
    const { stdout } = await client(
      mine.database,
      "create table greetings (text varchar(40)); insert into greetings values ('Hello, Depot'); " +
        'select text, current_user() from greetings; show databases',
    );
    assert.equal(
      stdout,
      `text\tcurrent_user()\nHello, Depot\t${mine.username}@%\nDatabase\n${mine.database}\ninformation_schema\n`,
    );
    const refused = await refusal(client(theirs.database, 'select 1'));
    assert.match(refused!.message, /ERROR 1044 \(42000\): Access denied for user '[^']+'@'%' to database/);
  });
});

describe('mysql offering, step by step (each step run twice, as a retried job runs it)', () => {
  let offering: MysqlOffering;
  const context = { reportProgress: async () => undefined };
  const instanceRequest = (instanceId: string, parameters: Record<string, unknown> = {}) => ({
    instanceId,
    planName: 'small',
    planSettings: { max_user_connections: 10 },
    parameters,
    context: {},
  });
  before(() => {
    offering = new MysqlOffering({ serviceUrl: MYSQL_URL, logger: createLogger('silent') });
  });
  after(async () => {
    await closeMysql();
    await offering.close();
  });

  it('provision, bind, unbind and deprovision twice in a row end as once', async () => {
    const instance = instanceRequest(randomUUID(), { character_set: 'latin1' });
    const { database } = mysqlNames(instance.instanceId);
    await offering.provision(instance);
    await offering.provision(instance);
    assert.deepEqual(await schemaDefaults(database), { charset: 'latin1', collation: 'latin1_swedish_ci' });

    const binding = { instance, bindingId: randomUUID(), parameters: {} };
    const first = (await offering.bind(binding)).credentials as unknown as MysqlCredentials;
    const again = (await offering.bind(binding)).credentials as unknown as MysqlCredentials;
    // The same user; the re-run's password is the one that works (the first was never handed out).
    assert.equal(again.username, first.username);
    await assertLoginRefused(first.uri);
    await (await mysqlLogin(again.uri)).query('create table t (v int)');

    await offering.unbind(binding);
    await offering.unbind(binding);
    assert.deepEqual(await usersLike(again.username), []);

    await offering.deprovision(instance, context);
    await offering.deprovision(instance, context);
    assert.equal(await databaseExists(database), false);
  });

  it('finishes what a killed job left half done', async () => {
    const instance = instanceRequest(randomUUID());
    const { database } = mysqlNames(instance.instanceId);
    // A provision killed after CREATE DATABASE, before its defaults were set.
    await mysqlAdmin(`create database \`${database}\` character set latin1`);
    await offering.provision(instance);
    assert.equal((await schemaDefaults(database))?.charset, 'utf8mb4');

    // A bind killed after CREATE USER, before ALTER USER and GRANT.
    const binding = { instance, bindingId: randomUUID(), parameters: {} };
    const { username } = mysqlNames(instance.instanceId, binding.bindingId);
    await mysqlAdmin(`create user '${username}'@'%' identified by 'left-over'`);
    const { credentials } = await offering.bind(binding);
    await (await mysqlLogin(String(credentials.uri))).query('create table t (v int)');
    assert.equal(await connectionLimitOf(username!), 10);

    // An unbind killed after ACCOUNT LOCK, with a session still open.
    const open = await mysqlLogin(String(credentials.uri));
    await mysqlAdmin(`alter user '${username}'@'%' account lock`);
    await offering.unbind(binding);
    assert.ok(await refusal(open.query('select 1')));
    assert.deepEqual(await usersLike(username!), []);

    // A deprovision killed after it dropped one of two users: the other, the tables and the database go.
    const [one, two] = [randomUUID(), randomUUID()];
    for (const bindingId of [one, two]) await offering.bind({ instance, bindingId, parameters: {} });
    await mysqlAdmin(`drop user '${mysqlNames(instance.instanceId, one).username}'@'%'`);
    assert.equal((await usersLike(mysqlNames(instance.instanceId).userPrefix)).length, 1);
    await offering.deprovision(instance, context);
    assert.equal(await databaseExists(database), false);
    assert.deepEqual(await usersLike(mysqlNames(instance.instanceId).userPrefix), []);
  });

  it('bind and update of an instance whose database is gone fail for good, saying so', async () => {
    const instance = instanceRequest(randomUUID());
    for (const attempt of [
      () => offering.bind({ instance, bindingId: randomUUID(), parameters: {} }),
      () =>
        offering.update({
          ...instance,
          previous: { planName: 'small', planSettings: instance.planSettings, parameters: {} },
        }),
    ]) {
      await assert.rejects(attempt(), (error: Error) => {
        assert.ok(error instanceof PermanentOfferingError);
        assert.match(error.message, /the database of service instance .* does not exist/);
        return true;
      });
    }
  });

  it('deprovision drops the tables a batch at a time, reporting "dropped N of M tables"', async () => {
    const batched = new MysqlOffering({
      serviceUrl: MYSQL_URL,
      logger: createLogger('silent'),
      dropBatchSize: 25,
      progressIntervalMs: 0,
    });
    try {
      const instance = instanceRequest(randomUUID());
      const { database } = mysqlNames(instance.instanceId);
      await batched.provision(instance);
      const { credentials } = await batched.bind({ instance, bindingId: randomUUID(), parameters: {} });
      const session = await mysqlLogin(String(credentials.uri));
      // t000 first (the order they go in), referenced by every other: foreign keys do not hold the drop up.
      await session.query('create table t000 (id int primary key) engine=InnoDB');
      for (let i = 1; i < 120; i++) {
        const name = `t${String(i).padStart(3, '0')}`;
        await session.query(`create table ${name} (id int, foreign key (id) references t000 (id)) engine=InnoDB`);
      }
      const reports: string[] = [];
      await batched.deprovision(instance, { reportProgress: async (text) => void reports.push(text) });
      assert.deepEqual(reports.slice(0, 2), [
        'Deprovisioning: dropped 0 of 1 users.',
        'Deprovisioning: dropped 1 of 1 users.',
      ]);
      const tables = reports.slice(2).map((text) => {
        const match = /^Deprovisioning: dropped (\d+) of 120 tables\.$/.exec(text);
        assert.ok(match, text);
        return Number(match[1]);
      });
      assert.deepEqual(tables, [0, 25, 50, 75, 100, 120]);
      assert.equal(await databaseExists(database), false);

      // A re-run finds nothing left and ends the same way.
      reports.length = 0;
      await batched.deprovision(instance, { reportProgress: async (text) => void reports.push(text) });
      assert.deepEqual(reports, ['Deprovisioning: dropped 0 of 0 users.', 'Deprovisioning: dropped 0 of 0 tables.']);
    } finally {
      await batched.close();
    }
  });

  it('deprovision stops when its operation has ended (reportProgress throws OperationEndedError)', async () => {
    const batched = new MysqlOffering({
      serviceUrl: MYSQL_URL,
      logger: createLogger('silent'),
      dropBatchSize: 10,
      progressIntervalMs: 0,
    });
    try {
      const instance = instanceRequest(randomUUID());
      const { database } = mysqlNames(instance.instanceId);
      await batched.provision(instance);
      for (let i = 0; i < 100; i++) await mysqlAdmin(`create table \`${database}\`.t${i} (v int)`);
      let reports = 0;
      const ended = {
        reportProgress: async () => {
          if (++reports > 3)
            throw new OperationEndedError('the deprovision operation ended while its job was still running');
        },
      };
      await assert.rejects(batched.deprovision(instance, ended), OperationEndedError);
      const [[left]] = [
        await mysqlAdmin<{ n: number }>('select count(*) as n from information_schema.TABLES where TABLE_SCHEMA = ?', [
          database,
        ]),
      ];
      assert.ok(Number(left!.n) >= 80, `it stopped at once: ${left!.n} of 100 tables left`);
      await batched.deprovision(instance, context);
      assert.equal(await databaseExists(database), false);
    } finally {
      await batched.close();
    }
  });

  it('credentials carry MYSQL_SERVICE_PUBLIC_HOST and _PORT when set', async () => {
    const public_ = new MysqlOffering({
      serviceUrl: MYSQL_URL,
      logger: createLogger('silent'),
      publicHost: 'db.example.internal',
      publicPort: 13306,
    });
    try {
      const instance = instanceRequest(randomUUID());
      await public_.provision(instance);
      const binding = { instance, bindingId: randomUUID(), parameters: {} };
      const credentials = (await public_.bind(binding)).credentials as unknown as MysqlCredentials;
      assert.equal(credentials.host, 'db.example.internal');
      assert.equal(credentials.port, 13306);
      assert.ok(credentials.uri.includes(`@db.example.internal:13306/${credentials.database}`));
      assert.ok(credentials.jdbcUrl.startsWith(`jdbc:mysql://db.example.internal:13306/${credentials.database}?`));
      await public_.deprovision(instance, context);
    } finally {
      await public_.close();
    }
  });
});

// ---- maintenance_info upgrades and credential lifetimes: catalogs of our own ----

describe('mysql offering: maintenance_info upgrade', () => {
  const STATE_DATABASE = 'depot_test_mysql_upgrade';
  const QUEUE_PREFIX = `depot-test-mysql-upgrade-${randomUUID().slice(0, 8)}`;
  const env = {
    MYSQL_SERVICE_URL: MYSQL_URL,
    DATABASE_URL: withDatabase(ADMIN_URL, STATE_DATABASE),
    QUEUE_PREFIX,
  };
  let depot: TestDepot | undefined;
  const steps = mysqlSteps(() => depot!);
  before(() => dropDatabase(STATE_DATABASE));
  after(async () => {
    await closeMysql();
    await depot?.close();
    await forgetQueue(QUEUE_PREFIX);
    await dropDatabase(STATE_DATABASE);
  });

  it('a catalog bumps small to 1.1.0 with 20 connections: a PATCH upgrades every user of the instance', async () => {
    depot = await startDepot('mysql-upgrade-v1', { env });
    const instanceId = await steps.provision();
    const { credentials } = await steps.bind(instanceId);
    assert.equal(await connectionLimitOf(credentials.username), 10);
    await depot.depot.close(); // a restart with the new catalog (the instance stays)

    const catalog: CatalogDocument = defaultCatalogDocument();
    const small = planOf(catalog, MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID);
    small.maintenance_info = { version: '1.1.0', description: 'MySQL database: 20 connections per binding.' };
    small['x-depot'] = { max_user_connections: 20 };
    depot = await startDepot('mysql-upgrade-v2', { env, catalog });
    const instance = await osb(depot).get(instancePath(instanceId)).expect(200);
    assert.equal((instance.body as { maintenance_info?: { version: string } }).maintenance_info?.version, '1.0.0');
    // Until the upgrade, new bindings get the settings the instance was built with.
    const before = (await steps.bind(instanceId)).credentials;
    assert.equal(await connectionLimitOf(before.username), 10);

    const last = await steps.update(instanceId, { maintenance_info: { version: '1.1.0' } });
    assert.deepEqual(last, {
      state: 'succeeded',
      description: 'Updated; upgraded from maintenance_info 1.0.0 to 1.1.0.',
    });
    assert.equal(await connectionLimitOf(credentials.username), 20);
    assert.equal(await connectionLimitOf(before.username), 20);
    assert.equal(await connectionLimitOf((await steps.bind(instanceId)).credentials.username), 20);
    await mysqlLogin(credentials.uri);
  });
});

describe('mysql offering: credential lifetimes', () => {
  let depot: TestDepot;
  const steps = mysqlSteps(() => depot);
  before(async () => {
    const catalog = defaultCatalogDocument();
    planOf(catalog, MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID)['x-depot'] = {
      max_user_connections: 10,
      credential_lifetime_seconds: 2 * 86400,
    };
    planOf(catalog, MYSQL_SERVICE_ID, MYSQL_STANDARD_PLAN_ID)['x-depot'] = {
      max_user_connections: 50,
      credential_lifetime_seconds: 3600,
    };
    depot = await startDepot('mysql-lifetime', { env: { MYSQL_SERVICE_URL: MYSQL_URL }, catalog });
  });
  after(async () => {
    await closeMysql();
    await depot.close();
  });

  it('expires_at ≈ now + lifetime; the password expires after it, and then runs no statement', async () => {
    const instanceId = await steps.provision();
    const started = Date.now();
    const { credentials, metadata } = await steps.bind(instanceId);
    assert.ok(metadata?.expires_at, JSON.stringify(metadata));
    const expiresAt = Date.parse(metadata.expires_at);
    assert.ok(Math.abs(expiresAt - (started + 2 * 86_400_000)) < 60_000, metadata.expires_at);
    assert.match(await createUserOf(credentials.username), /PASSWORD EXPIRE INTERVAL 2 DAY$/);
    const session = await mysqlLogin(credentials.uri);
    await session.query('create table t (v int)');

    // Two days and a minute later (the server's clock of the password moved back by as much):
    await mysqlAdmin(
      `update mysql.global_priv set Priv = json_set(Priv, '$.password_last_changed',
         json_value(Priv, '$.password_last_changed') - ?) where User = ? and Host = '%'`,
      [2 * 86400 + 60, credentials.username],
    );
    await mysqlAdmin('flush privileges');
    const late = await mysqlLogin(credentials.uri);
    assert.equal((await refusal(late.query('select * from t')))?.errno, ER_MUST_CHANGE_PASSWORD);
  });

  it('a lifetime shorter than a day expires the password after one day (MySQL counts whole days)', async () => {
    const instanceId = await steps.provision({}, MYSQL_STANDARD_PLAN_ID);
    const { credentials, metadata } = await steps.bind(instanceId, MYSQL_STANDARD_PLAN_ID);
    assert.ok(metadata?.expires_at && metadata.renew_before);
    assert.match(await createUserOf(credentials.username), /PASSWORD EXPIRE INTERVAL 1 DAY$/);
  });
});

describe('mysql offering without a lifetime', () => {
  it('a binding of the built-in plans has no expires_at, and its password never expires', async () => {
    const depot = await startDepot('mysql-no-lifetime', { env: { MYSQL_SERVICE_URL: MYSQL_URL } });
    try {
      const steps = mysqlSteps(() => depot);
      const { credentials, metadata } = await steps.bind(await steps.provision());
      assert.equal(metadata, undefined);
      assert.match(await createUserOf(credentials.username), /PASSWORD EXPIRE NEVER$/);
    } finally {
      await closeMysql();
      await depot.close();
    }
  });
});

// ---- A newcomer's start ----

describe('mysql offering at start', () => {
  const database = 'depot_test_mysql_first_contact';
  const prefix = `depot-test-mysql-first-contact-${randomUUID().slice(0, 8)}`;
  const logger = createLogger('silent');
  const env = async () => ({
    DATABASE_URL: withDatabase(ADMIN_URL, database),
    REDIS_URL,
    POSTGRES_SERVICE_URL: ADMIN_URL,
    REDIS_SERVICE_URL: await tenantRedisUrl(),
    QUEUE_PREFIX: prefix,
    ENCRYPTION_KEYS,
    BROKER_USERNAME: 'admin',
    BROKER_PASSWORD: 'secret',
  });
  before(() => dropDatabase(database));
  after(async () => {
    await forgetQueue(prefix);
    await dropDatabase(database);
  });

  const start = catalogAtStart;

  it('MYSQL_SERVICE_URL: a mysql:// URL, by default root on 127.0.0.1:3306; a bad one names it', () => {
    const config = loadConfig({});
    assert.equal(config.mysqlServiceUrl, 'mysql://root@127.0.0.1:3306');
    assert.equal(config.mysqlServiceConfigured, false);
    assert.equal(loadConfig({ MYSQL_SERVICE_URL: 'mysql://depot:pw@db:3307' }).mysqlServiceConfigured, true);
    const fails = (env: Record<string, string>, variable: RegExp) =>
      assert.throws(
        () => loadConfig(env),
        (error: Error) => error instanceof ConfigError && variable.test(error.message),
      );
    fails({ MYSQL_SERVICE_URL: 'postgresql://db' }, /^MYSQL_SERVICE_URL must start with mysql:\/\//);
    fails({ MYSQL_SERVICE_URL: 'not a url' }, /^MYSQL_SERVICE_URL is not a valid URL/);
    fails({ MYSQL_SERVICE_PUBLIC_PORT: '0' }, /^MYSQL_SERVICE_PUBLIC_PORT/);
  });

  it('offers mysql when the default server answers', async () => {
    const { services, lines } = await start(loadConfig(await env()));
    assert.ok(services.includes('mysql'), services.join(', '));
    assert.equal(
      lines.some((line) => line.includes('Not offering mysql')),
      false,
    );
  });

  it('leaves mysql out when the default server does not answer, and one warn line says how to offer it', async () => {
    const closed = `mysql://root@127.0.0.1:${await freePort()}`;
    // What loadConfig gives when MYSQL_SERVICE_URL is unset, on a machine whose default server is down.
    const config = { ...loadConfig(await env()), mysqlServiceUrl: closed, mysqlServiceConfigured: false };
    const { services, lines } = await start(config);
    assert.equal(services.includes('mysql'), false, services.join(', '));
    assert.ok(services.includes('postgresql'));
    const notices = lines.filter((line) => line.includes('Not offering mysql'));
    assert.equal(notices.length, 1);
    const { msg, level } = JSON.parse(notices[0]!) as { msg: string; level: number };
    assert.equal(level, 40); // warn
    assert.match(msg, /^Not offering mysql\. Cannot use MySQL at 127\.0\.0\.1:\d+ \(MYSQL_SERVICE_URL\)/);
    assert.match(msg, /ECONNREFUSED/);
    assert.match(msg, /To offer it, set the variable/);
  });

  it('a MYSQL_SERVICE_URL set to a server that does not answer stops Depot at start, naming it', async () => {
    const config = loadConfig({ ...(await env()), MYSQL_SERVICE_URL: `mysql://root@127.0.0.1:${await freePort()}` });
    await assert.rejects(createDepot(config, { role: 'api', logger }), (error: Error) => {
      assert.ok(error instanceof StartupError);
      assert.match(
        error.message,
        /^Cannot use MySQL at 127\.0\.0\.1:\d+ \(MYSQL_SERVICE_URL\), which the mysql offering uses: .*ECONNREFUSED/,
      );
      return true;
    });
  });

  it('npm start with such a MYSQL_SERVICE_URL exits non-zero with that message', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, npmScriptNodeArgs('start'), {
      env: {
        PATH: process.env.PATH ?? '',
        LOG_LEVEL: 'info',
        ...(await env()),
        PORT: String(await freePort()),
        METRICS_PORT: String(await freePort()),
        MYSQL_SERVICE_URL: `mysql://root:not-the-password@127.0.0.1:${port}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(output, /Cannot use MySQL at 127\.0\.0\.1:\d+ \(MYSQL_SERVICE_URL\), which the mysql offering uses/);
    assert.equal(output.includes('not-the-password'), false, 'the admin password is not printed');
  });
});
