/**
 * Logs at every level: `npm start` at LOG_LEVEL=trace runs a whole lifecycle of both offerings
 * (provision with parameters, update, bind, GET binding, unbind, deprovision), with bad requests
 * among them; its stdout and stderr hold none of that run's secrets.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { withDatabase } from '../broker/config.js';
import {
  ADMIN_URL,
  API_VERSION,
  ASYNC,
  bindingPath,
  deleteQuery,
  dropDatabase,
  ENCRYPTION_KEYS,
  forgetQueue,
  freePort,
  instancePath,
  operationOf,
  PASSWORD,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  REDIS_URL,
  SERVICE_ID,
  SMALL_PLAN_ID,
  tenantRedisUrl,
  USERNAME,
} from './helpers.js';
import { npmScriptNodeArgs } from './npm-script.js';

const database = 'depot_test_log_leaks';
const queuePrefix = `depot-test-log-leaks-${randomUUID().slice(0, 8)}`;

describe('logs at trace: a whole lifecycle leaves no secret in stdout or stderr', () => {
  let child: ReturnType<typeof spawn>;
  let stdout = '';
  let stderr = '';
  let base: string;
  let redisServiceUrl: string;
  /** Every secret of this run, by what it is. */
  const secrets = new Map<string, string>();
  const basic = Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64');

  before(async () => {
    await dropDatabase(database);
    redisServiceUrl = await tenantRedisUrl();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, npmScriptNodeArgs('start'), {
      env: {
        PATH: process.env.PATH ?? '',
        LOG_LEVEL: 'trace',
        PORT: String(port),
        METRICS_PORT: String(await freePort()),
        DATABASE_URL: withDatabase(ADMIN_URL, database),
        REDIS_URL,
        QUEUE_PREFIX: queuePrefix,
        POSTGRES_SERVICE_URL: ADMIN_URL,
        REDIS_SERVICE_URL: redisServiceUrl,
        BROKER_USERNAME: USERNAME,
        BROKER_PASSWORD: PASSWORD,
        ENCRYPTION_KEYS,
        RETRY_AFTER_SECONDS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    for (let i = 0; !/operation worker running/.test(stdout); i++) {
      if (child.exitCode !== null || i > 300) throw new Error(`Depot did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  after(async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    await dropDatabase(database);
    await forgetQueue(queuePrefix);
  });

  const call = (method: 'get' | 'put' | 'patch' | 'delete', path: string) =>
    request(base)[method](path).auth(USERNAME, PASSWORD).set('X-Broker-API-Version', API_VERSION);

  async function finished(path: string, res: request.Response) {
    assert.equal(res.status, 202, res.text);
    for (let i = 0; i < 600; i++) {
      const last = await call('get', `${path}/last_operation?operation=${operationOf(res)}`).expect(200);
      const state = (last.body as { state: string }).state;
      if (state !== 'in progress') return assert.equal(state, 'succeeded', last.text);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail('the operation did not finish');
  }

  /** A whole life of one instance: provision, update, two binds, GET each, unbind, deprovision. */
  async function lifecycle(
    serviceId: string,
    planId: string,
    { parameters, update, bind }: { parameters: object; update: object; bind: object },
  ) {
    const instanceId = randomUUID();
    const marker = `ctx-${randomBytes(6).toString('hex')}`;
    const user = `uid-${randomBytes(6).toString('hex')}`;
    secrets.set('a context value', marker).set('an originating identity', user);
    const identity = `cloudfoundry ${Buffer.from(JSON.stringify({ user_id: user })).toString('base64')}`;
    const body = { service_id: serviceId, plan_id: planId, organization_guid: 'org', space_guid: 'space' };
    const context = { platform: 'cloudfoundry', instance_name: marker };
    const path = instancePath(instanceId);
    const provisioned = await call('put', `${path}${ASYNC}`)
      .set('X-Broker-API-Originating-Identity', identity)
      .send({ ...body, context, parameters });
    await finished(path, provisioned);
    await call('get', path).expect(200);
    const updated = await call('patch', `${path}${ASYNC}`).send({ service_id: serviceId, parameters: update });
    if (updated.status !== 200) await finished(path, updated); // 200: nothing to change
    for (const bindingId of [randomUUID(), randomUUID()]) {
      const bound = await call('put', bindingPath(instanceId, bindingId))
        .set('X-Broker-API-Originating-Identity', identity)
        .send({ ...body, parameters: bind, context })
        .expect(201);
      const credentials = (bound.body as { credentials: Record<string, unknown> }).credentials;
      for (const [key, value] of Object.entries(credentials)) {
        if (typeof value === 'string' && /password|uri|url/i.test(key)) secrets.set(`credentials.${key}`, value);
      }
      await call('get', bindingPath(instanceId, bindingId)).expect(200);
      const query = `service_id=${serviceId}&plan_id=${planId}`;
      await call('delete', `${bindingPath(instanceId, bindingId)}?${query}`).expect(200);
    }
    await finished(path, await call('delete', `${path}${ASYNC}&service_id=${serviceId}&plan_id=${planId}`));
  }

  it('runs the lifecycle of a PostgreSQL database and a Redis prefix, and bad requests among them', async () => {
    const extension = 'citext';
    const [parameters, update] = [{ extensions: [extension] }, { extensions: [extension, 'hstore'] }];
    await lifecycle(SERVICE_ID, SMALL_PLAN_ID, { parameters, update, bind: {} });
    await lifecycle(REDIS_SERVICE_ID, REDIS_PLAN_ID, { parameters: {}, update: {}, bind: { read_only: true } });
    // Wrong credentials, a parameter the schema refuses, a body that is not JSON.
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    secrets.set('a wrong broker password', wrong);
    await request(base).get('/v2/catalog').auth(USERNAME, wrong).set('X-Broker-API-Version', API_VERSION).expect(401);
    const refused = `refused-${randomBytes(6).toString('hex')}`;
    secrets.set('a refused parameter value', refused);
    await call('put', `${instancePath(randomUUID())}${ASYNC}`)
      .send({ service_id: SERVICE_ID, plan_id: SMALL_PLAN_ID, parameters: { extensions: [refused] } })
      .expect(400);
    await call('put', `${instancePath(randomUUID())}${ASYNC}`)
      .set('Content-Type', 'application/json')
      .send(`{"parameters": {"x": "${refused}"`)
      .expect(400);
    await call('delete', `${instancePath(randomUUID())}${ASYNC}&${deleteQuery()}`).expect(410);
    assert.ok(secrets.has('credentials.password') && secrets.has('credentials.uri'), [...secrets.keys()].join());
  });

  it('stdout and stderr hold no password, uri, parameter, identity, Authorization header or key', () => {
    secrets
      .set('the broker password', PASSWORD)
      .set('the Authorization header', basic)
      .set('the encryption key', ENCRYPTION_KEYS.split(':')[1]!)
      .set("the Redis offering's admin URL", redisServiceUrl)
      .set('the citext parameter', '"citext"')
      .set('the hstore parameter', '"hstore"');
    const lines = stdout.split('\n').filter(Boolean);
    assert.ok(lines.length > 50, `the log has the run (${lines.length} lines)`);
    assert.ok(
      lines.some((line) => line.includes('"level":10') && line.includes('request received')),
      'trace lines are written',
    );
    assert.ok(
      lines.some((line) => line.includes('"level":20')),
      'debug lines are written',
    );
    const redactedHeaders = lines.find((line) => line.includes('"authorization":"[redacted]"'));
    assert.ok(redactedHeaders, 'the request headers are logged, the Authorization header redacted');
    for (const [what, secret] of secrets) {
      assert.equal(stdout.includes(secret), false, `${what} is in stdout`);
      assert.equal(stderr.includes(secret), false, `${what} is in stderr`);
    }
  });
});
