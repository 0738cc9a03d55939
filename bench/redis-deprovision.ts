/**
 * Benchmark: deprovisioning a `redis` instance that holds many keys (default 200,000), while
 * other clients go on working. Depot runs as its own process (`broker/main.ts all`: API and
 * worker, as `npm start` runs it) against the machine's PostgreSQL and Redis (queue), with the
 * tenants on a redis-server started for the run (`default` off, as the offering requires). During a
 * baseline window and then during the deprovision, three loops measure latency, one request
 * in flight each:
 *   - GET /v2/catalog;
 *   - GET last_operation of another instance;
 *   - Redis GET with another instance's binding (its own key).
 * last_operation of the instance being deleted is polled every 250 ms, recording its
 * description ("Deprovisioning: deleted N of about M keys.").
 *
 *   node --import tsx bench/redis-deprovision.ts [keys=200000]
 *
 * Prints one JSON document.
 */
import { osbCaller } from './osb-call.js';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { withDatabase } from '../broker/config.js';
import type { RedisCredentials } from '../broker/offerings/redis/redis-offering.js';
import {
  ADMIN_URL,
  PASSWORD,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  REDIS_URL,
  USERNAME,
  dropDatabase,
  freePort,
  startRedisServer,
} from '../test/helpers.js';

const keys = Number(process.argv[2] ?? 200_000);
const DATABASE = 'depot_bench_redis_deprovision';

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const call = osbCaller(base);

await dropDatabase(DATABASE);
// The tenants' server (REDIS_SERVICE_URL): a redis-server of its own, `default` off; the queue
// stays on REDIS_URL.
const tenants = await startRedisServer(true);
const queuePrefix = `depot-bench-${randomUUID().slice(0, 8)}`;
const depot = spawn(process.execPath, ['--import', 'tsx', 'broker/main.ts', 'all'], {
  env: {
    ...process.env,
    PORT: String(port),
    DATABASE_URL: withDatabase(ADMIN_URL, DATABASE),
    REDIS_URL,
    REDIS_SERVICE_URL: tenants.url,
    QUEUE_PREFIX: queuePrefix,
    BROKER_USERNAME: USERNAME,
    BROKER_PASSWORD: PASSWORD,
    RETRY_AFTER_SECONDS: '1',
    LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const admin = new Redis(tenants.url);
const queueAdmin = new Redis(REDIS_URL);
const clients: Redis[] = [];

try {
  for (let ready = false; !ready;) {
    if (depot.exitCode !== null) throw new Error(`Depot exited with ${depot.exitCode}`);
    ready = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!ready) await sleep(100);
  }
  const body = { service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID, organization_guid: 'org', space_guid: 'space' };
  const [big, neighbour] = [randomUUID(), randomUUID()];
  for (const id of [big, neighbour]) {
    const res = await call('PUT', `/v2/service_instances/${id}?accepts_incomplete=true`, body);
    if (res.status !== 202) throw new Error(`provision answered ${res.status}`);
    await untilDone(id);
  }
  const bind = async (id: string) => {
    const res = await call('PUT', `/v2/service_instances/${id}/service_bindings/${randomUUID()}`, body);
    if (res.status !== 201) throw new Error(`bind answered ${res.status}`);
    return res.body.credentials as unknown as RedisCredentials;
  };
  const bigCredentials = await bind(big);
  const neighbourCredentials = await bind(neighbour);

  // Fill the big instance (100-byte values) in pipelines of 10,000.
  const filled = performance.now();
  for (let i = 0; i < keys; i += 10_000) {
    const pipeline = admin.pipeline();
    for (let j = i; j < Math.min(keys, i + 10_000); j++)
      pipeline.set(`${bigCredentials.key_prefix}${j}`, 'v'.repeat(100));
    await pipeline.exec();
  }
  const fillSeconds = (performance.now() - filled) / 1000;
  const neighbourClient = new Redis(neighbourCredentials.uri, { enableReadyCheck: false });
  clients.push(neighbourClient);
  await neighbourClient.set(`${neighbourCredentials.key_prefix}k`, 'v');

  const probes = {
    catalog: async () => void (await call('GET', '/v2/catalog')),
    lastOperation: async () => void (await call('GET', `/v2/service_instances/${neighbour}/last_operation`)),
    redisGet: async () => void (await neighbourClient.get(`${neighbourCredentials.key_prefix}k`)),
  };

  // Warm up, then the baseline window.
  await measure(probes, () => sleep(1000));
  const baseline = await measure(probes, () => sleep(3000));

  const progress: Array<{ at: number; description: string }> = [];
  let deprovisionSeconds = 0;
  const during = await measure(probes, async () => {
    const started = performance.now();
    const res = await call(
      'DELETE',
      `/v2/service_instances/${big}?accepts_incomplete=true&service_id=${REDIS_SERVICE_ID}&plan_id=${REDIS_PLAN_ID}`,
    );
    if (res.status !== 202) throw new Error(`deprovision answered ${res.status}`);
    for (;;) {
      const last = await call('GET', `/v2/service_instances/${big}/last_operation`);
      const description = String(last.body.description ?? '');
      if (progress.at(-1)?.description !== description) {
        progress.push({ at: Number(((performance.now() - started) / 1000).toFixed(2)), description });
      }
      if (last.body.state !== 'in progress') {
        if (last.body.state !== 'succeeded') throw new Error(`deprovision ${String(last.body.state)}: ${description}`);
        break;
      }
      await sleep(250);
    }
    deprovisionSeconds = (performance.now() - started) / 1000;
  });
  const left = (await admin.scan('0', 'MATCH', `${bigCredentials.key_prefix}*`, 'COUNT', '1000000'))[1].length;

  console.log(
    JSON.stringify(
      {
        keys,
        fillSeconds: round(fillSeconds),
        deprovisionSeconds: round(deprovisionSeconds),
        keysLeft: left,
        progress,
        latencyMs: { baseline, duringDeprovision: during },
      },
      null,
      2,
    ),
  );

  neighbourClient.disconnect(); // its user goes with the neighbour
  await call(
    'DELETE',
    `/v2/service_instances/${neighbour}?accepts_incomplete=true` +
      `&service_id=${REDIS_SERVICE_ID}&plan_id=${REDIS_PLAN_ID}`,
  );
  await untilDone(neighbour);
} finally {
  for (const client of clients) client.disconnect();
  if (depot.exitCode === null) {
    depot.kill('SIGTERM');
    await new Promise((resolve) => depot.once('exit', resolve));
  }
  await dropDatabase(DATABASE);
  const queueKeys = await queueAdmin.keys(`${queuePrefix}:*`);
  if (queueKeys.length > 0) await queueAdmin.del(...queueKeys);
  admin.disconnect();
  queueAdmin.disconnect();
  tenants.stop();
}

async function untilDone(id: string): Promise<void> {
  for (;;) {
    const last = await call('GET', `/v2/service_instances/${id}/last_operation`);
    if (last.body.state === 'succeeded') return;
    if (last.body.state === 'failed') throw new Error(`operation failed: ${String(last.body.description)}`);
    await sleep(50);
  }
}

/** Runs each probe in a loop (one call in flight each) while `during` runs; latency stats per probe. */
async function measure(probes: Record<string, () => Promise<void>>, during: () => Promise<void>) {
  let running = true;
  const samples: Record<string, number[]> = {};
  const loops = Object.entries(probes).map(async ([name, probe]) => {
    const times: number[] = (samples[name] = []);
    while (running) {
      const started = performance.now();
      await probe();
      times.push(performance.now() - started);
    }
  });
  const started = performance.now();
  await during();
  const seconds = (performance.now() - started) / 1000;
  running = false;
  await Promise.all(loops);
  return Object.fromEntries(
    Object.entries(samples).map(([name, times]) => {
      const sorted = [...times].sort((a, b) => a - b);
      const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
      return [
        name,
        {
          requests: times.length,
          perSecond: Math.round(times.length / seconds),
          p50: at(0.5),
          p99: at(0.99),
          max: at(1),
        },
      ];
    }),
  );
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
