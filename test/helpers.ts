/**
 * Test harness: a real Depot (real Postgres, real Redis, real BullMQ workers, real
 * provisioning) per test file, each with its own state database and queue prefix.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CATALOG_FILE } from '../broker/catalog/catalog-file.js';
import { loadConfig, withDatabase, type BrokerConfig } from '../broker/config.js';
import { createDepot, type Depot, type Role } from '../broker/depot.js';
import { databaseName } from '../broker/db/pool.js';
import { place, SEALED_COLUMNS, type SealedTable } from '../broker/db/sealed-columns.js';
import { OperationQueue } from '../broker/jobs/operation-queue.js';
import { ConfigError } from '../runtime/config.js';
import { createLogger } from '../runtime/logger.js';
import { redisOptions } from '../broker/redis.js';
import type { JsonObject } from '../osb/index.js';

export const SERVICE_ID = '3f0d6c9e-5b1a-4c57-9a34-2f6b8d0e7a11';
export const SMALL_PLAN_ID = '9c5b7d2a-1e4f-4a8b-b6c3-7d0e2f9a5b12';
export const STANDARD_PLAN_ID = '4e8a1f3c-7b2d-4c6e-9f05-8a3b1c7d2e13';
export const REDIS_SERVICE_ID = 'b6c72be6-78a3-482f-8ac4-ebb6d284d371';
export const REDIS_PLAN_ID = '3832238e-6b24-4211-8d02-20fa9249591a';
export const USERNAME = 'broker-user';
export const PASSWORD = 'broker-password-for-tests';
/** The state's encryption key for this test process's Depots (ENCRYPTION_KEYS), so no key file is made. */
export const ENCRYPTION_KEYS = `test-${randomBytes(3).toString('hex')}:${randomBytes(32).toString('base64')}`;
export const API_VERSION = '2.17';

/** The admin connection the tests use to look at what Depot did on the server. */
export const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres:postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Starts a redis-server of the test process's own on a free loopback port (stopped when the
 * process exits). `protectedDefault`: as the redis offering requires, `default` is off and an
 * admin user `depot-admin` has a random password; else a stock server, open to anyone.
 * Returns the URL to reach it (with the admin's credentials).
 */
export interface TestRedisServer {
  url: string;
  stop(): void;
  /** Stops the server and starts it again on the same port: what it held in memory (ACL users) is gone. */
  restart(): Promise<void>;
}

export async function startRedisServer(protectedDefault: boolean): Promise<TestRedisServer> {
  const port = await freePort();
  const password = randomBytes(16).toString('hex');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (protectedDefault)
    args.push('--user', 'default', 'off', '--user', 'depot-admin', 'on', `>${password}`, '~*', '&*', '+@all');
  const url = protectedDefault ? `redis://depot-admin:${password}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`;
  let server = spawn('redis-server', args, { stdio: 'ignore' });
  server.unref(); // it must not keep the test process alive; it is stopped when that exits
  const stop = () => server.kill();
  process.once('exit', stop);
  const answering = async () => {
    for (let attempt = 0; ; attempt++) {
      const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on('error', () => undefined);
      const answered = await client.connect().then(
        () => client.ping(),
        () => undefined,
      );
      client.disconnect();
      if (answered === 'PONG') return;
      if (attempt > 100) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await answering();
  return {
    url,
    stop,
    async restart() {
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((resolve) => server.once('exit', resolve));
        server.kill();
        await exited;
      }
      server = spawn('redis-server', args, { stdio: 'ignore' });
      server.unref();
      await answering();
    },
  };
}

/**
 * A Redis connection as an application opens it from a binding's uri: no ready check (it runs
 * INFO, which bindings may not), no retries; it connects on its first command, and its
 * failures show up on the commands.
 */
export function bindingRedis(uri: string): Redis {
  const client = new Redis(uri, {
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    lazyConnect: true,
  });
  client.on('error', () => undefined);
  return client;
}

let tenantRedis: Promise<string> | undefined;
/**
 * REDIS_SERVICE_URL for the tests (TEST_REDIS_SERVICE_URL, or a redis-server started for this
 * test process): the server the redis offering's tenants live on, with a protected `default`.
 */
export function tenantRedisUrl(): Promise<string> {
  tenantRedis ??= process.env.TEST_REDIS_SERVICE_URL
    ? Promise.resolve(process.env.TEST_REDIS_SERVICE_URL)
    : startRedisServer(true).then((server) => server.url);
  return tenantRedis;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TestDepot {
  depot: Depot;
  /** http://127.0.0.1:port (https:// with TLS_CERT_FILE) of the OSB API (for a worker: its probes). */
  baseUrl: string;
  /** http://127.0.0.1:port of its metrics listener (GET /metrics). */
  metricsUrl: string;
  /** Every log line Depot wrote, to check that no secret reaches the log. */
  logs: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  role?: Role;
  /** Extra environment, as an operator would set it. */
  env?: Record<string, string>;
  /** A catalog document written to a temporary CATALOG_FILE. */
  catalog?: unknown;
  /** Reuse another TestDepot's state database and queue (a second replica). */
  shareWith?: TestDepot;
  sweeperIntervalMs?: number;
}

/** Starts a Depot on a fresh state database named after the test file. */
export async function startDepot(name: string, options: StartOptions = {}): Promise<TestDepot> {
  const env: Record<string, string> = {
    BROKER_USERNAME: USERNAME,
    BROKER_PASSWORD: PASSWORD,
    REDIS_URL,
    POSTGRES_SERVICE_URL: ADMIN_URL,
    REDIS_SERVICE_URL: await tenantRedisUrl(),
    RETRY_AFTER_SECONDS: '1',
    SYNC_OPERATION_TIMEOUT_SECONDS: '20',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
    ENCRYPTION_KEYS,
    // Drift repair runs only where a test turns it on (test/drift-repair.test.ts).
    DRIFT_CHECK_SECONDS: '0',
    ...options.env,
  };
  // A credentials file replaces the single pair (the two cannot be set together).
  if (options.env?.BROKER_CREDENTIALS_FILE) {
    delete env.BROKER_USERNAME;
    delete env.BROKER_PASSWORD;
  }
  if (options.shareWith) {
    env.DATABASE_URL = options.shareWith.depot.config.databaseUrl;
    env.QUEUE_PREFIX = options.shareWith.depot.config.queuePrefix;
  } else {
    const database = `depot_test_${name.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`;
    await dropDatabase(database);
    env.DATABASE_URL ??= withDatabase(ADMIN_URL, database);
    env.QUEUE_PREFIX ??= `depot-test-${name}-${randomUUID().slice(0, 8)}`;
  }
  if (options.catalog !== undefined) {
    const dir = await mkdtemp(path.join(tmpdir(), 'depot-catalog-'));
    env.CATALOG_FILE = path.join(dir, 'catalog.json');
    await writeFile(env.CATALOG_FILE, JSON.stringify(options.catalog));
  }
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(chunk.toString());
      if (process.env.TEST_LOG_LEVEL) process.stderr.write(chunk);
      callback();
    },
  });
  const config = loadConfig(env);
  const depot = await createDepot(config, {
    role: options.role ?? 'all',
    logger: createLogger(config.logLevel, 'depot-test', sink),
    ...(options.sweeperIntervalMs ? { sweeperIntervalMs: options.sweeperIntervalMs } : {}),
  });
  const server = depot.server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scheme = depot.config.tls ? 'https' : 'http';
  const baseUrl = `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => depot.metricsServer.listen(0, '127.0.0.1', resolve));
  const metricsUrl = `http://127.0.0.1:${(depot.metricsServer.address() as AddressInfo).port}`;
  if (depot.worker) await depot.worker.waitUntilReady();
  return {
    depot,
    baseUrl,
    metricsUrl,
    logs,
    async close() {
      if (!options.shareWith) await cleanUpInstances(depot);
      if (!options.shareWith) await depot.queue.obliterate().catch(() => undefined);
      await depot.close();
      if (!options.shareWith && !options.env?.DATABASE_URL) await dropDatabase(databaseName(depot.config.databaseUrl));
    },
  };
}

/**
 * A row read straight from the state database, with its sealed columns (encryption at rest)
 * opened by the Depot's keys, as the broker sees them.
 */
export function unsealed<T extends object>(target: TestDepot, table: SealedTable, id: string, row: T): T {
  const opened: Record<string, unknown> = { ...(row as Record<string, unknown>) };
  for (const column of SEALED_COLUMNS[table]) {
    const stored = opened[column];
    if (typeof stored === 'string') opened[column] = target.depot.cipher.open(stored, place(table, column, id));
  }
  return opened as T;
}

/** loadConfig(env) refuses with a ConfigError whose message matches. */
export function refusesConfig(env: Record<string, string>, message: RegExp): void {
  assert.throws(
    () => loadConfig(env),
    (error: Error) => {
      assert.ok(error instanceof ConfigError, error.message);
      assert.match(error.message, message);
      return true;
    },
  );
}

/**
 * Starts Depot (API only) in this process with `config`, whose broker credentials are admin/secret;
 * the catalog's service names and every log line, then stops it again.
 */
export async function catalogAtStart(config: BrokerConfig): Promise<{ services: string[]; lines: string[] }> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  const depot = await createDepot(config, { role: 'api', logger: createLogger('info', 'depot', sink) });
  try {
    const res = await request(depot.server)
      .get('/v2/catalog')
      .auth('admin', 'secret')
      .set('X-Broker-API-Version', API_VERSION)
      .expect(200);
    return { services: (res.body as { services: Array<{ name: string }> }).services.map((s) => s.name), lines };
  } finally {
    await depot.queue.obliterate();
    await depot.close();
  }
}

/** Removes a queue's keys from Redis (for Depots a test started without the harness). */
export async function forgetQueue(prefix: string): Promise<void> {
  const queue = new OperationQueue({ connection: redisOptions(REDIS_URL), prefix });
  try {
    await queue.obliterate();
  } finally {
    await queue.close();
  }
}

/** Drops a state database (createDepot creates it again), so each run starts from nothing. */
export async function dropDatabase(database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`);
  } finally {
    await admin.end();
  }
}

/** Removes what instances a test left behind (databases and roles, Redis users and keys). */
async function cleanUpInstances(depot: Depot): Promise<void> {
  const { rows } = await depot.pool.query<{
    id: string;
    service_id: string;
    plan_id: string;
    plan_settings: JsonObject | null;
  }>(`select id, service_id, plan_id, plan_settings from service_instances where state <> 'deleted'`);
  const context = { reportProgress: async () => undefined };
  for (const { id, service_id, plan_id, plan_settings } of rows) {
    const plan = depot.catalog.plan(service_id, plan_id);
    if (!plan || plan.offering.name === 'test') continue; // the test offering creates nothing
    await plan.offering
      .deprovision(
        {
          instanceId: id,
          planName: plan.plan.name,
          planSettings: plan_settings ?? plan.settings,
          parameters: {},
          context: {},
        },
        context,
      )
      .catch(() => undefined);
  }
}

/** A catalog file's document, loosely typed, for tests that write catalogs of their own. */
export interface CatalogPlanDocument {
  id: string;
  name: string;
  maintenance_info?: { version: string; description?: string };
  binding_rotatable?: boolean;
  schemas?: unknown;
  'x-depot'?: Record<string, unknown>;
  [key: string]: unknown;
}
export interface CatalogDocument {
  services: Array<{ id: string; name: string; plans: CatalogPlanDocument[]; [key: string]: unknown }>;
}

/** The built-in catalog file as a document of its own (the YAML's anchors become separate copies). */
export function defaultCatalogDocument(): CatalogDocument {
  return structuredClone(parseYaml(readFileSync(DEFAULT_CATALOG_FILE, 'utf8'), { merge: true })) as CatalogDocument;
}

/** A plan of a catalog document, to change it. */
export function planOf(catalog: CatalogDocument, serviceId: string, planId: string): CatalogPlanDocument {
  const plan = catalog.services.find((s) => s.id === serviceId)?.plans.find((p) => p.id === planId);
  if (!plan) throw new Error(`plan ${planId} of service ${serviceId} is not in the catalog`);
  return plan;
}

type Method = 'get' | 'put' | 'patch' | 'delete';

/** An OSB client with the platform's headers (auth, version) already set. */
export function osb(target: TestDepot | string) {
  const base = typeof target === 'string' ? target : target.baseUrl;
  const call = (method: Method, url: string) =>
    request(base)[method](url).auth(USERNAME, PASSWORD).set('X-Broker-API-Version', API_VERSION);
  return {
    get: (url: string) => call('get', url),
    put: (url: string, body: object) => call('put', url).send(body),
    patch: (url: string, body: object) => call('patch', url).send(body),
    delete: (url: string) => call('delete', url),
  };
}

export function provisionBody(overrides: Record<string, unknown> = {}) {
  return {
    service_id: SERVICE_ID,
    plan_id: SMALL_PLAN_ID,
    organization_guid: 'org-guid',
    space_guid: 'space-guid',
    context: { platform: 'cloudfoundry', organization_guid: 'org-guid', space_guid: 'space-guid', instance_name: 'db' },
    ...overrides,
  };
}

export function bindBody(overrides: Record<string, unknown> = {}) {
  return { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID, bind_resource: { app_guid: 'app-guid' }, ...overrides };
}

/** The query of a request from a platform that accepts asynchronous operations. */
export const ASYNC = '?accepts_incomplete=true';

/** The `operation` of a 202 response. */
export const operationOf = (res: { body: unknown }): string => (res.body as { operation: string }).operation;

export const instancePath = (instanceId: string) => `/v2/service_instances/${encodeURIComponent(instanceId)}`;
export const bindingPath = (instanceId: string, bindingId: string) =>
  `${instancePath(instanceId)}/service_bindings/${encodeURIComponent(bindingId)}`;
export const deleteQuery = (planId = SMALL_PLAN_ID) => `service_id=${SERVICE_ID}&plan_id=${planId}`;

export interface LastOperationBody {
  state: 'in progress' | 'succeeded' | 'failed';
  description?: string;
  instance_usable?: boolean;
  update_repeatable?: boolean;
}

/** Polls a last_operation endpoint until the operation ends (at most `timeoutMs`). */
export async function waitForOperation(
  target: TestDepot,
  resourcePath: string,
  operation?: string,
  timeoutMs = 30_000,
): Promise<LastOperationBody> {
  const deadline = Date.now() + timeoutMs;
  const query = operation ? `?operation=${encodeURIComponent(operation)}` : '';
  for (;;) {
    const res = await osb(target).get(`${resourcePath}/last_operation${query}`);
    if (res.status !== 200) throw new Error(`last_operation answered ${res.status}: ${JSON.stringify(res.body)}`);
    const body = res.body as LastOperationBody;
    if (body.state !== 'in progress') return body;
    if (Date.now() > deadline) throw new Error(`operation still in progress after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Provisions an instance and waits until it is ready. */
export async function provisionInstance(
  target: TestDepot,
  instanceId: string = randomUUID(),
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const res = await osb(target).put(`${instancePath(instanceId)}?accepts_incomplete=true`, provisionBody(overrides));
  if (res.status !== 202) throw new Error(`provision answered ${res.status}: ${JSON.stringify(res.body)}`);
  const last = await waitForOperation(target, instancePath(instanceId), operationOf(res));
  if (last.state !== 'succeeded') throw new Error(`provision ${last.state}: ${last.description}`);
  return instanceId;
}

/** Deprovisions an instance and waits until it is gone. */
export async function deprovisionInstance(
  target: TestDepot,
  instanceId: string,
  planId = SMALL_PLAN_ID,
): Promise<void> {
  const res = await osb(target).delete(`${instancePath(instanceId)}?accepts_incomplete=true&${deleteQuery(planId)}`);
  if (res.status !== 202) throw new Error(`deprovision answered ${res.status}: ${JSON.stringify(res.body)}`);
  const last = await waitForOperation(target, instancePath(instanceId), operationOf(res));
  if (last.state !== 'succeeded') throw new Error(`deprovision ${last.state}: ${last.description}`);
}

/** A query against the server that holds the instances, as an admin. */
export async function adminQuery<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Counts of Depot's state rows, to check that a rejected request changed nothing. */
export async function stateCounts(target: TestDepot): Promise<Record<string, number>> {
  const { rows } = await target.depot.pool.query<{ instances: number; bindings: number; operations: number }>(
    `select (select count(*)::int from service_instances) as instances,
            (select count(*)::int from service_bindings) as bindings,
            (select count(*)::int from operations) as operations`,
  );
  return rows[0]!;
}

/**
 * A digest of the contents of Depot's state rows (service_instances, service_bindings,
 * operations), or of one instance's rows: any row added, removed or changed shows as a
 * different digest. (bad-input.test.ts takes the same digests of the whole state.)
 */
export async function rowDigests(target: TestDepot, instanceId?: string): Promise<Record<string, string>> {
  const digest = (table: string, column: string) =>
    `(select coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from ${table} t
      where $1::text is null or t.${column} = $1)`;
  const { rows } = await target.depot.pool.query<Record<string, string>>(
    `select ${digest('service_instances', 'id')} as instances,
            ${digest('service_bindings', 'instance_id')} as bindings,
            ${digest('operations', 'instance_id')} as operations`,
    [instanceId ?? null],
  );
  return rows[0]!;
}

/**
 * Whether `password` is the role's password, by checking it against the SCRAM-SHA-256
 * verifier PostgreSQL stores (RFC 5802/7677). This machine's server trusts local TCP logins,
 * so a successful login alone would not prove the password right.
 */
export async function passwordMatchesRole(role: string, password: string): Promise<boolean> {
  const rows = await adminQuery<{ rolpassword: string | null }>(
    'select rolpassword from pg_authid where rolname = $1',
    [role],
  );
  const verifier = rows[0]?.rolpassword;
  const match = verifier ? /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier) : null;
  if (!match) return false;
  const { createHash, createHmac, pbkdf2Sync } = await import('node:crypto');
  const salted = pbkdf2Sync(
    password.normalize('NFKC'),
    Buffer.from(match[2]!, 'base64'),
    Number(match[1]),
    32,
    'sha256',
  );
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return createHash('sha256').update(clientKey).digest('base64') === match[3];
}
