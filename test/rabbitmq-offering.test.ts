/**
 * The `rabbitmq` offering against the real RabbitMQ server and its management API: an instance is
 * a virtual host, a binding a user with permissions on that vhost only and no tags. Isolation is
 * checked with real AMQP connections (amqplib) and real API calls with the bound credentials.
 * Start-up: a defaulted server that does not answer leaves `rabbitmq` out of the catalog; a named
 * one stops Depot.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig, withDatabase } from '../broker/config.js';
import { createDepot, StartupError } from '../broker/depot.js';
import { OperationEndedError, PermanentOfferingError } from '../broker/offerings/offering.js';
import { RabbitmqOffering, rabbitmqNames, rabbitmqUsername } from '../broker/offerings/rabbitmq/rabbitmq-offering.js';
import { rabbitPasswordHash } from '../broker/offerings/rabbitmq/password-hash.js';
import type { RabbitmqCredentials } from '../broker/offerings/rabbitmq/rabbitmq-credentials.js';
import { ConfigError } from '../runtime/config.js';
import { withTimeout } from '../runtime/timeout.js';
import { createLogger } from '../runtime/logger.js';
import {
  ADMIN_URL,
  ASYNC,
  ENCRYPTION_KEYS,
  REDIS_URL,
  bindingPath,
  dropDatabase,
  freePort,
  instancePath,
  operationOf,
  osb,
  startDepot,
  stateCounts,
  tenantRedisUrl,
  waitForOperation,
  type TestDepot,
  catalogAtStart,
} from './helpers.js';
import {
  AmqpConnections,
  RABBITMQ_PLAN_ID,
  RABBITMQ_SERVICE_ID,
  RABBITMQ_URL,
  adminGet,
  managementRequest,
  refusal,
  roundTrip,
  userNames,
} from './rabbitmq-helpers.js';

const rabbitQuery = `service_id=${RABBITMQ_SERVICE_ID}&plan_id=${RABBITMQ_PLAN_ID}`;
const rabbitBody = { service_id: RABBITMQ_SERVICE_ID, plan_id: RABBITMQ_PLAN_ID };
const rabbitHost = new URL(RABBITMQ_URL).hostname;
const apiPort = Number(new URL(RABBITMQ_URL).port || 80);

interface Permission {
  vhost: string;
  user: string;
  configure: string;
  write: string;
  read: string;
}

describe('rabbitmq offering', () => {
  let depot: TestDepot;
  const amqp = new AmqpConnections();

  before(async () => {
    depot = await startDepot('rabbitmq-offering', { env: { RABBITMQ_SERVICE_URL: RABBITMQ_URL } });
  });
  after(async () => {
    await amqp.closeAll();
    await depot.close();
  });

  const provision = async (id = randomUUID()) => {
    const res = await osb(depot)
      .put(instancePath(id) + ASYNC, { ...rabbitBody, organization_guid: 'org', space_guid: 'space' })
      .expect(202);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res))).state, 'succeeded');
    return id;
  };
  const bind = async (instanceId: string, bindingId = randomUUID(), extra: Record<string, unknown> = {}) => {
    const res = await osb(depot)
      .put(bindingPath(instanceId, bindingId), { ...rabbitBody, ...extra })
      .expect(201);
    return { bindingId, credentials: (res.body as { credentials: RabbitmqCredentials }).credentials };
  };
  const unbind = (instanceId: string, bindingId: string) =>
    osb(depot)
      .delete(`${bindingPath(instanceId, bindingId)}?${rabbitQuery}`)
      .expect(200);
  const deprovision = async (instanceId: string) => {
    const res = await osb(depot)
      .delete(`${instancePath(instanceId)}${ASYNC}&${rabbitQuery}`)
      .expect(202);
    return waitForOperation(depot, instancePath(instanceId), operationOf(res));
  };

  it('the catalog offers rabbitmq (shared), rotatable, with draft-04 schemas that take no property', async () => {
    const res = await osb(depot).get('/v2/catalog').expect(200);
    const services = (res.body as { services: Array<Record<string, unknown>> }).services;
    const rabbitmq = services.find((s) => s.name === 'rabbitmq');
    assert.ok(rabbitmq, 'rabbitmq is in the catalog');
    assert.equal(rabbitmq.id, RABBITMQ_SERVICE_ID);
    assert.equal(rabbitmq.bindable, true);
    assert.equal(rabbitmq.plan_updateable, false);
    const plans = rabbitmq.plans as Array<Record<string, unknown> & { schemas: Record<string, unknown> }>;
    assert.deepEqual(
      plans.map((p) => [p.id, p.name, p.binding_rotatable]),
      [[RABBITMQ_PLAN_ID, 'shared', true]],
    );
    assert.equal(JSON.stringify(rabbitmq).includes('x-depot'), false);
  });

  it('a binding gets the Cloud Foundry layout: a user with no tags and .* permissions on its vhost only', async () => {
    const instanceId = await provision();
    const { bindingId, credentials } = await bind(instanceId);
    const { vhost } = rabbitmqNames(instanceId);
    const username = rabbitmqUsername(instanceId, bindingId);
    assert.match(vhost, /^depot-[0-9a-f]{24}$/);
    assert.deepEqual(Object.keys(credentials).sort(), [
      'dashboard_url',
      'host',
      'hostname',
      'hostnames',
      'http_api_uri',
      'http_api_uris',
      'password',
      'port',
      'protocols',
      'ssl',
      'uri',
      'uris',
      'username',
      'vhost',
    ]);
    const { password } = credentials;
    assert.ok(password.length >= 32);
    const uri = `amqp://${username}:${password}@${rabbitHost}:5672/${encodeURIComponent(vhost)}`;
    const httpApiUri = `http://${username}:${password}@${rabbitHost}:${apiPort}/api/`;
    assert.deepEqual(
      { ...credentials, protocols: undefined },
      {
        uri,
        uris: [uri],
        host: rabbitHost,
        hostname: rabbitHost,
        hostnames: [rabbitHost],
        port: 5672,
        vhost,
        username,
        password,
        ssl: false,
        http_api_uri: httpApiUri,
        http_api_uris: [httpApiUri],
        dashboard_url: `http://${rabbitHost}:${apiPort}/`,
        protocols: undefined,
      },
    );
    assert.deepEqual(Object.keys(credentials.protocols).sort(), ['amqp', 'management']);
    assert.deepEqual(credentials.protocols.amqp, {
      host: rabbitHost,
      hosts: [rabbitHost],
      port: 5672,
      vhost,
      username,
      password,
      ssl: false,
      uri,
      uris: [uri],
    });
    assert.deepEqual(credentials.protocols.management, {
      host: rabbitHost,
      hosts: [rabbitHost],
      port: apiPort,
      path: '/api/',
      username,
      password,
      ssl: false,
      uri: httpApiUri,
      uris: [httpApiUri],
    });

    // On the server: the vhost, and a user without tags whose only permissions are on it.
    assert.equal((await adminGet<{ name: string }>(`vhosts/${vhost}`))?.name, vhost);
    const user = await adminGet<{ name: string; tags: string[] | string; hashing_algorithm: string }>(
      `users/${username}`,
    );
    assert.deepEqual(user?.tags, []);
    const permissions = (await adminGet<Permission[]>(`users/${username}/permissions`))!;
    assert.deepEqual(permissions, [{ vhost, user: username, configure: '.*', write: '.*', read: '.*' }]);

    // Publish and consume with the bound uri.
    const connection = await amqp.connect(credentials.uri);
    assert.equal(await roundTrip(connection, connection, 'greetings', 'Hello, Depot'), 'Hello, Depot');
    // GET binding (bindings_retrievable) returns the same credentials.
    const fetched = await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
    assert.deepEqual((fetched.body as { credentials: RabbitmqCredentials }).credentials, credentials);
    // Neither the password nor anything derived from it reaches the log.
    const everything = depot.logs.join('\n');
    assert.equal(everything.includes(password), false);
    assert.equal(everything.includes(createHash('sha256').update(password).digest('hex')), false);
  });

  it("isolation: a binding cannot connect to another instance's vhost, nor to the default one", async () => {
    const [first, second] = [await provision(), await provision()];
    const a = (await bind(first)).credentials;
    const b = (await bind(second)).credentials;
    assert.notEqual(a.vhost, b.vhost);
    // b keeps a message in its queue `orders`.
    const connectionB = await amqp.connect(b.uri);
    const channelB = await connectionB.createConfirmChannel();
    await channelB.assertQueue('orders', { durable: true });
    channelB.sendToQueue('orders', Buffer.from('of b'), { persistent: true });
    await channelB.waitForConfirms();

    // a's user, on b's vhost (its uri with b's vhost): the server refuses to open the connection
    // (530 NOT_ALLOWED, which amqplib reports without its text), so it can declare, publish and
    // consume nothing there. The default vhost `/` likewise. The admin's user may open both.
    const onVhost = (uri: string, vhost: string) => uri.replace(/\/[^/]*$/, `/${encodeURIComponent(vhost)}`);
    const notOpened = /^Expected ConnectionOpenOk; got <ConnectionClose channel:0>$/;
    assert.match((await refusal(amqp.connect(onVhost(a.uri, b.vhost))))!, notOpened);
    assert.match((await refusal(amqp.connect(onVhost(a.uri, '/'))))!, notOpened);
    const admin = new URL(RABBITMQ_URL);
    const adminUri = `amqp://${admin.username}:${admin.password}@${rabbitHost}:5672/`;
    assert.equal(await refusal(amqp.connect(onVhost(adminUri, b.vhost))), undefined);
    assert.equal(await refusal(amqp.connect(onVhost(adminUri, '/'))), undefined);
    // Nor log in as b with a's password.
    const asB = b.uri.replace(`:${b.password}@`, `:${a.password}@`);
    assert.match((await refusal(amqp.connect(asB)))!, /ACCESS_REFUSED/);

    // In its own vhost, `orders` is a queue of a's: b's message is not there.
    const connectionA = await amqp.connect(a.uri);
    const channelA = await connectionA.createChannel();
    assert.equal((await channelA.assertQueue('orders', { durable: true })).messageCount, 0);
    assert.equal(await channelA.get('orders'), false);
    assert.equal((await channelB.checkQueue('orders')).messageCount, 1, "b's message is untouched");
    const kept = await channelB.get('orders', { noAck: true });
    assert.equal(kept && kept.content.toString(), 'of b');
  });

  it('isolation: the bound http_api_uri cannot list vhosts, queues or users (no management tag: 401)', async () => {
    const mine = (await bind(await provision())).credentials;
    const theirs = (await bind(await provision())).credentials;
    for (const path of ['vhosts', `vhosts/${theirs.vhost}`, `queues/${theirs.vhost}`, 'users', 'whoami', 'overview']) {
      const answer = await managementRequest(mine.http_api_uri, 'GET', path);
      assert.equal(answer.status, 401, path);
      assert.deepEqual(answer.body, { error: 'not_authorised', reason: 'Not management user' }, path);
    }
    // Its own vhost too: the API is the operator's, AMQP is the tenant's.
    assert.equal((await managementRequest(mine.http_api_uri, 'GET', `queues/${mine.vhost}`)).status, 401);
    // The admin sees both vhosts (so the 401 is about the user, not the URL).
    const vhosts = (await adminGet<Array<{ name: string }>>('vhosts?columns=name'))!.map((v) => v.name);
    assert.ok(vhosts.includes(mine.vhost) && vhosts.includes(theirs.vhost));
  });

  it('two bindings of one instance share its vhost; unbinding one closes its connection only', async () => {
    const instanceId = await provision();
    const first = await bind(instanceId);
    const second = await bind(instanceId);
    assert.equal(first.credentials.vhost, second.credentials.vhost);
    assert.notEqual(first.credentials.username, second.credentials.username);
    const one = await amqp.connect(first.credentials.uri);
    const two = await amqp.connect(second.credentials.uri);
    assert.equal(await roundTrip(one, two, 'jobs', 'from one'), 'from one');
    assert.equal(await roundTrip(two, one, 'jobs', 'from two'), 'from two');

    const closed = new Promise<string>((resolve) => one.once('close', (error?: Error) => resolve(String(error))));
    await unbind(instanceId, first.bindingId);
    const reason = await withTimeout(closed, 10_000, 'the connection is still open');
    assert.match(reason, /CONNECTION_FORCED/, 'the server closed the open connection');
    assert.equal((await userNames()).includes(first.credentials.username), false);
    assert.deepEqual(await adminGet(`connections/username/${first.credentials.username}`), []);
    assert.match((await refusal(amqp.connect(first.credentials.uri)))!, /ACCESS_REFUSED/);
    // The other binding's connection stayed open and works; so do new ones.
    assert.equal(await roundTrip(two, two, 'jobs', 'still here'), 'still here');
    const again = await amqp.connect(second.credentials.uri);
    assert.equal(await roundTrip(again, two, 'jobs', 'reconnected'), 'reconnected');
    // A second DELETE: 410 Gone, nothing else happens.
    await osb(depot)
      .delete(`${bindingPath(instanceId, first.bindingId)}?${rabbitQuery}`)
      .expect(410);
  });

  it('a rotated binding is a new user; both work until each is unbound', async () => {
    const instanceId = await provision();
    const old = await bind(instanceId);
    const rotated = await bind(instanceId, randomUUID(), { predecessor_binding_id: old.bindingId });
    assert.notEqual(rotated.credentials.username, old.credentials.username);
    assert.notEqual(rotated.credentials.password, old.credentials.password);
    assert.equal(rotated.credentials.vhost, old.credentials.vhost);
    const before = await amqp.connect(old.credentials.uri);
    const after_ = await amqp.connect(rotated.credentials.uri);
    assert.equal(await roundTrip(before, after_, 'handover', 'switching'), 'switching');
    await unbind(instanceId, old.bindingId);
    assert.match((await refusal(amqp.connect(old.credentials.uri)))!, /ACCESS_REFUSED/);
    assert.equal(await roundTrip(after_, after_, 'handover', 'switched'), 'switched');
  });

  it('deprovision deletes the vhost with its queues, exchanges and messages, and its users; nothing else', async () => {
    const [doomed, neighbour] = [await provision(), await provision()];
    const bindings = [await bind(doomed), await bind(doomed)];
    const other = (await bind(neighbour)).credentials;
    const connection = await amqp.connect(bindings[0]!.credentials.uri);
    const channel = await connection.createConfirmChannel();
    await channel.assertExchange('events', 'topic', { durable: true });
    for (let i = 0; i < 20; i++) {
      await channel.assertQueue(`q${i}`, { durable: true });
      await channel.bindQueue(`q${i}`, 'events', `key.${i}`);
      channel.publish('events', `key.${i}`, Buffer.from('x'), { persistent: true });
    }
    await channel.waitForConfirms();
    const closed = new Promise<void>((resolve) => connection.once('close', () => resolve()));
    const neighbourConnection = await amqp.connect(other.uri);
    await roundTrip(neighbourConnection, neighbourConnection, 'stays', 'before');

    const { vhost } = rabbitmqNames(doomed);
    assert.equal((await adminGet<unknown[]>(`queues/${vhost}?columns=name`))!.length, 20);
    const last = await deprovision(doomed);
    assert.deepEqual(last, { state: 'succeeded', description: 'Deprovisioned.' });
    await withTimeout(closed, 10_000, "the binding's connection is still open");
    assert.equal(await adminGet(`vhosts/${vhost}`), undefined);
    assert.equal(await adminGet(`queues/${vhost}`), undefined);
    assert.equal(await adminGet(`exchanges/${vhost}`), undefined);
    const users = await userNames();
    for (const { credentials } of bindings) assert.equal(users.includes(credentials.username), false);
    assert.equal(users.filter((u) => u.startsWith(rabbitmqNames(doomed).userPrefix)).length, 0);
    // The neighbour keeps its vhost, user and open connection.
    assert.ok(users.includes(other.username));
    assert.equal(await roundTrip(neighbourConnection, neighbourConnection, 'stays', 'after'), 'after');
  });

  it('instances and bindings take no parameters: 400 naming the field, and nothing is created', async () => {
    const vhostsBefore = (await adminGet<unknown[]>('vhosts?columns=name'))!.length;
    const usersBefore = (await userNames()).length;
    const counts = await stateCounts(depot);
    const newId = randomUUID();
    const res = await osb(depot)
      .put(instancePath(newId) + ASYNC, {
        ...rabbitBody,
        organization_guid: 'o',
        space_guid: 's',
        parameters: { max_queues: 10 },
      })
      .expect(400);
    assert.match(
      (res.body as { description: string }).description,
      /parameters\.max_queues is not an allowed property/,
    );
    assert.deepEqual(await stateCounts(depot), counts);
    assert.equal(await adminGet(`vhosts/${rabbitmqNames(newId).vhost}`), undefined);

    const instanceId = await provision();
    const after_ = await stateCounts(depot);
    const bad = await osb(depot)
      .put(bindingPath(instanceId, randomUUID()), { ...rabbitBody, parameters: { tags: 'administrator' } })
      .expect(400);
    assert.match((bad.body as { description: string }).description, /parameters\.tags is not an allowed property/);
    const update = await osb(depot)
      .patch(instancePath(instanceId) + ASYNC, { service_id: RABBITMQ_SERVICE_ID, parameters: { ha: true } })
      .expect(400);
    assert.match((update.body as { description: string }).description, /parameters\.ha is not an allowed property/);
    assert.deepEqual(await stateCounts(depot), after_);
    assert.equal((await userNames()).length, usersBefore);
    assert.equal((await adminGet<unknown[]>('vhosts?columns=name'))!.length, vhostsBefore + 1);
  });

  describe('the offering itself (as a re-run job sees it)', () => {
    const offering = new RabbitmqOffering({
      serviceUrl: RABBITMQ_URL,
      logger: createLogger('silent'),
      progressIntervalMs: 50,
    });
    after(() => offering.close());
    const instance = (instanceId = randomUUID()) => ({
      instanceId,
      planName: 'shared',
      planSettings: {},
      parameters: {},
      context: {},
    });
    const quiet = { reportProgress: async () => undefined };

    it('every step is idempotent: provision, bind, unbind and deprovision run twice', async () => {
      const request = instance();
      await offering.provision(request);
      await offering.provision(request);
      const binding = { instance: request, bindingId: randomUUID(), parameters: {} };
      const first = (await offering.bind(binding)).credentials as unknown as RabbitmqCredentials;
      // A re-run bind resets the same user with a new password: only the newest works.
      const second = (await offering.bind(binding)).credentials as unknown as RabbitmqCredentials;
      assert.equal(second.username, first.username);
      assert.notEqual(second.password, first.password);
      assert.match((await refusal(amqp.connect(first.uri)))!, /ACCESS_REFUSED/);
      const connection = await amqp.connect(second.uri);
      assert.equal(await roundTrip(connection, connection, 'twice', 'ok'), 'ok');
      await offering.unbind(binding);
      await offering.unbind(binding);
      await offering.deprovision(request, quiet);
      await offering.deprovision(request, quiet);
      assert.equal(await adminGet(`vhosts/${rabbitmqNames(request.instanceId).vhost}`), undefined);
    });

    it('bind and update of an instance whose vhost does not exist fail at once, creating no user', async () => {
      const request = instance();
      const users = (await userNames()).length;
      for (const attempt of [
        () => offering.bind({ instance: request, bindingId: randomUUID(), parameters: {} }),
        () => offering.update({ ...request, previous: request }),
      ]) {
        await assert.rejects(attempt(), (error: Error) => {
          assert.ok(error instanceof PermanentOfferingError);
          assert.match(error.message, /the virtual host of service instance .* does not exist/);
          return true;
        });
      }
      assert.equal((await userNames()).length, users);
    });

    it('deprovision reports "deleted N of M users", then "deleted N of M queues" while the vhost goes', async () => {
      const request = instance();
      await offering.provision(request);
      const { credentials } = await offering.bind({ instance: request, bindingId: randomUUID(), parameters: {} });
      const connection = await amqp.connect(credentials.uri as string);
      const channel = await connection.createChannel();
      await Promise.all(Array.from({ length: 1500 }, (_, i) => channel.assertQueue(`many-${i}`, { durable: true })));
      const reports: string[] = [];
      await offering.deprovision(request, { reportProgress: async (text) => void reports.push(text) });

      assert.equal(reports[0], 'Deprovisioning: deleted 0 of 1 users.');
      const queues = reports
        .filter((text) => text.includes('queues'))
        .map((text) => {
          const match = /^Deprovisioning: deleted (\d+) of (\d+) queues\.$/.exec(text);
          assert.ok(match, text);
          return { deleted: Number(match[1]), total: Number(match[2]) };
        });
      assert.deepEqual(queues[0], { deleted: 0, total: 1500 });
      assert.ok(queues.length >= 2, `progress while the vhost was deleted: ${reports.join(' | ')}`);
      for (let i = 1; i < queues.length; i++) assert.ok(queues[i]!.deleted >= queues[i - 1]!.deleted);
      assert.equal(await adminGet(`vhosts/${rabbitmqNames(request.instanceId).vhost}`), undefined);

      // A retried job finds nothing left: no user, no vhost, and says so.
      reports.length = 0;
      await offering.deprovision(request, { reportProgress: async (text) => void reports.push(text) });
      assert.deepEqual(reports, ['Deprovisioning: deleted 0 of 0 users.']);
    });

    it('deprovision stops when its operation has ended (reportProgress throws OperationEndedError)', async () => {
      const request = instance();
      await offering.provision(request);
      const { credentials } = await offering.bind({ instance: request, bindingId: randomUUID(), parameters: {} });
      const ended = {
        reportProgress: async () => {
          throw new OperationEndedError('the deprovision operation ended while its job was still running');
        },
      };
      await assert.rejects(offering.deprovision(request, ended), OperationEndedError);
      // It stopped before deleting anything.
      assert.ok((await userNames()).includes(credentials.username as string));
      assert.ok(await adminGet(`vhosts/${rabbitmqNames(request.instanceId).vhost}`));
      await offering.deprovision(request, quiet);
    });

    it('credentials name RABBITMQ_SERVICE_PUBLIC_HOST/_PORT for AMQP and the public host for the API', async () => {
      const published = new RabbitmqOffering({
        serviceUrl: RABBITMQ_URL,
        logger: createLogger('silent'),
        publicHost: 'rabbit.example.com',
        publicPort: 5673,
      });
      const request = instance();
      await published.provision(request);
      const { credentials } = await published.bind({ instance: request, bindingId: randomUUID(), parameters: {} });
      const c = credentials as unknown as RabbitmqCredentials;
      assert.equal(c.host, 'rabbit.example.com');
      assert.equal(c.port, 5673);
      assert.equal(c.uri, `amqp://${c.username}:${c.password}@rabbit.example.com:5673/${c.vhost}`);
      assert.equal(c.http_api_uri, `http://${c.username}:${c.password}@rabbit.example.com:${apiPort}/api/`);
      assert.equal(c.dashboard_url, `http://rabbit.example.com:${apiPort}/`);
      assert.deepEqual(c.protocols.amqp.hosts, ['rabbit.example.com']);
      await published.deprovision(request, quiet);
    });

    it("the password goes to the server only as RabbitMQ's salted SHA-256 hash (its documented example)", async () => {
      const salt = Buffer.from([0x90, 0x8d, 0xc6, 0x0a]);
      // RabbitMQ's documented example: base64(salt ‖ sha256(salt ‖ "test12")).
      assert.equal(rabbitPasswordHash('test12', salt), 'kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR');
    });
  });
});

describe('config: RABBITMQ_SERVICE_URL and its public host and port', () => {
  it('defaults to the local management API as guest; credentials default to its host, port 5672', () => {
    const config = loadConfig({});
    assert.equal(config.rabbitmqServiceUrl, 'http://guest:guest@127.0.0.1:15672');
    assert.equal(config.rabbitmqServiceConfigured, false);
    assert.equal(config.rabbitmqServicePublicHost, undefined);
    assert.equal(config.rabbitmqServicePublicPort, undefined);
    const set = loadConfig({
      RABBITMQ_SERVICE_URL: 'https://depot:pw@rabbit.internal:15671',
      RABBITMQ_SERVICE_PUBLIC_HOST: 'amqp.example.com',
      RABBITMQ_SERVICE_PUBLIC_PORT: '5673',
    });
    assert.equal(set.rabbitmqServiceConfigured, true);
    assert.equal(set.rabbitmqServicePublicHost, 'amqp.example.com');
    assert.equal(set.rabbitmqServicePublicPort, 5673);
  });

  it('names the variable at fault', () => {
    const fails = (env: Record<string, string>, variable: RegExp) =>
      assert.throws(
        () => loadConfig(env),
        (error: Error) => error instanceof ConfigError && variable.test(error.message),
      );
    fails({ RABBITMQ_SERVICE_URL: 'amqp://guest:guest@127.0.0.1:5672' }, /^RABBITMQ_SERVICE_URL must start with http/);
    fails({ RABBITMQ_SERVICE_URL: 'not a url' }, /^RABBITMQ_SERVICE_URL is not a valid URL/);
    fails({ RABBITMQ_SERVICE_PUBLIC_PORT: '0' }, /^RABBITMQ_SERVICE_PUBLIC_PORT/);
    fails({ RABBITMQ_SERVICE_PUBLIC_PORT: 'amqp' }, /^RABBITMQ_SERVICE_PUBLIC_PORT/);
  });
});

describe('first contact: rabbitmq is offered when its server answers', () => {
  const database = 'depot_test_rabbitmq_first_contact';
  const prefix = `depot-test-rabbitmq-first-contact-${randomUUID().slice(0, 8)}`;
  let env: Record<string, string>;
  before(async () => {
    await dropDatabase(database);
    env = {
      DATABASE_URL: withDatabase(ADMIN_URL, database),
      REDIS_URL,
      POSTGRES_SERVICE_URL: ADMIN_URL,
      REDIS_SERVICE_URL: await tenantRedisUrl(),
      QUEUE_PREFIX: prefix,
      ENCRYPTION_KEYS,
      BROKER_USERNAME: 'admin',
      BROKER_PASSWORD: 'secret',
    };
  });
  after(() => dropDatabase(database));

  const started = catalogAtStart;

  it('offers rabbitmq at the default URL when the machine’s RabbitMQ answers there', async () => {
    const { services, lines } = await started(loadConfig(env));
    assert.deepEqual(services, ['postgresql', 'redis', 'mysql', 'rabbitmq']);
    assert.equal(lines.filter((line) => line.includes('Not offering')).length, 0);
  });

  it('leaves rabbitmq out when the defaulted server does not answer; one warn line says how to offer it', async () => {
    const closed = await freePort();
    // A newcomer's machine without RabbitMQ: the default URL, at a port nothing listens on.
    const config = { ...loadConfig(env), rabbitmqServiceUrl: `http://guest:guest@127.0.0.1:${closed}` };
    assert.equal(config.rabbitmqServiceConfigured, false);
    const { services, lines } = await started(config);
    assert.deepEqual(services, ['postgresql', 'redis', 'mysql']);
    const notices = lines.filter((line) => line.includes('Not offering'));
    assert.equal(notices.length, 1);
    const { msg, level } = JSON.parse(notices[0]!) as { msg: string; level: number };
    assert.equal(level, 40); // warn
    assert.match(
      msg,
      new RegExp(
        `^Not offering rabbitmq\\. Cannot use RabbitMQ at 127\\.0\\.0\\.1:${closed} \\(RABBITMQ_SERVICE_URL\\), ` +
          'which the rabbitmq offering uses: RabbitMQ management API: GET /api/whoami: .*ECONNREFUSED',
      ),
    );
    assert.match(msg, /To offer it, set the variable/);
    assert.equal(msg.includes('guest:guest'), false, 'the admin URL is not logged');
  });

  it('a RABBITMQ_SERVICE_URL that cannot be used stops Depot at start, naming it', async () => {
    const closed = await freePort();
    const unusable = [
      [`http://guest:guest@127.0.0.1:${closed}`, /ECONNREFUSED/],
      [RABBITMQ_URL.replace(/:[^:@/]*@/, ':wrong-password@'), /answered 401/],
    ] as const;
    for (const [url, why] of unusable) {
      const config = loadConfig({ ...env, RABBITMQ_SERVICE_URL: url });
      await assert.rejects(createDepot(config, { role: 'api', logger: createLogger('silent') }), (error: Error) => {
        assert.ok(error instanceof StartupError);
        assert.match(
          error.message,
          /^Cannot use RabbitMQ at [^ ]+ \(RABBITMQ_SERVICE_URL\), which the rabbitmq offering uses: /,
        );
        assert.match(error.message, why);
        assert.equal(error.message.includes('wrong-password'), false);
        return true;
      });
    }
  });

  it('a RABBITMQ_SERVICE_URL whose user is no administrator stops Depot, saying so', async () => {
    const name = `depot-test-monitor-${randomUUID().slice(0, 8)}`;
    const answer = await managementRequest(RABBITMQ_URL, 'PUT', `users/${name}`, {
      password: 'monitor-password',
      tags: 'monitoring',
    });
    assert.equal(answer.status, 201);
    try {
      const url = new URL(RABBITMQ_URL);
      url.username = name;
      url.password = 'monitor-password';
      const config = loadConfig({ ...env, RABBITMQ_SERVICE_URL: url.toString() });
      await assert.rejects(createDepot(config, { role: 'api', logger: createLogger('silent') }), (error: Error) => {
        assert.ok(error instanceof StartupError);
        assert.match(error.message, new RegExp(`the user "${name}" of RabbitMQ at .* lacks the administrator tag`));
        return true;
      });
    } finally {
      await managementRequest(RABBITMQ_URL, 'DELETE', `users/${name}`);
    }
  });
});
