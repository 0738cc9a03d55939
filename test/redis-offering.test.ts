/**
 * The `redis` offering against the real Redis server: an instance is a key prefix, a binding
 * an ACL user confined to it. Isolation is checked with real connections: one binding cannot
 * read or write another instance's keys or channels, nor run administrative commands.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { createLogger } from '../runtime/logger.js';
import { OperationEndedError, PermanentOfferingError } from '../broker/offerings/offering.js';
import {
  RedisOffering,
  redisNames,
  redisUsername,
  type RedisCredentials,
} from '../broker/offerings/redis/redis-offering.js';
import {
  ASYNC,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  bindingPath,
  bindingRedis,
  instancePath,
  operationOf,
  osb,
  startDepot,
  startRedisServer,
  stateCounts,
  tenantRedisUrl,
  waitForOperation,
  type TestDepot,
} from './helpers.js';

const run = promisify(execFile);
const redisQuery = `service_id=${REDIS_SERVICE_ID}&plan_id=${REDIS_PLAN_ID}`;
const redisBody = { service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID };

/** The error a command gets, or undefined when it succeeds. */
async function refusal(client: Redis, command: string, ...args: string[]): Promise<string | undefined> {
  try {
    await client.call(command, ...args);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('redis offering', () => {
  let depot: TestDepot;
  /** The tenants' server (REDIS_SERVICE_URL), as its admin. */
  let serviceUrl: string;
  let admin: Redis;
  let serviceHost: string;
  let servicePort: number;
  const clients: Redis[] = [];
  const open = async (credentials: RedisCredentials) => {
    const client = bindingRedis(credentials.uri);
    clients.push(client);
    await client.connect();
    return client;
  };

  before(async () => {
    depot = await startDepot('redis-offering');
    serviceUrl = await tenantRedisUrl();
    ({ hostname: serviceHost, port: servicePort } = {
      hostname: new URL(serviceUrl).hostname,
      port: Number(new URL(serviceUrl).port),
    });
    admin = new Redis(serviceUrl);
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await depot.close();
  });

  const provision = async (id = randomUUID()) => {
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, { ...redisBody, organization_guid: 'org', space_guid: 'space' })
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res))).state, 'succeeded');
    return id;
  };
  const bind = async (instanceId: string, bindingId = randomUUID(), parameters?: Record<string, unknown>) => {
    const res = await osb(depot)
      .put(bindingPath(instanceId, bindingId), { ...redisBody, ...(parameters ? { parameters } : {}) })
      .expect(201);
    return { bindingId, credentials: (res.body as { credentials: RedisCredentials }).credentials };
  };
  const unbind = (instanceId: string, bindingId: string) =>
    osb(depot)
      .delete(`${bindingPath(instanceId, bindingId)}?${redisQuery}`)
      .expect(200);

  it('a binding gets {uri, host, port, username, password, key_prefix}, an ACL user kept to the prefix', async () => {
    const instanceId = await provision();
    const { bindingId, credentials } = await bind(instanceId);
    const names = redisNames(instanceId);
    assert.deepEqual(Object.keys(credentials).sort(), ['host', 'key_prefix', 'password', 'port', 'uri', 'username']);
    assert.equal(credentials.username, redisUsername(instanceId, bindingId));
    assert.equal(credentials.key_prefix, names.keyPrefix);
    assert.match(credentials.key_prefix, /^si:[0-9a-f]{24}:$/);
    assert.equal(credentials.host, serviceHost);
    assert.equal(credentials.port, servicePort);
    assert.ok(credentials.password.length >= 32);
    assert.equal(
      credentials.uri,
      `redis://${credentials.username}:${credentials.password}@${serviceHost}:${servicePort}`,
    );
    const acl = (await admin.call('ACL', 'GETUSER', credentials.username)) as unknown[];
    const rules = new Map<string, unknown>();
    for (let i = 0; i < acl.length; i += 2) rules.set(String(acl[i]), acl[i + 1]);
    assert.equal(rules.get('keys'), `~${credentials.key_prefix}*`);
    assert.equal(rules.get('channels'), `&${credentials.key_prefix}*`);
    assert.ok((rules.get('flags') as string[]).includes('on'));

    const client = await open(credentials);
    assert.equal(await client.set(`${credentials.key_prefix}greeting`, 'hello'), 'OK');
    assert.equal(await client.get(`${credentials.key_prefix}greeting`), 'hello');
    // GET binding (bindings_retrievable) returns the same credentials.
    const fetched = await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
    assert.deepEqual((fetched.body as { credentials: RedisCredentials }).credentials, credentials);
    // Neither the password nor the hash Redis was given reaches the log.
    const everything = depot.logs.join('\n');
    assert.equal(everything.includes(credentials.password), false);
    assert.equal(everything.includes(createHash('sha256').update(credentials.password).digest('hex')), false);
  });

  it("isolation: a binding cannot read or write another instance's keys or channels", async () => {
    const [first, second] = [await provision(), await provision()];
    const a = (await bind(first)).credentials;
    const b = (await bind(second)).credentials;
    assert.notEqual(a.key_prefix, b.key_prefix);
    const clientA = await open(a);
    const clientB = await open(b);
    await clientB.set(`${b.key_prefix}secret`, 'of b');

    assert.match((await refusal(clientA, 'GET', `${b.key_prefix}secret`))!, /^NOPERM/);
    assert.match((await refusal(clientA, 'SET', `${b.key_prefix}secret`, 'overwritten'))!, /^NOPERM/);
    assert.match((await refusal(clientA, 'DEL', `${b.key_prefix}secret`))!, /^NOPERM/);
    assert.match((await refusal(clientA, 'RENAME', `${a.key_prefix}x`, `${b.key_prefix}x`))!, /^NOPERM/);
    assert.match((await refusal(clientA, 'GET', 'unprefixed'))!, /^NOPERM/);
    // Nor become someone else: `default` is off, and the admin's password is not theirs.
    assert.match((await refusal(clientA, 'AUTH', 'default', 'anything'))!, /^WRONGPASS/);
    assert.match((await refusal(clientA, 'AUTH', 'depot-admin', 'guess'))!, /^WRONGPASS/);
    assert.match((await refusal(clientA, 'AUTH', b.username, 'guess'))!, /^WRONGPASS/);
    assert.match((await refusal(clientA, 'PUBLISH', `${b.key_prefix}news`, 'hi'))!, /^NOPERM/);
    assert.match((await refusal(clientA, 'SUBSCRIBE', `${b.key_prefix}news`))!, /^NOPERM/);
    assert.equal(await clientB.get(`${b.key_prefix}secret`), 'of b', "b's key is untouched");

    // Its own channel works.
    const subscriber = await open(a);
    const received = new Promise<string>((resolve) =>
      subscriber.on('message', (_channel: string, message: string) => resolve(message)),
    );
    await subscriber.subscribe(`${a.key_prefix}news`);
    await clientA.publish(`${a.key_prefix}news`, 'hello');
    assert.equal(await received, 'hello');
  });

  it('a binding cannot run administrative, dangerous or keyspace-wide commands', async () => {
    const { credentials } = await bind(await provision());
    const client = await open(credentials);
    // Refused when run (harmless ones) …
    const refusedWhenRun: string[][] = [
      ['KEYS', '*'],
      ['SCAN', '0'],
      ['RANDOMKEY'],
      ['DBSIZE'],
      ['INFO'],
      ['CONFIG', 'GET', 'maxmemory'],
      ['ACL', 'LIST'],
      ['CLIENT', 'LIST'],
      ['EVAL', 'return 1', '0'],
      ['SELECT', '1'],
      ['PUBSUB', 'CHANNELS'],
      ['CLIENT', 'TRACKING', 'on', 'BCAST'],
      ['MEMORY', 'STATS'],
      ['MEMORY', 'DOCTOR'],
      ['CLUSTER', 'INFO'],
      ['MODULE', 'LIST'],
    ];
    for (const command of refusedWhenRun) {
      assert.match(
        (await refusal(client, command[0]!, ...command.slice(1))) ?? 'allowed',
        /^NOPERM/,
        command.join(' '),
      );
    }
    // … and, for those that would harm the shared server if they ran, by ACL DRYRUN.
    const refusedByAcl: string[][] = [
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['CONFIG', 'SET', 'maxmemory', '1'],
      ['DEBUG', 'SLEEP', '0'],
      ['SHUTDOWN'],
      ['MONITOR'],
      ['ACL', 'SETUSER', 'intruder', 'on', '>pw', '~*', '+@all'],
      ['CLIENT', 'KILL', 'ID', '1'],
      ['FUNCTION', 'FLUSH'],
      ['SCRIPT', 'FLUSH'],
      ['MOVE', `${credentials.key_prefix}k`, '1'],
      ['COPY', `${credentials.key_prefix}a`, `${credentials.key_prefix}b`],
      ['SAVE'],
      ['REPLICAOF', 'NO', 'ONE'],
      ['SWAPDB', '0', '1'],
      ['MIGRATE', 'h', '1', `${credentials.key_prefix}k`, '0', '1'],
      ['MEMORY', 'PURGE'],
      ['CLUSTER', 'GETKEYSINSLOT', '0', '10'],
      ['MODULE', 'LOAD', '/tmp/x.so'],
    ];
    for (const command of refusedByAcl) {
      const answer = String(await admin.call('ACL', 'DRYRUN', credentials.username, ...command));
      assert.match(answer, /no permissions/, command.join(' '));
    }
    assert.equal(
      await admin.call('ACL', 'DRYRUN', credentials.username, 'SET', `${credentials.key_prefix}k`, 'v'),
      'OK',
    );
    // Everyday commands on its own keys work.
    const key = `${credentials.key_prefix}counter`;
    assert.equal(await client.incr(key), 1);
    assert.equal(await client.expire(key, 60), 1);
    assert.deepEqual(await client.multi().incr(key).get(key).exec(), [
      [null, 2],
      [null, '2'],
    ]);
    assert.equal(await client.call('CLIENT', 'SETNAME', 'app'), 'OK');
  });

  it('bindings of one instance share its keys; read_only bindings can read, not write', async () => {
    const instanceId = await provision();
    const writer = (await bind(instanceId)).credentials;
    const reader = (await bind(instanceId, randomUUID(), { read_only: true })).credentials;
    assert.equal(writer.key_prefix, reader.key_prefix);
    await (await open(writer)).set(`${writer.key_prefix}shared`, 'yes');
    const readerClient = await open(reader);
    assert.equal(await readerClient.get(`${reader.key_prefix}shared`), 'yes');
    assert.match((await refusal(readerClient, 'SET', `${reader.key_prefix}shared`, 'no'))!, /^NOPERM/);
    // Not even through commands that only read their key, yet write: XREADGROUP moves entries
    // into the group's pending list.
    assert.match(
      String(
        await admin.call(
          'ACL',
          'DRYRUN',
          reader.username,
          'XREADGROUP',
          'GROUP',
          'g',
          'c',
          'STREAMS',
          `${reader.key_prefix}s`,
          '>',
        ),
      ),
      /no permissions/,
    );
    assert.equal(
      await admin.call('ACL', 'DRYRUN', reader.username, 'XREAD', 'STREAMS', `${reader.key_prefix}s`, '0'),
      'OK',
    );
  });

  it('unbind deletes the ACL user and disconnects its clients; the instance keeps its keys', async () => {
    const instanceId = await provision();
    const kept = (await bind(instanceId)).credentials;
    const { bindingId, credentials } = await bind(instanceId);
    const client = await open(credentials);
    await client.set(`${credentials.key_prefix}stays`, '1');
    const closed = new Promise<void>((resolve) => client.once('end', () => resolve()));

    await unbind(instanceId, bindingId);
    assert.equal(((await admin.call('ACL', 'USERS')) as string[]).includes(credentials.username), false);
    await closed; // the server closed the open connection
    const anonymous = new Redis({ host: serviceHost, port: servicePort, lazyConnect: true, enableReadyCheck: false });
    clients.push(anonymous);
    await anonymous.connect();
    assert.match((await refusal(anonymous, 'AUTH', credentials.username, credentials.password))!, /^WRONGPASS/);
    assert.equal(await (await open(kept)).get(`${kept.key_prefix}stays`), '1');
    // A second DELETE: 410 Gone, nothing else happens.
    await osb(depot)
      .delete(`${bindingPath(instanceId, bindingId)}?${redisQuery}`)
      .expect(410);
  });

  it('deprovision deletes the users and every key under the prefix, and nothing else', async () => {
    const [doomed, neighbour] = [await provision(), await provision()];
    const { credentials } = await bind(doomed);
    const other = (await bind(neighbour)).credentials;
    const pipeline = admin.pipeline();
    for (let i = 0; i < 20_000; i++) pipeline.set(`${credentials.key_prefix}${i}`, 'x');
    for (let i = 0; i < 100; i++) pipeline.set(`${other.key_prefix}${i}`, 'y');
    await pipeline.exec();
    const client = await open(credentials);
    const closed = new Promise<void>((resolve) => client.once('end', () => resolve()));

    const res = await osb(depot)
      .delete(`${instancePath(doomed)}${ASYNC}&${redisQuery}`)
      .expect(202);
    const last = await waitForOperation(depot, instancePath(doomed), operationOf(res));
    assert.deepEqual(last, { state: 'succeeded', description: 'Deprovisioned.' });
    await closed;
    assert.equal(((await admin.call('ACL', 'USERS')) as string[]).includes(credentials.username), false);
    const [, left] = (await admin.scan('0', 'MATCH', `${credentials.key_prefix}*`, 'COUNT', '100000')) as [
      string,
      string[],
    ];
    assert.deepEqual(left, []);
    assert.equal((await admin.scan('0', 'MATCH', `${other.key_prefix}*`, 'COUNT', '100000'))[1].length, 100);
    assert.equal(await (await open(other)).get(`${other.key_prefix}7`), 'y', "the neighbour's binding still works");
  });

  it('deprovision reports "deleted N of about M keys" as it goes, and is idempotent', async () => {
    const offering = new RedisOffering({
      serviceUrl,
      logger: createLogger('silent'),
      deleteBatchSize: 500,
      progressIntervalMs: 0,
    });
    try {
      const instanceId = randomUUID();
      const { keyPrefix } = redisNames(instanceId);
      const pipeline = admin.pipeline();
      for (let i = 0; i < 12_000; i++) pipeline.set(`${keyPrefix}${i}`, 'x');
      await pipeline.exec();
      const request = { instanceId, planName: 'shared', planSettings: {}, parameters: {}, context: {} };
      const reports: string[] = [];
      await offering.deprovision(request, { reportProgress: async (text) => void reports.push(text) });

      const counts = reports.map((text) => {
        const match = /^Deprovisioning: deleted (\d+) of about (\d+) keys\.$/.exec(text);
        assert.ok(match, text);
        return { deleted: Number(match[1]), about: Number(match[2]) };
      });
      assert.ok(counts.length > 5, `several reports, got ${counts.length}`);
      assert.equal(counts[0]!.deleted, 0);
      assert.equal(counts.at(-1)!.deleted, 12_000);
      for (let i = 1; i < counts.length; i++)
        assert.ok(counts[i]!.deleted >= counts[i - 1]!.deleted, 'deleted never goes down');
      for (const { deleted, about } of counts) assert.ok(about >= deleted);
      assert.equal((await admin.scan('0', 'MATCH', `${keyPrefix}*`, 'COUNT', '100000'))[1].length, 0);

      // A retried job finds nothing left and ends the same way.
      reports.length = 0;
      await offering.deprovision(request, { reportProgress: async (text) => void reports.push(text) });
      assert.equal(reports.at(-1), `Deprovisioning: deleted 0 of about 0 keys.`);
    } finally {
      await offering.close();
    }
  });

  it('deprovision stops when its operation has ended (reportProgress throws OperationEndedError)', async () => {
    const offering = new RedisOffering({
      serviceUrl,
      logger: createLogger('silent'),
      deleteBatchSize: 100,
      progressIntervalMs: 0,
    });
    try {
      const instanceId = randomUUID();
      const { keyPrefix } = redisNames(instanceId);
      const pipeline = admin.pipeline();
      for (let i = 0; i < 5000; i++) pipeline.set(`${keyPrefix}${i}`, 'x');
      await pipeline.exec();
      let reports = 0;
      const ended = {
        reportProgress: async () => {
          if (++reports > 2)
            throw new OperationEndedError('the deprovision operation ended while its job was still running');
        },
      };
      const request = { instanceId, planName: 'shared', planSettings: {}, parameters: {}, context: {} };
      await assert.rejects(offering.deprovision(request, ended), OperationEndedError);
      const left = (await admin.scan('0', 'MATCH', `${keyPrefix}*`, 'COUNT', '100000'))[1].length;
      assert.ok(left > 4000, `it stopped at once: ${left} of 5000 keys left`);
      await offering.deprovision(request, { reportProgress: async () => undefined });
    } finally {
      await offering.close();
    }
  });

  it("redis-cli with the bound credentials: its own keys work, another instance's keys are refused", async () => {
    const mine = (await bind(await provision())).credentials;
    const theirs = (await bind(await provision())).credentials;
    await (await open(theirs)).set(`${theirs.key_prefix}secret`, 'not yours');
    const cli = (...args: string[]) => run('redis-cli', ['-u', mine.uri, '--no-auth-warning', ...args]);
    assert.equal((await cli('SET', `${mine.key_prefix}greeting`, 'hello')).stdout.trim(), 'OK');
    assert.equal((await cli('GET', `${mine.key_prefix}greeting`)).stdout.trim(), 'hello');
    const refused = await cli('GET', `${theirs.key_prefix}secret`);
    assert.match(
      refused.stdout.trim(),
      /^NOPERM this user has no permissions to access one of the keys used as arguments/,
    );
  });

  it('instances take no parameters; a refused bind creates no user', async () => {
    const users = ((await admin.call('ACL', 'USERS')) as string[]).length;
    const counts = await stateCounts(depot);
    const res = await osb(depot)
      .put(instancePath(randomUUID()) + ASYNC, {
        ...redisBody,
        organization_guid: 'o',
        space_guid: 's',
        parameters: { maxmemory: '1gb' },
      })
      .expect(400);
    assert.match((res.body as { description: string }).description, /parameters\.maxmemory is not an allowed property/);
    const instanceId = await provision();
    const after = await stateCounts(depot);
    const bad = await osb(depot)
      .put(bindingPath(instanceId, randomUUID()), { ...redisBody, parameters: { read_only: 'yes' } })
      .expect(400);
    assert.match((bad.body as { description: string }).description, /parameters\.read_only must be boolean/);
    assert.deepEqual(await stateCounts(depot), after);
    assert.equal(after.instances, (counts.instances ?? 0) + 1);
    assert.equal(((await admin.call('ACL', 'USERS')) as string[]).length, users);
  });

  it('refuses to provision or bind on a server where anyone can log in as "default" (a stock Redis)', async () => {
    const open = await startRedisServer(false);
    const offering = new RedisOffering({ serviceUrl: open.url, logger: createLogger('silent') });
    try {
      const instance = { instanceId: randomUUID(), planName: 'shared', planSettings: {}, parameters: {}, context: {} };
      const context = { reportProgress: async () => undefined };
      for (const attempt of [
        () => offering.provision(instance),
        () => offering.bind({ instance, bindingId: randomUUID(), parameters: {} }),
      ]) {
        await assert.rejects(attempt(), (error: Error) => {
          assert.ok(error instanceof PermanentOfferingError);
          assert.match(error.message, /lets anyone log in as "default" without a password/);
          return true;
        });
      }
      const probe = new Redis(open.url);
      assert.deepEqual((await probe.call('ACL', 'USERS')) as string[], ['default'], 'no user was created');
      probe.disconnect();
      await offering.deprovision(instance, context); // removing works anywhere
    } finally {
      await offering.close();
      open.stop();
    }
  });
});
