/**
 * Benchmark: what one drift check costs per 1,000 bindings, for each offering. Depot runs in this
 * process (API and worker, DRIFT_CHECK_SECONDS=0 so no check runs by itself) against the machine's
 * PostgreSQL, MariaDB and RabbitMQ, and a redis-server of its own for the tenants. For each offering
 * one instance gets `bindings` bindings through the OSB API; then a DriftChecker checks it (nothing
 * to repair) `rounds` times. Server commands are counted where the server counts them:
 *   - postgresql: the admin connection's statements (pg's Client.query, on the tenants' server);
 *   - mysql: the admin session's statements (MariaDB's `Questions`, summed over its sessions);
 *   - rabbitmq: management API requests (counted on fetch);
 *   - redis: the tenants' server's INFO commandstats.
 *
 *   node --import tsx bench/drift-check.ts [bindings=1000] [rounds=5]
 *
 * Prints one JSON document.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { DriftChecker } from '../broker/jobs/drift-checker.js';
import { createLogger } from '../runtime/logger.js';
import {
  ASYNC,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  SERVICE_ID,
  SMALL_PLAN_ID,
  instancePath,
  bindingPath,
  operationOf,
  osb,
  startDepot,
  startRedisServer,
  waitForOperation,
} from '../test/helpers.js';
import { MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID, MYSQL_URL, mysqlAdmin } from '../test/mysql-helpers.js';
import { RABBITMQ_PLAN_ID, RABBITMQ_SERVICE_ID, RABBITMQ_URL } from '../test/rabbitmq-helpers.js';

const bindings = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 5);

const tenants = await startRedisServer(true);
const depot = await startDepot('bench-drift-check', {
  env: {
    REDIS_SERVICE_URL: tenants.url,
    MYSQL_SERVICE_URL: MYSQL_URL,
    RABBITMQ_SERVICE_URL: RABBITMQ_URL,
    DRIFT_CHECK_SECONDS: '0',
  },
});
const { pool, cipher, catalog, metrics } = depot.depot;
const checker = new DriftChecker({
  pool,
  cipher,
  catalog,
  metrics,
  logger: createLogger('warn'),
  periodSeconds: 300,
});

const offerings = {
  postgresql: { service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID },
  redis: { service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID },
  mysql: { service_id: MYSQL_SERVICE_ID, plan_id: MYSQL_SMALL_PLAN_ID },
  rabbitmq: { service_id: RABBITMQ_SERVICE_ID, plan_id: RABBITMQ_PLAN_ID },
};

// Counters of what reaches each server.
let pgStatements = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  // The offering's admin connection is to the tenants' server's `postgres` database.
  if (this.database === 'postgres') pgStatements++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;
let managementRequests = 0;
const fetch_ = globalThis.fetch;
globalThis.fetch = (input, init) => {
  if (String(input instanceof Request ? input.url : input).includes('/api/')) managementRequests++;
  return fetch_(input, init);
};
const tenantRedis = new Redis(tenants.url);
const redisCommands = async () => {
  const info = await tenantRedis.info('commandstats');
  return [...info.matchAll(/calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
};
const mysqlQuestions = async () => {
  const rows = await mysqlAdmin<{ Value: string }>("show global status like 'Questions'");
  return Number(rows[0]!.Value);
};
/** What reached each server so far; `reading`: the reading itself reaches the server (one command, not counted). */
const counters: Record<keyof typeof offerings, { read: () => Promise<number>; reading: number }> = {
  postgresql: { read: async () => pgStatements, reading: 0 },
  redis: { read: redisCommands, reading: 1 },
  mysql: { read: mysqlQuestions, reading: 1 },
  rabbitmq: { read: async () => managementRequests, reading: 0 },
};

async function instanceWithBindings(body: { service_id: string; plan_id: string }): Promise<string> {
  const instanceId = randomUUID();
  const created = await osb(depot)
    .put(`${instancePath(instanceId)}${ASYNC}`, { ...body, organization_guid: 'o', space_guid: 's' })
    .expect(202);
  const done = await waitForOperation(depot, instancePath(instanceId), operationOf(created));
  if (done.state !== 'succeeded') throw new Error(`provision ${done.state}: ${JSON.stringify(done)}`);
  let next = 0;
  const bindOne = async () => {
    while (next < bindings) {
      next++;
      await osb(depot).put(bindingPath(instanceId, randomUUID()), body).expect(201);
    }
  };
  await Promise.all(Array.from({ length: 8 }, bindOne));
  return instanceId;
}

const results: Record<string, unknown> = {};
for (const [name, body] of Object.entries(offerings) as Array<
  [keyof typeof offerings, { service_id: string; plan_id: string }]
>) {
  const made = performance.now();
  const instanceId = await instanceWithBindings(body);
  process.stderr.write(`${name}: ${bindings} bindings in ${Math.round(performance.now() - made)} ms\n`);
  const ms: number[] = [];
  const commands: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const before = await counters[name].read();
    const start = performance.now();
    const report = await checker.checkDue(0);
    ms.push(performance.now() - start);
    commands.push((await counters[name].read()) - before - counters[name].reading);
    if (report.repaired.length > 0 || report.failed.length > 0) {
      throw new Error(`${name}: a check of untouched objects found ${JSON.stringify(report).slice(0, 300)}`);
    }
  }
  ms.sort((a, b) => a - b);
  results[name] = {
    bindings,
    check_ms_median: Math.round(ms[Math.floor(ms.length / 2)]!),
    check_ms_all: ms.map(Math.round),
    server_commands: commands,
  };
  // The next offering's check sees only its own instance.
  const gone = await osb(depot)
    .delete(`${instancePath(instanceId)}?accepts_incomplete=true&service_id=${body.service_id}&plan_id=${body.plan_id}`)
    .expect(202);
  await waitForOperation(depot, instancePath(instanceId), operationOf(gone));
}

console.log(JSON.stringify({ bindings, rounds, results }, null, 2));
tenantRedis.disconnect();
await depot.close();
tenants.stop();
process.exit(0);
