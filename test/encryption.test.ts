/**
 * Encryption at rest: what the state database holds (a pg_dump shows no password, uri or
 * parameter value), the keys Depot starts with, the migration that seals existing rows, and
 * `npm run rotate-keys`, alone and beside live traffic.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig, withDatabase } from '../broker/config.js';
import { loadOrCreateKeyFile, parseEncryptionKeys } from '../broker/crypto/encryption-keys.js';
import { rotateKeys } from '../broker/crypto/key-rotation.js';
import { StateCipher, UndecryptableValueError, UnknownKeyError } from '../broker/crypto/state-cipher.js';
import { migrate, readMigrations } from '../broker/db/migrate.js';
import { staleRows } from '../broker/db/reseal.js';
import { SEALED_COLUMNS, type SealedTable } from '../broker/db/sealed-columns.js';
import { ConfigError } from '../runtime/config.js';
import {
  ADMIN_URL,
  ASYNC,
  bindBody,
  bindingPath,
  deleteQuery,
  dropDatabase,
  instancePath,
  operationOf,
  osb,
  provisionBody,
  REDIS_URL,
  startDepot,
  waitForOperation,
  type TestDepot,
} from './helpers.js';

const run = promisify(execFile);
const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const OK_PLAN_ID = '0e570000-7e57-4000-8000-000000000001';
const TABLES = Object.keys(SEALED_COLUMNS) as SealedTable[];

const newKey = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const keysOf = (spec: string) => parseEncryptionKeys(spec, 'ENCRYPTION_KEYS');

describe('StateCipher', () => {
  const [k1, k2] = [keysOf(newKey('k1'))[0]!, keysOf(newKey('k2'))[0]!];

  it('opens what it sealed, names the key in the envelope, and seals the same value differently each time', () => {
    const cipher = new StateCipher([k1]);
    const value = { password: 'pw-1', nested: [1, { a: 'ü' }] };
    const sealed = cipher.seal(value, 'service_bindings.response:b1');
    assert.match(sealed, /^depot1:k1:[A-Za-z0-9+/]+=*$/);
    assert.ok(!sealed.includes('pw-1'));
    assert.deepEqual(cipher.open(sealed, 'service_bindings.response:b1'), value);
    assert.notEqual(cipher.seal(value, 'service_bindings.response:b1'), sealed);
  });

  it('refuses a value moved to another row or column, and names a key it lacks', () => {
    const cipher = new StateCipher([k1]);
    const sealed = cipher.seal({ password: 'pw' }, 'service_bindings.response:b1');
    assert.throws(() => cipher.open(sealed, 'service_bindings.response:b2'), UndecryptableValueError);
    assert.throws(() => cipher.open(sealed, 'service_bindings.parameters:b1'), UndecryptableValueError);
    assert.throws(
      () => new StateCipher([k2]).open(sealed, 'service_bindings.response:b1'),
      (error: unknown) => error instanceof UnknownKeyError && error.keyId === 'k1' && /"k1"/.test(error.message),
    );
  });

  it('the first key seals, every key opens', () => {
    const old = new StateCipher([k1]).seal({ a: 1 }, 'x:1');
    const both = new StateCipher([k2, k1]);
    assert.deepEqual(both.open(old, 'x:1'), { a: 1 });
    assert.equal(StateCipher.keyIdOf(both.seal({ a: 1 }, 'x:1')), 'k2');
    assert.deepEqual(both.open('{"legacy":true}', 'x:1'), { legacy: true }, 'a plaintext value from before');
  });
});

describe('ENCRYPTION_KEYS and the key file', () => {
  it('refuses a bad list, naming the variable and the entry but never a key', () => {
    const short = randomBytes(16).toString('base64');
    for (const [value, message] of [
      [`k1:${short}`, /ENCRYPTION_KEYS entry 1 \(key "k1"\) must be 32 bytes/],
      [`${newKey('k1')},bad id:${short}`, /ENCRYPTION_KEYS entry 2 must be id:base64-key/],
      [`${newKey('k1')},${newKey('k1')}`, /ENCRYPTION_KEYS names key "k1" twice/],
      [' , ', /ENCRYPTION_KEYS holds no key/],
    ] as const) {
      assert.throws(
        () => loadConfig({ ENCRYPTION_KEYS: value }),
        (error: unknown) =>
          error instanceof ConfigError && message.test(error.message) && !error.message.includes(short),
      );
    }
  });

  it('a first start makes one key file, mode 0600 in a 0700 directory, that later starts read', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'depot-keys-'));
    const file = path.join(dir, 'state', 'depot', 'encryption-keys');
    const made = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateKeyFile(file)));
    assert.equal(made.filter((m) => m.created).length, 1, 'exactly one of four racing starts made the file');
    const ids = new Set(made.map((m) => `${m.keys[0]!.id}:${m.keys[0]!.key.toString('base64')}`));
    assert.equal(ids.size, 1, 'all four use the same key');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
    const again = await loadOrCreateKeyFile(file);
    assert.equal(again.created, false);
    assert.deepEqual(again.keys, made[0]!.keys);
  });

  it('refuses a key file that others may read', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'depot-keys-')), 'encryption-keys');
    await writeFile(file, `${newKey('local-1')}\n`, { mode: 0o644 });
    await assert.rejects(loadOrCreateKeyFile(file), /ENCRYPTION_KEY_FILE .* may be read by others \(mode 644\)/);
  });
});

/** Every sealed column of every row, as stored. */
async function storedValues(target: TestDepot): Promise<string[]> {
  const values: string[] = [];
  for (const table of TABLES) {
    const { rows } = await target.depot.pool.query<Record<string, string | null>>(
      `select ${SEALED_COLUMNS[table].join(', ')} from ${table}`,
    );
    for (const row of rows) for (const value of Object.values(row)) if (value !== null) values.push(value);
  }
  return values;
}

async function pgDump(target: TestDepot): Promise<string> {
  const { stdout } = await run('pg_dump', ['--no-owner', target.depot.config.databaseUrl], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

describe('encryption at rest: a pg_dump of the state database', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('encryption-dump');
  });
  after(() => depot.close());

  it('holds neither the bound password nor any parameter, context or identity value, bound or after', async () => {
    const [instanceId, bindingId] = [randomUUID(), randomUUID()];
    const marker = `ctx-${randomBytes(6).toString('hex')}`;
    const user = `user-${randomBytes(6).toString('hex')}`;
    const identity = Buffer.from(JSON.stringify({ user_id: user })).toString('base64');
    const created = await osb(depot)
      .put(`${instancePath(instanceId)}${ASYNC}`, {
        ...provisionBody({ parameters: { extensions: ['citext'] } }),
        context: { platform: 'cloudfoundry', instance_name: marker, organization_name: `${marker}-org` },
      })
      .set('X-Broker-API-Originating-Identity', `cloudfoundry ${identity}`)
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operationOf(created))).state, 'succeeded');
    const bound = await osb(depot).put(bindingPath(instanceId, bindingId), bindBody()).expect(201);
    const credentials = (bound.body as { credentials: Record<string, string> }).credentials;
    assert.ok(credentials.password && credentials.uri);
    const fetched = await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
    assert.deepEqual((fetched.body as { credentials: unknown }).credentials, credentials);

    const secrets = [credentials.password, credentials.uri, credentials.jdbcUrl!, marker, user, 'citext'];
    const values = await storedValues(depot);
    assert.ok(values.length >= 8, `sealed values were stored (${values.length})`);
    for (const value of values) assert.match(value, /^depot1:test-[0-9a-f]+:/, 'every sealed column is sealed');
    const whileBound = await pgDump(depot);
    assert.match(whileBound, /service_bindings/, 'the dump has the tables');
    for (const secret of secrets) assert.ok(!whileBound.includes(secret), `the dump holds ${secret.slice(0, 12)}…`);

    await osb(depot)
      .delete(`${bindingPath(instanceId, bindingId)}?${deleteQuery()}`)
      .expect(200);
    const gone = await osb(depot)
      .delete(`${instancePath(instanceId)}${ASYNC}&${deleteQuery()}`)
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(instanceId), operationOf(gone))).state, 'succeeded');
    const afterwards = await pgDump(depot);
    for (const secret of secrets) assert.ok(!afterwards.includes(secret), `the dump holds ${secret.slice(0, 12)}…`);
  });
});

/** A Depot with the test offering on a state database that outlives it. */
function startOn(database: string, keys: string, name = database) {
  return startDepot(name, {
    env: { DATABASE_URL: withDatabase(ADMIN_URL, database), ENCRYPTION_KEYS: keys, TEST_OFFERING: 'enabled' },
  });
}

/** A bound binding of the test offering whose credentials are `credentials`. */
async function bindTest(target: TestDepot, credentials: Record<string, string>) {
  const [instanceId, bindingId] = [randomUUID(), randomUUID()];
  const body = { service_id: TEST_SERVICE_ID, plan_id: OK_PLAN_ID };
  const guids = { organization_guid: 'org-guid', space_guid: 'space-guid' };
  const created = await osb(target)
    .put(`${instancePath(instanceId)}${ASYNC}`, { ...body, ...guids })
    .expect(202);
  const last = await waitForOperation(target, instancePath(instanceId), operationOf(created));
  if (last.state !== 'succeeded') throw new Error(`provision ${last.state}: ${last.description}`);
  await osb(target)
    .put(bindingPath(instanceId, bindingId), { ...body, parameters: { credentials } })
    .expect(201);
  return bindingPath(instanceId, bindingId);
}

describe('encryption keys at start, and npm run rotate-keys', () => {
  const database = 'depot_test_encryption_keys';
  const [k1, k2] = [newKey('k1'), newKey('k2')];
  let binding: string;
  let body: unknown;
  before(async () => {
    await dropDatabase(database);
    const first = await startOn(database, k1);
    try {
      binding = await bindTest(first, { password: 'first-key-pw' });
      body = (await osb(first).get(binding).expect(200)).body;
    } finally {
      await first.close();
    }
  });
  after(() => dropDatabase(database));

  it('refuses to start without a key that values are encrypted with, naming it', async () => {
    await assert.rejects(startOn(database, k2), /values encrypted with key "k1", which ENCRYPTION_KEYS lacks/);
  });

  it('refuses a key of the same id but other bytes, naming the id', async () => {
    await assert.rejects(startOn(database, newKey('k1')), /key "k1" is not the key of that id that encrypted/);
  });

  it('with the new key first: old values open, new ones are sealed with the new key', async () => {
    const depot = await startOn(database, `${k2},${k1}`);
    try {
      assert.deepEqual((await osb(depot).get(binding).expect(200)).body, body);
      await bindTest(depot, { password: 'second-key-pw' });
      const ids = (await storedValues(depot)).map((v) => StateCipher.keyIdOf(v));
      assert.ok(ids.includes('k1') && ids.includes('k2'), `values under both keys: ${[...new Set(ids)].join(',')}`);
    } finally {
      await depot.close();
    }
  });

  it('rotation stops part-way, two runs at once finish it, and the old key may then leave', async () => {
    const pool = new pg.Pool({ connectionString: withDatabase(ADMIN_URL, database), max: 4 });
    const cipher = new StateCipher(keysOf(`${k2},${k1}`));
    try {
      const stopped = rotateKeys(pool, cipher, {
        batchSize: 1,
        onProgress: () => {
          throw new Error('killed part-way');
        },
      });
      await assert.rejects(stopped, /killed part-way/);
      const stale = await Promise.all(TABLES.map((t) => staleRows(pool, cipher, t)));
      assert.ok(
        stale.some((n) => n > 0),
        'values were left under k1',
      );
      const runs = await Promise.all([1, 2].map(() => rotateKeys(pool, cipher, { batchSize: 2 })));
      assert.deepEqual(
        runs.map((r) => r.remaining),
        [0, 0],
      );
      assert.deepEqual(runs.flatMap((r) => r.retired).sort(), ['k1']);
      assert.deepEqual(await Promise.all(TABLES.map((t) => staleRows(pool, cipher, t))), [0, 0, 0]);
    } finally {
      await pool.end();
    }
    const depot = await startOn(database, k2);
    try {
      assert.deepEqual((await osb(depot).get(binding).expect(200)).body, body, 'the binding reads the same');
      assert.ok((await storedValues(depot)).every((v) => StateCipher.keyIdOf(v) === 'k2'));
    } finally {
      await depot.close();
    }
  });
});

describe('migration 004: the rows that exist are sealed', () => {
  const database = 'depot_test_encryption_migration';
  after(() => dropDatabase(database));

  it('plaintext rows of an older Depot are sealed at the upgrade and read as before', async () => {
    await dropDatabase(database);
    await run('createdb', ['-h', '127.0.0.1', '-U', 'postgres', database]).catch(async () => {
      const admin = new pg.Client({ connectionString: ADMIN_URL });
      await admin.connect();
      await admin.query(`create database ${database}`).finally(() => admin.end());
    });
    const pool = new pg.Pool({ connectionString: withDatabase(ADMIN_URL, database) });
    const [instanceId, bindingId] = [randomUUID(), randomUUID()];
    const response = { credentials: { username: 'legacy', password: 'legacy-pw-in-plaintext' } };
    try {
      await migrate(pool, { migrations: (await readMigrations()).filter((m) => m.version <= 3) });
      await pool.query(
        `insert into service_instances (id, service_id, plan_id, context, parameters, state)
         values ($1, $2, $3, '{"platform":"cloudfoundry","instance_name":"legacy-name"}', '{}', 'provisioned')`,
        [instanceId, TEST_SERVICE_ID, OK_PLAN_ID],
      );
      await pool.query(
        `insert into service_bindings (id, instance_id, service_id, plan_id, context, parameters, response, state)
         values ($1, $2, $3, $4, '{}', '{"credentials":{"password":"legacy-pw-in-plaintext"}}', $5, 'bound')`,
        [bindingId, instanceId, TEST_SERVICE_ID, OK_PLAN_ID, response],
      );
      await pool.query(
        `insert into operations (id, instance_id, type, state, request, originating_identity)
         values ($1, $2, 'provision', 'succeeded', '{}', '{"platform":"cloudfoundry","value":{"user_id":"u9"}}')`,
        [randomUUID(), instanceId],
      );
    } finally {
      await pool.end();
    }
    const depot = await startOn(database, newKey('k1'));
    try {
      const values = await storedValues(depot);
      assert.equal(values.length, 7, '2 of the instance, 3 of the binding (no bind_resource), 2 of the operation');
      assert.ok(
        values.every((v) => v.startsWith('depot1:k1:')),
        'every value is sealed',
      );
      assert.ok(!(await pgDump(depot)).includes('legacy-pw-in-plaintext'));
      const fetched = await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
      assert.deepEqual((fetched.body as { credentials: unknown }).credentials, response.credentials);
      const instance = await osb(depot).get(instancePath(instanceId)).expect(200);
      assert.deepEqual((instance.body as { parameters: unknown }).parameters, {});
    } finally {
      await depot.close();
    }
  });
});

describe('npm run rotate-keys beside live traffic', () => {
  const database = 'depot_test_encryption_load';
  const [k1, k2] = [newKey('k1'), newKey('k2')];
  after(() => dropDatabase(database));

  it('re-encrypts every row with a progress line while requests go on, and no request fails', async (t) => {
    await dropDatabase(database);
    const bindings = new Map<string, unknown>();
    const first = await startOn(database, k1, 'encryption-load-1');
    try {
      for (let i = 0; i < 150; i++) {
        const binding = await bindTest(first, { password: `pw-${i}` });
        bindings.set(binding, (await osb(first).get(binding).expect(200)).body);
      }
    } finally {
      await first.close();
    }

    const depot = await startOn(database, `${k2},${k1}`, 'encryption-load-2');
    const failures: string[] = [];
    let requests = 0;
    let stop = false;
    const load = async () => {
      const paths = [...bindings.keys()];
      while (!stop) {
        const binding = paths[requests % paths.length]!;
        const fetched = await osb(depot).get(binding);
        requests++;
        if (fetched.status !== 200) failures.push(`GET binding ${fetched.status}`);
        else if (JSON.stringify(fetched.body) !== JSON.stringify(bindings.get(binding))) failures.push('changed');
        const made = await bindTest(depot, { password: `during-${requests}` }).catch((e: Error) => e.message);
        requests += 3;
        if (!made.startsWith('/v2/')) failures.push(`bind: ${made}`);
      }
    };
    try {
      const started = Date.now();
      const loads = [load(), load(), load()];
      const rotation = spawn(process.execPath, ['--import', 'tsx', 'broker/rotate-keys.ts'], {
        env: {
          PATH: process.env.PATH ?? '',
          DATABASE_URL: depot.depot.config.databaseUrl,
          REDIS_URL,
          ENCRYPTION_KEYS: `${k2},${k1}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      rotation.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      rotation.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => rotation.on('exit', resolve));
      const seconds = (Date.now() - started) / 1000;
      stop = true;
      await Promise.all(loads);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /rotate-keys: service_bindings: \d+\/\d+ rows re-encrypted/);
      assert.match(stdout, /rotate-keys: done, \d+ rows re-encrypted, every value is under "k2"; retired "k1"/);
      assert.ok(!stdout.includes(k2.split(':')[1]!) && !stderr.includes(k2.split(':')[1]!), 'no key is printed');
      assert.deepEqual(failures, []);
      assert.ok((await storedValues(depot)).every((v) => StateCipher.keyIdOf(v) === 'k2'));
      const resealed = Number(/done, (\d+) rows/.exec(stdout)![1]);
      t.diagnostic(`rotated ${resealed} rows in ${seconds.toFixed(1)} s beside ${requests} requests, 0 failed`);
    } finally {
      stop = true;
      await depot.close();
    }
  });
});
