import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { loadConfig, withDatabase } from '../broker/config.js';
import { ConfigError } from '../runtime/config.js';
import { createDepot, StartupError, type Depot } from '../broker/depot.js';
import { readMigrations } from '../broker/db/migrate.js';
import { databaseName } from '../broker/db/pool.js';
import { place } from '../broker/db/sealed-columns.js';
import { createLogger } from '../runtime/logger.js';
import {
  operationOf,
  ADMIN_URL,
  API_VERSION,
  REDIS_URL,
  adminQuery,
  bindBody,
  bindingPath,
  deprovisionInstance,
  instancePath,
  osb,
  provisionBody,
  dropDatabase,
  forgetQueue,
  freePort,
  startDepot,
  startRedisServer,
  waitForOperation,
  type TestDepot,
  ENCRYPTION_KEYS,
} from './helpers.js';
import { npmScriptNodeArgs } from './npm-script.js';

/** An instance row's context and parameters, both `{}`, sealed as the broker stores them. */
const sealedEmpty = (depot: Depot, id: string) => [
  depot.cipher.seal({}, place('service_instances', 'context', id)),
  depot.cipher.seal({}, place('service_instances', 'parameters', id)),
];

describe('configuration', () => {
  const fails = (env: Record<string, string>, variable: RegExp) =>
    assert.throws(
      () => loadConfig(env),
      (error: Error) => error instanceof ConfigError && variable.test(error.message),
    );

  it('has working defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 8080);
    assert.equal(config.databaseUrl, 'postgresql://postgres:postgres@127.0.0.1:5432/depot');
    assert.equal(config.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(config.postgresServiceUrl, 'postgresql://postgres:postgres@127.0.0.1:5432/postgres');
    assert.equal(config.redisServiceUrl, 'redis://127.0.0.1:6379');
    assert.equal(config.generatedPassword, true);
    assert.ok(config.brokerPassword.length >= 20);
  });

  it('names the variable at fault', () => {
    fails({ PORT: 'eighty' }, /^PORT/);
    fails({ PORT: '70000' }, /^PORT/);
    fails({ METRICS_PORT: 'ninety' }, /^METRICS_PORT/);
    fails({ METRICS_HOST: 'not a host!' }, /^METRICS_HOST/);
    fails({ DATABASE_URL: 'not a url' }, /^DATABASE_URL/);
    fails({ DATABASE_URL: 'mysql://localhost/depot' }, /^DATABASE_URL/);
    fails({ REDIS_URL: 'http://localhost' }, /^REDIS_URL/);
    fails({ BROKER_USERNAME: 'admin' }, /^BROKER_PASSWORD/);
    fails({ BROKER_PASSWORD: 'secret' }, /^BROKER_USERNAME/);
    fails({ LOG_LEVEL: 'loud' }, /^LOG_LEVEL/);
    fails({ WORKER_CONCURRENCY: '0' }, /^WORKER_CONCURRENCY/);
    fails({ REDIS_SERVICE_URL: 'postgresql://localhost' }, /^REDIS_SERVICE_URL/);
    fails({ REDIS_SERVICE_URL: 'redis://localhost:6379/3' }, /^REDIS_SERVICE_URL must name database 0/);
    fails({ REDIS_SERVICE_PUBLIC_PORT: '0' }, /^REDIS_SERVICE_PUBLIC_PORT/);
  });

  it("REDIS_SERVICE_URL defaults to REDIS_URL's server: its address and credentials, database 0", () => {
    const config = loadConfig({ REDIS_URL: 'rediss://queue:pw@redis.internal:6380/2' });
    assert.equal(config.redisServiceUrl, 'rediss://queue:pw@redis.internal:6380');
    assert.equal(loadConfig({ REDIS_SERVICE_URL: 'redis://cache:6379/0' }).redisServiceUrl, 'redis://cache:6379/0');
  });
});

describe('start-up', () => {
  const logger = createLogger('silent');

  it('creates the state database when DATABASE_URL names one that does not exist, and migrates it', async () => {
    const database = `depot_test_created_${randomUUID().slice(0, 8)}`;
    await dropDatabase(database);
    const config = loadConfig({
      ENCRYPTION_KEYS,
      DATABASE_URL: withDatabase(ADMIN_URL, database),
      REDIS_URL,
      POSTGRES_SERVICE_URL: ADMIN_URL,
      QUEUE_PREFIX: `depot-test-${database}`,
    });
    const depot = await createDepot(config, { role: 'api', logger });
    try {
      const { rows } = await depot.pool.query<{ name: string }>('select name from depot_migrations order by version');
      assert.deepEqual(
        rows.map((r) => r.name),
        (await readMigrations()).map((m) => m.name),
      );
      assert.ok(rows.length >= 2);
      // The state holds credentials: a role Depot hands out (or any other) cannot connect to it.
      await adminQuery('drop role if exists depot_test_probe');
      await adminQuery('create role depot_test_probe login');
      const [privilege] = await adminQuery<{ connect: boolean }>(
        `select has_database_privilege('depot_test_probe', $1, 'connect') as connect`,
        [database],
      );
      await adminQuery('drop role depot_test_probe');
      assert.equal(privilege!.connect, false);
    } finally {
      await depot.queue.obliterate();
      await depot.close();
      await dropDatabase(database);
    }
  });

  it('says which server it cannot reach, where, and how to start it', async () => {
    const unreachableRedis = loadConfig({
      ENCRYPTION_KEYS,
      REDIS_URL: 'redis://127.0.0.1:1',
      DATABASE_URL: withDatabase(ADMIN_URL, 'depot_test_startup'),
    });
    await assert.rejects(createDepot(unreachableRedis, { role: 'all', logger }), (error: Error) => {
      assert.ok(error instanceof StartupError);
      assert.match(error.message, /Cannot reach Redis at 127\.0\.0\.1:1 \(REDIS_URL\)/);
      assert.match(error.message, /redis-server/);
      return true;
    });
    const unreachablePostgres = loadConfig({
      ENCRYPTION_KEYS,
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/depot',
    });
    await assert.rejects(createDepot(unreachablePostgres, { role: 'all', logger }), (error: Error) => {
      assert.ok(error instanceof StartupError);
      assert.match(error.message, /Cannot reach PostgreSQL at 127\.0\.0\.1:1 \(DATABASE_URL\)/);
      return true;
    });
    const unreachableRedisService = loadConfig({
      ENCRYPTION_KEYS,
      REDIS_SERVICE_URL: 'redis://127.0.0.1:1',
      DATABASE_URL: withDatabase(ADMIN_URL, 'depot_test_startup'),
      POSTGRES_SERVICE_URL: ADMIN_URL,
    });
    await assert.rejects(createDepot(unreachableRedisService, { role: 'all', logger }), (error: Error) => {
      assert.ok(error instanceof StartupError);
      assert.match(
        error.message,
        /^Cannot use Redis at 127\.0\.0\.1:1 \(REDIS_SERVICE_URL\), which the redis offering uses/,
      );
      return true;
    });
    await dropDatabase('depot_test_startup');
  });

  it('refuses a catalog that drops a plan instances still use, naming it', async () => {
    const first = await startDepot('catalog-in-use');
    const databaseUrl = first.depot.config.databaseUrl;
    await first.depot.pool.query(
      `insert into service_instances (id, service_id, plan_id, context, parameters, state)
       values ('legacy', $1, 'retired-plan', $2, $3, 'provisioned')`,
      ['3f0d6c9e-5b1a-4c57-9a34-2f6b8d0e7a11', ...sealedEmpty(first.depot, 'legacy')],
    );
    await first.depot.queue.obliterate();
    await first.depot.close();
    const config = loadConfig({
      ENCRYPTION_KEYS,
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      POSTGRES_SERVICE_URL: ADMIN_URL,
      QUEUE_PREFIX: 'depot-test-catalog-in-use',
    });
    await assert.rejects(createDepot(config, { role: 'api', logger }), (error: Error) => {
      assert.equal(error.name, 'CatalogError');
      assert.match(error.message, /plan retired-plan \(1 instance\(s\)\)/);
      return true;
    });
    await dropDatabase(databaseName(databaseUrl));
    await forgetQueue('depot-test-catalog-in-use');
  });

  it('a worker serves /healthz and /readyz on PORT, /metrics on its own listener, and no OSB API', async () => {
    const api = await startDepot('worker-endpoints', { role: 'api' });
    const worker = await startDepot('worker-endpoints-worker', { role: 'worker', shareWith: api });
    try {
      await request(worker.baseUrl).get('/healthz').expect(200, { status: 'ok' });
      await request(worker.baseUrl).get('/readyz').expect(200, { status: 'ready' });
      await request(worker.baseUrl).get('/metrics').expect(404);
      const metrics = await request(worker.metricsUrl).get('/metrics').expect(200);
      assert.match(metrics.text, /depot_operations_finished_total/);
      await request(worker.baseUrl).get('/v2/catalog').set('X-Broker-API-Version', API_VERSION).expect(404);
    } finally {
      await worker.close();
      await api.close();
    }
  });

  /** Runs `npm start`'s command with this environment; resolves when `until` matches or it exits. */
  function runDepot(env: Record<string, string>, until: RegExp) {
    const child = spawn(process.execPath, npmScriptNodeArgs('start'), {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ENCRYPTION_KEYS, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const check = () => {
        if (until.test(stdout + stderr)) resolve({ code: null, stdout, stderr });
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    return { child, done };
  }

  it('exits non-zero with the message when Redis is down', async () => {
    const { done } = runDepot(
      { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: withDatabase(ADMIN_URL, 'depot_test_startup') },
      /^$/,
    );
    const { code, stderr } = await done;
    assert.equal(code, 1);
    assert.match(stderr, /Cannot reach Redis at 127\.0\.0\.1:1 \(REDIS_URL\)/);
    await dropDatabase('depot_test_startup');
  });

  it('exits with status 2 and names the variable for a bad configuration', async () => {
    const { done } = runDepot({ PORT: 'eighty' }, /^$/);
    const { code, stderr } = await done;
    assert.equal(code, 2);
    assert.match(stderr, /PORT must be a whole number/);
  });

  it('with nothing configured: makes a password and a key file, says so once, and requires the password', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const database = 'depot_test_generated';
    await dropDatabase(database);
    const stateHome = await mkdtemp(path.join(tmpdir(), 'depot-state-'));
    const keyFile = path.join(stateHome, 'depot', 'encryption-keys');
    const { child, done } = runDepot(
      {
        PORT: String(port),
        DATABASE_URL: withDatabase(ADMIN_URL, database),
        REDIS_URL,
        QUEUE_PREFIX: `depot-test-${database}`,
        METRICS_PORT: String(metricsPort),
        XDG_STATE_HOME: stateHome,
        ENCRYPTION_KEYS: '',
      },
      /metrics listening/,
    );
    try {
      const { stdout, stderr } = await done;
      // The key file: outside the checkout, mode 0600, named once on stderr with the advice for production.
      assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
      const notices = stderr.split(keyFile).length - 1;
      assert.equal(notices, 1, stderr);
      assert.match(stderr, /created now, mode 0600\), because ENCRYPTION_KEYS is not set/);
      assert.match(stderr, /In production, pass ENCRYPTION_KEYS/);
      const key = (await readFile(keyFile, 'utf8')).trim().split(':')[1]!;
      assert.ok(!stdout.includes(key) && !stderr.includes(key), 'the key itself is never printed');
      const match = /password: (\S+)/.exec(stderr);
      assert.ok(match, stderr);
      const password = match[1]!;
      assert.equal((stderr.match(new RegExp(password, 'g')) ?? []).length, 1);
      assert.equal(stdout.includes(password), false); // never in the JSON log
      const base = `http://127.0.0.1:${port}`;
      await request(base).get('/v2/catalog').set('X-Broker-API-Version', API_VERSION).expect(401);
      await request(base)
        .get('/v2/catalog')
        .auth('depot', password)
        .set('X-Broker-API-Version', API_VERSION)
        .expect(200);
      // The metrics have a listener of their own, on loopback by default; the OSB port has none.
      await request(base).get('/metrics').expect(404);
      const metrics = await request(`http://127.0.0.1:${metricsPort}`).get('/metrics').expect(200);
      assert.match(metrics.text, /depot_http_request_duration_seconds/);
      const listening = stdout.split('\n').find((line) => line.includes('"msg":"metrics listening"'));
      assert.deepEqual(JSON.parse(listening!) as { port: number; host: string }, {
        ...(JSON.parse(listening!) as object),
        port: metricsPort,
        host: '127.0.0.1',
      });
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      await dropDatabase(database);
      await forgetQueue(`depot-test-${database}`);
    }
  });
});

describe('observability', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('observability');
  });
  after(async () => depot.close());

  it('/healthz and /readyz answer without credentials', async () => {
    await request(depot.baseUrl).get('/healthz').expect(200, { status: 'ok' });
    await request(depot.baseUrl).get('/readyz').expect(200, { status: 'ready' });
  });

  it('logs carry request and operation ids, metrics count requests and operations, no secret is logged', async () => {
    const requestId = `req-${randomUUID()}`;
    const id = randomUUID();
    const res = await osb(depot)
      .put(`${instancePath(id)}?accepts_incomplete=true`, provisionBody({ parameters: { extensions: ['citext'] } }))
      .set('X-Broker-API-Request-Identity', requestId)
      .expect(202);
    const operation = operationOf(res);
    await waitForOperation(depot, instancePath(id), operation);
    const bind = await osb(depot).put(bindingPath(id, randomUUID()), bindBody()).expect(201);
    const { password, uri } = (bind.body as { credentials: { password: string; uri: string } }).credentials;

    const lines = depot.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requestLine = lines.find((l) => l.msg === 'request' && l.requestId === requestId);
    assert.equal(requestLine?.operationId, operation);
    const workerLine = lines.find((l) => l.msg === 'operation finished' && l.operationId === operation);
    assert.equal(workerLine?.requestId, requestId);
    const everything = depot.logs.join('\n');
    assert.equal(everything.includes(password), false);
    assert.equal(everything.includes(uri), false);
    assert.equal(everything.includes('citext'), false); // parameters are not logged either

    const metrics = await request(depot.metricsUrl).get('/metrics').expect(200);
    assert.match(
      metrics.text,
      new RegExp(
        'depot_http_request_duration_seconds_count' +
          String.raw`\{method="PUT",route="/v2/service_instances/:instance_id",status="202"\} 1`,
      ),
    );
    assert.match(metrics.text, /depot_operations_finished_total\{type="provision",state="succeeded"\} 1/);
    assert.match(metrics.text, /depot_operations_finished_total\{type="bind",state="succeeded"\} 1/);

    await deprovisionInstance(depot, id);
  });
});

describe('first contact: only services whose server Depot can use', () => {
  const REDIS_SERVICE = 'b6c72be6-78a3-482f-8ac4-ebb6d284d371';
  let stock: { url: string; stop(): void };
  const database = 'depot_test_first_contact';
  const prefix = `depot-test-first-contact-${randomUUID().slice(0, 8)}`;
  // A newcomer's machine: one stock Redis (anyone may log in as `default`) for the queue and,
  // by default, for the redis offering.
  const env = () => ({
    DATABASE_URL: withDatabase(ADMIN_URL, database),
    REDIS_URL: stock.url,
    POSTGRES_SERVICE_URL: ADMIN_URL,
    QUEUE_PREFIX: prefix,
    ENCRYPTION_KEYS,
    BROKER_USERNAME: 'admin',
    BROKER_PASSWORD: 'secret',
  });
  before(async () => {
    stock = await startRedisServer(false);
    await dropDatabase(database);
  });
  after(async () => {
    await dropDatabase(database);
    stock.stop();
  });

  it('leaves redis out of the catalog on a stock Redis, and one line names it and says how to offer it', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const depot = await createDepot(loadConfig(env()), { role: 'api', logger: createLogger('info', 'depot', sink) });
    try {
      const res = await request(depot.server)
        .get('/v2/catalog')
        .auth('admin', 'secret')
        .set('X-Broker-API-Version', API_VERSION);
      assert.equal(res.status, 200);
      // The machine's RabbitMQ answers at the default RABBITMQ_SERVICE_URL: rabbitmq is offered.
      assert.deepEqual(
        (res.body as { services: Array<{ name: string }> }).services.map((s) => s.name),
        // The machine's MariaDB and RabbitMQ answer at their defaults: mysql and rabbitmq are offered.
        ['postgresql', 'mysql', 'rabbitmq'],
      );
      const notices = lines.filter((line) => line.includes('Not offering'));
      assert.equal(notices.length, 1);
      const { msg, level } = JSON.parse(notices[0]!) as { msg: string; level: number };
      assert.equal(level, 40); // warn
      assert.match(msg, /^Not offering redis\. Cannot use Redis at 127\.0\.0\.1:\d+ \(REDIS_SERVICE_URL\)/);
      assert.match(msg, /lets anyone log in as "default"/);
      assert.match(msg, /To offer it, set the variable/);
    } finally {
      await depot.queue.obliterate();
      await depot.close();
    }
  });

  it('a REDIS_SERVICE_URL set to that same stock Redis stops Depot at start, naming it', async () => {
    const config = loadConfig({ ...env(), REDIS_SERVICE_URL: stock.url });
    await assert.rejects(createDepot(config, { role: 'api', logger: createLogger('silent') }), (error: Error) => {
      assert.ok(error instanceof StartupError);
      assert.match(
        error.message,
        /^Cannot use Redis at 127\.0\.0\.1:\d+ \(REDIS_SERVICE_URL\), which the redis offering uses/,
      );
      assert.match(error.message, /lets anyone log in as "default"/);
      return true;
    });
  });

  it('a defaulted server that instances already live on stops Depot instead of hiding them', async () => {
    const depot = await createDepot(loadConfig(env()), { role: 'api', logger: createLogger('silent') });
    await depot.pool.query(
      `insert into service_instances (id, service_id, plan_id, context, parameters, state)
       values ('cache', $1, $2, $3, $4, 'provisioned')`,
      [REDIS_SERVICE, '3832238e-6b24-4211-8d02-20fa9249591a', ...sealedEmpty(depot, 'cache')],
    );
    await depot.close();
    await assert.rejects(
      createDepot(loadConfig(env()), { role: 'api', logger: createLogger('silent') }),
      (error: Error) => {
        assert.ok(error instanceof StartupError);
        assert.match(error.message, /^Cannot use Redis at .* \(REDIS_SERVICE_URL\), which the redis offering uses/);
        return true;
      },
    );
  });
});
