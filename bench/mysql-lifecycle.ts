/**
 * Benchmark: the lifecycle of a `mysql` instance, one operation at a time, N rounds (default
 * 20) of provision, bind, unbind and deprovision of a `small` instance. Two measurements:
 *   - osb: through the OSB API of a Depot run as its own process (`broker/main.ts all`: API and
 *     worker, as `npm start` runs it) against the machine's PostgreSQL and Redis (state and
 *     queue) and MariaDB (MYSQL_SERVICE_URL, default TEST_MYSQL_URL's): from the request until
 *     last_operation says `succeeded` (polled every 10 ms) for provision and deprovision, until
 *     the synchronous `201`/`200` for bind and unbind;
 *   - offering: the same four steps called on a MysqlOffering in this process, which is what
 *     the server's work costs without the broker's HTTP, state and queue.
 * Each round's binding opens a session with its credentials and creates a table, so that the
 * deprovision has a table to drop (neither is timed).
 *
 *   node --import tsx bench/mysql-lifecycle.ts [rounds=20]
 *
 * Prints one JSON document: per step, the median, 90th percentile and maximum in milliseconds.
 */
import { osbCaller } from './osb-call.js';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { withDatabase } from '../broker/config.js';
import { MysqlOffering, type MysqlCredentials } from '../broker/offerings/mysql/mysql-offering.js';
import { createLogger } from '../runtime/logger.js';
import { ADMIN_URL, ENCRYPTION_KEYS, PASSWORD, REDIS_URL, USERNAME, dropDatabase, freePort } from '../test/helpers.js';
import { MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID, MYSQL_URL, mysqlQuery } from '../test/mysql-helpers.js';

const rounds = Number(process.argv[2] ?? 20);
const DATABASE = 'depot_bench_mysql_lifecycle';
const STEPS = ['provision', 'bind', 'unbind', 'deprovision'] as const;
type Step = (typeof STEPS)[number];

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const call = osbCaller(base);

/** Opens a session with the credentials and creates a table in the instance's database. */
async function useCredentials(uri: string): Promise<void> {
  const session = await createConnection(uri);
  await session.query('create table bench (id int primary key, body text)');
  await session.end();
}

await dropDatabase(DATABASE);
const queuePrefix = `depot-bench-${randomUUID().slice(0, 8)}`;
const depot = spawn(process.execPath, ['--import', 'tsx', 'broker/main.ts', 'all'], {
  env: {
    ...process.env,
    PORT: String(port),
    METRICS_PORT: String(await freePort()),
    DATABASE_URL: withDatabase(ADMIN_URL, DATABASE),
    REDIS_URL,
    MYSQL_SERVICE_URL: process.env.MYSQL_SERVICE_URL ?? MYSQL_URL,
    QUEUE_PREFIX: queuePrefix,
    BROKER_USERNAME: USERNAME,
    BROKER_PASSWORD: PASSWORD,
    RETRY_AFTER_SECONDS: '1',
    LOG_LEVEL: 'warn',
    ENCRYPTION_KEYS,
  },
  // Depot's log goes to stderr: stdout is the JSON document.
  stdio: ['ignore', 2, 2],
});
const offering = new MysqlOffering({ serviceUrl: MYSQL_URL, logger: createLogger('silent') });

try {
  for (let ready = false; !ready;) {
    if (depot.exitCode !== null) throw new Error(`Depot exited with ${depot.exitCode}`);
    ready = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!ready) await sleep(100);
  }
  const osb: Record<Step, number[]> = { provision: [], bind: [], unbind: [], deprovision: [] };
  const direct: Record<Step, number[]> = { provision: [], bind: [], unbind: [], deprovision: [] };
  const body = { service_id: MYSQL_SERVICE_ID, plan_id: MYSQL_SMALL_PLAN_ID };
  const timed = async <T>(samples: number[], work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    samples.push(performance.now() - started);
    return result;
  };

  // One untimed round first: connections, caches and the JIT warm up.
  for (let round = -1; round < rounds; round++) {
    const sink = (samples: number[]) => (round < 0 ? [] : samples);
    const instanceId = randomUUID();
    const bindingId = randomUUID();
    const instancePath = `/v2/service_instances/${instanceId}`;
    const bindingPath = `${instancePath}/service_bindings/${bindingId}`;
    await timed(sink(osb.provision), async () => {
      const res = await call('PUT', `${instancePath}?accepts_incomplete=true`, {
        ...body,
        organization_guid: 'org',
        space_guid: 'space',
      });
      if (res.status !== 202) throw new Error(`provision answered ${res.status}`);
      await untilDone(instanceId);
    });
    const credentials = await timed(sink(osb.bind), async () => {
      const res = await call('PUT', bindingPath, body);
      if (res.status !== 201) throw new Error(`bind answered ${res.status}`);
      return res.body.credentials as unknown as MysqlCredentials;
    });
    await useCredentials(credentials.uri);
    await timed(sink(osb.unbind), async () => {
      const res = await call('DELETE', `${bindingPath}?${mysqlQuery()}`);
      if (res.status !== 200) throw new Error(`unbind answered ${res.status}`);
    });
    await timed(sink(osb.deprovision), async () => {
      const res = await call('DELETE', `${instancePath}?accepts_incomplete=true&${mysqlQuery()}`);
      if (res.status !== 202) throw new Error(`deprovision answered ${res.status}`);
      await untilDone(instanceId);
    });

    const instance = {
      instanceId: randomUUID(),
      planName: 'small',
      planSettings: { max_user_connections: 10 },
      parameters: {},
      context: {},
    };
    const binding = { instance, bindingId: randomUUID(), parameters: {} };
    const context = { reportProgress: async () => undefined };
    await timed(sink(direct.provision), () => offering.provision(instance));
    const bound = await timed(sink(direct.bind), () => offering.bind(binding));
    await useCredentials(String(bound.credentials.uri));
    await timed(sink(direct.unbind), () => offering.unbind(binding));
    await timed(sink(direct.deprovision), () => offering.deprovision(instance, context));
  }

  console.log(
    JSON.stringify(
      {
        rounds,
        server: offering.server,
        osbMs: Object.fromEntries(STEPS.map((step) => [step, stats(osb[step])])),
        offeringMs: Object.fromEntries(STEPS.map((step) => [step, stats(direct[step])])),
      },
      null,
      2,
    ),
  );
} finally {
  await offering.close();
  if (depot.exitCode === null) {
    depot.kill('SIGTERM');
    await new Promise((resolve) => depot.once('exit', resolve));
  }
  await dropDatabase(DATABASE);
  const queueAdmin = new Redis(REDIS_URL);
  const queueKeys = await queueAdmin.keys(`${queuePrefix}:*`);
  if (queueKeys.length > 0) await queueAdmin.del(...queueKeys);
  queueAdmin.disconnect();
}

async function untilDone(id: string): Promise<void> {
  for (;;) {
    const last = await call('GET', `/v2/service_instances/${id}/last_operation`);
    if (last.body.state === 'succeeded') return;
    if (last.body.state === 'failed') throw new Error(`operation failed: ${String(last.body.description)}`);
    await sleep(10);
  }
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { median: round(median(sorted)), p90: at(0.9), max: at(1) };
}

function median(sorted: number[]): number {
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
