/**
 * `npm run start:api`'s command as a real child process (node --import tsx broker/main.ts api),
 * for tests that send it real signals. Its state database is dropped and its queue forgotten
 * by stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { withDatabase } from '../broker/config.js';
import { ADMIN_URL, REDIS_URL, dropDatabase, forgetQueue, freePort, tenantRedisUrl } from './helpers.js';
import { npmScriptNodeArgs } from './npm-script.js';

export interface DepotProcess {
  child: ChildProcess;
  port: number;
  /** stdout and stderr lines so far (the JSON log, and any message to the operator). */
  lines: string[];
  /** The JSON log lines with this `msg`. */
  logged(msg: string): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Starts the API role with this environment (and a state database named after `name`); resolves once it listens. */
export async function startDepotProcess(name: string, env: Record<string, string>): Promise<DepotProcess> {
  const database = `depot_test_${name.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`;
  const prefix = `depot-test-${name}`;
  await dropDatabase(database);
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, npmScriptNodeArgs('start:api'), {
    env: {
      PATH: process.env.PATH ?? '',
      LOG_LEVEL: 'info',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      DATABASE_URL: withDatabase(ADMIN_URL, database),
      REDIS_URL,
      POSTGRES_SERVICE_URL: ADMIN_URL,
      REDIS_SERVICE_URL: await tenantRedisUrl(),
      QUEUE_PREFIX: prefix,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const collect = (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const logged = (msg: string) =>
    lines.flatMap((line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        return parsed.msg === msg ? [parsed] : [];
      } catch {
        return [];
      }
    });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await dropDatabase(database);
    await forgetQueue(prefix);
  };
  for (const deadline = Date.now() + 30_000; logged('OSB API listening').length === 0;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`depot did not start (exit code ${child.exitCode}):\n${lines.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, port, lines, logged, stop };
}
