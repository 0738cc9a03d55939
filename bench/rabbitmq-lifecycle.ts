/**
 * Benchmark: the lifecycle of `rabbitmq` instances, one operation at a time, as a platform sees
 * it over the OSB API. Depot runs as its own process (`broker/main.ts all`: API and worker, as
 * `npm start` runs it) against the machine's PostgreSQL, Redis (queue) and RabbitMQ
 * (RABBITMQ_SERVICE_URL: TEST_RABBITMQ_SERVICE_URL or guest on 127.0.0.1:15672). Each round:
 *   - provision: PUT ?accepts_incomplete=true, then last_operation polled every 10 ms until it
 *     says succeeded (the vhost);
 *   - bind: a synchronous PUT, until its 201 (the user and its permissions);
 *   - (not timed) publish and consume one message with the bound uri (amqplib), and declare
 *     `queues` durable queues (default none) holding one message each;
 *   - unbind: a synchronous DELETE, until its 200 (the user deleted, its connections closed);
 *   - deprovision: DELETE ?accepts_incomplete=true, polled as provision (users, then the vhost).
 *
 *   node --import tsx bench/rabbitmq-lifecycle.ts [rounds=20] [queues=0]
 *
 * Prints one JSON document: per operation the median, p90, min and max in milliseconds.
 */
import { osbCaller } from './osb-call.js';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { withDatabase } from '../broker/config.js';
import type { RabbitmqCredentials } from '../broker/offerings/rabbitmq/rabbitmq-credentials.js';
import { ADMIN_URL, ENCRYPTION_KEYS, PASSWORD, REDIS_URL, USERNAME, dropDatabase, freePort } from '../test/helpers.js';
import { RABBITMQ_PLAN_ID, RABBITMQ_SERVICE_ID, RABBITMQ_URL } from '../test/rabbitmq-helpers.js';

const rounds = Number(process.argv[2] ?? 20);
const queues = Number(process.argv[3] ?? 0);
const DATABASE = 'depot_bench_rabbitmq_lifecycle';

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const call = osbCaller(base);

await dropDatabase(DATABASE);
const queuePrefix = `depot-bench-${randomUUID().slice(0, 8)}`;
const depot = spawn(process.execPath, ['--import', 'tsx', 'broker/main.ts', 'all'], {
  env: {
    ...process.env,
    PORT: String(port),
    METRICS_PORT: String(await freePort()),
    DATABASE_URL: withDatabase(ADMIN_URL, DATABASE),
    REDIS_URL,
    RABBITMQ_SERVICE_URL: RABBITMQ_URL,
    QUEUE_PREFIX: queuePrefix,
    BROKER_USERNAME: USERNAME,
    BROKER_PASSWORD: PASSWORD,
    RETRY_AFTER_SECONDS: '1',
    ENCRYPTION_KEYS,
    LOG_LEVEL: 'error',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});

const times: Record<'provision' | 'bind' | 'unbind' | 'deprovision', number[]> = {
  provision: [],
  bind: [],
  unbind: [],
  deprovision: [],
};
const query = `service_id=${RABBITMQ_SERVICE_ID}&plan_id=${RABBITMQ_PLAN_ID}`;
const body = { service_id: RABBITMQ_SERVICE_ID, plan_id: RABBITMQ_PLAN_ID };

try {
  for (let ready = false; !ready;) {
    if (depot.exitCode !== null) throw new Error(`Depot exited with ${depot.exitCode}`);
    ready = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!ready) await sleep(100);
  }
  // One round first, not counted: connections and code paths warm.
  for (let round = -1; round < rounds; round++) {
    const [instanceId, bindingId] = [randomUUID(), randomUUID()];
    const record = (name: keyof typeof times, started: number) => {
      if (round >= 0) times[name].push(performance.now() - started);
    };

    let started = performance.now();
    const provisioned = await call('PUT', `/v2/service_instances/${instanceId}?accepts_incomplete=true`, {
      ...body,
      organization_guid: 'org',
      space_guid: 'space',
    });
    if (provisioned.status !== 202) throw new Error(`provision answered ${provisioned.status}`);
    await untilDone(instanceId);
    record('provision', started);

    started = performance.now();
    const bound = await call('PUT', `/v2/service_instances/${instanceId}/service_bindings/${bindingId}`, body);
    if (bound.status !== 201) throw new Error(`bind answered ${bound.status}`);
    record('bind', started);
    await publishAndConsume((bound.body.credentials as unknown as RabbitmqCredentials).uri);

    started = performance.now();
    const unbound = await call('DELETE', `/v2/service_instances/${instanceId}/service_bindings/${bindingId}?${query}`);
    if (unbound.status !== 200) throw new Error(`unbind answered ${unbound.status}`);
    record('unbind', started);

    started = performance.now();
    const deleted = await call('DELETE', `/v2/service_instances/${instanceId}?accepts_incomplete=true&${query}`);
    if (deleted.status !== 202) throw new Error(`deprovision answered ${deleted.status}`);
    await untilDone(instanceId);
    record('deprovision', started);
  }

  console.log(
    JSON.stringify(
      {
        rounds,
        queuesPerInstance: queues,
        rabbitmq: new URL(RABBITMQ_URL).host,
        ms: Object.fromEntries(Object.entries(times).map(([name, samples]) => [name, stats(samples)])),
      },
      null,
      2,
    ),
  );
} finally {
  if (depot.exitCode === null) {
    depot.kill('SIGTERM');
    await new Promise((resolve) => depot.once('exit', resolve));
  }
  await dropDatabase(DATABASE);
}

async function untilDone(id: string): Promise<void> {
  for (;;) {
    const last = await call('GET', `/v2/service_instances/${id}/last_operation`);
    if (last.body.state === 'succeeded') return;
    if (last.body.state === 'failed') throw new Error(`operation failed: ${String(last.body.description)}`);
    await sleep(10);
  }
}

/** One message through a queue of the instance with the binding's credentials; then `queues` queues. */
async function publishAndConsume(uri: string): Promise<void> {
  const connection = await amqp.connect(uri);
  try {
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue('bench');
    channel.sendToQueue('bench', Buffer.from('ping'));
    await channel.waitForConfirms();
    const message = await channel.get('bench', { noAck: true });
    if (!message || message.content.toString() !== 'ping') throw new Error('the message did not come back');
    await Promise.all(
      Array.from({ length: queues }, async (_, i) => {
        await channel.assertQueue(`bench-${i}`, { durable: true });
        channel.sendToQueue(`bench-${i}`, Buffer.from('x'.repeat(100)), { persistent: true });
      }),
    );
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  const middle = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2 || 0;
  return { median: round(median), p90: at(0.9), min: round(sorted[0] ?? 0), max: round(sorted.at(-1) ?? 0) };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
