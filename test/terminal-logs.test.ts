/**
 * Logs a person can read: `npm start` (and `npm run start:controller`) in a terminal print one
 * readable line per event (pino-pretty); with standard output a pipe or a file they print JSON
 * lines, as a log collector wants. The terminal is a real pseudo-terminal (util-linux `script`).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import { withDatabase } from '../broker/config.js';
import {
  ADMIN_URL,
  API_VERSION,
  ENCRYPTION_KEYS,
  PASSWORD,
  REDIS_URL,
  USERNAME,
  dropDatabase,
  forgetQueue,
  freePort,
  tenantRedisUrl,
} from './helpers.js';
import { waitFor } from './kube-helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const DATABASE = 'depot_test_terminal_logs';
const PREFIX = 'depot-test-terminal-logs';
const HAS_SCRIPT = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** What the terminal shows: colours dropped, and a line npm's spinner erased (column 1, erase line) gone. */
const plain = (text: string): string =>
  text
    .replace(/\x1b\[[0-9;]*m/g, '')
    .replace(/\r/g, '')
    .replace(/[^\n]*\x1b\[1G\x1b\[0K/g, '');

interface Run {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** `npm <args>` in ROOT, under a pseudo-terminal (`script`) or with stdout a pipe. */
function npm(args: string, env: Record<string, string>, terminal: boolean): Run {
  const [command, argv] = terminal ? ['script', ['-qfc', `npm ${args}`, '/dev/null']] : ['npm', args.split(' ')];
  const child = spawn(command, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    async stop() {
      // `script` passes SIGTERM on to the process in its terminal.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function depotEnv(): Promise<{ env: Record<string, string>; port: number }> {
  const port = await freePort();
  return {
    port,
    env: {
      LOG_LEVEL: 'info',
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
      DATABASE_URL: withDatabase(ADMIN_URL, DATABASE),
      REDIS_URL,
      POSTGRES_SERVICE_URL: ADMIN_URL,
      REDIS_SERVICE_URL: await tenantRedisUrl(),
      QUEUE_PREFIX: PREFIX,
      BROKER_USERNAME: USERNAME,
      BROKER_PASSWORD: PASSWORD,
      ENCRYPTION_KEYS,
    },
  };
}

const runs: Run[] = [];
after(async () => {
  for (const run of runs) await run.stop();
  await dropDatabase(DATABASE);
  await forgetQueue(PREFIX);
});

describe('npm start', () => {
  it('in a terminal prints readable lines, not JSON', { skip: !HAS_SCRIPT && 'no `script` (util-linux)' }, async () => {
    const { env, port } = await depotEnv();
    const run = npm('start', env, true);
    runs.push(run);
    await waitFor(async () => plain(run.output()).includes('metrics listening'), 60_000, 'metrics listening');
    await request(`http://127.0.0.1:${port}`).get('/v2/catalog').set('X-Broker-API-Version', API_VERSION).expect(401);
    await waitFor(async () => / INFO \(depot\): request\n/.test(plain(run.output())), 10_000, 'the request line');
    await run.stop();
    const output = plain(run.output());
    assert.match(output, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(depot\): OSB API listening$/m, output);
    // A line's fields follow it, one per line; the request line has its status.
    assert.match(output, / INFO \(depot\): request\n(\s+\w+: .*\n)*?\s+status: 401\n/, output);
    const lines = output.split('\n').filter((line) => line.trim());
    assert.deepEqual(
      lines.filter((line) => line.trimStart().startsWith('{"')),
      [],
    );
    assert.ok(!output.includes(PASSWORD));
  });

  it('with stdout a pipe prints JSON lines', async () => {
    const { env } = await depotEnv();
    const run = npm('start', env, false);
    runs.push(run);
    await waitFor(async () => run.output().includes('"msg":"metrics listening"'), 60_000, 'metrics listening');
    await run.stop();
    const logLines = run
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'));
    const listening = logLines.map((line) => JSON.parse(line) as { msg: string; name: string; level: number });
    assert.ok(listening.some((l) => l.msg === 'OSB API listening' && l.name === 'depot' && l.level === 30));
    assert.ok(!plain(run.output()).includes('INFO (depot)'));
  });
});

describe('npm run start:controller', () => {
  it('in a terminal prints readable lines too', { skip: !HAS_SCRIPT && 'no `script` (util-linux)' }, async () => {
    // An API server that is not there: the controller listens and logs before it needs one.
    const dir = await mkdtemp(path.join(tmpdir(), 'depot-kubeconfig-'));
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'none', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'none', user: { token: 'none' } }],
        contexts: [{ name: 'none', context: { cluster: 'none', user: 'none' } }],
        'current-context': 'none',
      }),
    );
    const env = {
      KUBECONFIG: kubeconfig,
      LOG_LEVEL: 'info',
      CONTROLLER_PORT: String(await freePort()),
      METRICS_PORT: String(await freePort()),
    };
    const run = npm('run start:controller', env, true);
    runs.push(run);
    await waitFor(async () => plain(run.output()).includes('controller listening'), 60_000, 'controller listening');
    await run.stop();
    const output = plain(run.output());
    assert.match(output, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(depot-catalog-controller\): controller listening$/m);
    assert.doesNotMatch(output, /^\{"level"/m);
  });
});
