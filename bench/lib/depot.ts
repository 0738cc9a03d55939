/**
 * Depot as `npm start` runs it (API and worker in one process), as a child of the bench, with
 * a state database and queue of its own. Configuration is Depot's defaults except what a bench
 * must set: the broker's credentials, the state's addresses, an encryption key (encryption at
 * rest is on), the ports, and `env` (e.g. TEST_OFFERING=enabled for the instant plan).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { withDatabase } from '../../broker/config.js';
import { ADMIN_URL, PASSWORD, REDIS_URL, USERNAME, dropDatabase, forgetQueue, freePort } from '../../test/helpers.js';
import { npmScript } from '../../test/npm-script.js';
import { memory, nodeProcess, spawnCommand, waitUntilAnswering, type Memory } from './processes.js';

export interface BenchDepot {
  baseUrl: string;
  /** The node process serving it (for its memory and CPU). */
  pid: number;
  /** From the spawn of `npm start`'s command until /readyz answered 200. */
  startupMs: number;
  memory(): Memory;
  stop(): Promise<void>;
}

/** One key per bench run: each Depot seals its state with it (ENCRYPTION_KEYS). */
const ENCRYPTION_KEYS = `bench:${randomBytes(32).toString('base64')}`;

export async function startBenchDepot(
  name: string,
  logDir: string,
  env: Record<string, string> = {},
): Promise<BenchDepot> {
  const database = `depot_bench_${name}`;
  const queuePrefix = `depot-bench-${name}-${randomUUID().slice(0, 8)}`;
  await dropDatabase(database);
  const port = await freePort();
  const started = performance.now();
  const child = spawnCommand(
    npmScript('start'),
    {
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
      BROKER_USERNAME: USERNAME,
      BROKER_PASSWORD: PASSWORD,
      DATABASE_URL: withDatabase(ADMIN_URL, database),
      REDIS_URL,
      QUEUE_PREFIX: queuePrefix,
      ENCRYPTION_KEYS,
      ...env,
    },
    path.join(logDir, `depot-${name}.log`),
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(`${baseUrl}/readyz`, child);
  } catch (error) {
    await child.stop();
    throw new Error(`Depot did not start (see ${logDir}/depot-${name}.log): ${(error as Error).message}`, {
      cause: error,
    });
  }
  const startupMs = performance.now() - started;
  const pid = nodeProcess(child);
  return {
    baseUrl,
    pid,
    startupMs,
    memory: () => memory(pid),
    async stop() {
      await child.stop();
      await dropDatabase(database);
      await forgetQueue(queuePrefix);
    },
  };
}
