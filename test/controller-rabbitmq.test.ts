/**
 * The controller walkthrough with the `rabbitmq` offering, end to end: a real kube-apiserver, a
 * real Depot on the machine's RabbitMQ, and the controller as a process. A ServiceInstance and a
 * ServiceBinding give a Secret whose `uri` opens an AMQP connection (amqplib) that publishes and
 * consumes; deleting the binding deletes the user and closes that connection, deleting the instance
 * deletes the vhost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Secret, ServiceBinding, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { rabbitmqNames } from '../broker/offerings/rabbitmq/rabbitmq-offering.js';
import { withTimeout } from '../runtime/timeout.js';
import { startDepot, type TestDepot } from './helpers.js';
import {
  R,
  binding,
  brokerAuthSecret,
  create,
  ensureNamespace,
  instance,
  remove,
  secretValues,
  startController,
  startKubeApi,
  waitForGone,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';
import { AmqpConnections, RABBITMQ_URL, adminGet, roundTrip, userNames } from './rabbitmq-helpers.js';

const NS = 'messaging';
let api: KubeApi;
let depot: TestDepot;
let controller: ControllerProcess | undefined;
const amqp = new AmqpConnections();

before(async () => {
  api = await startKubeApi();
  depot = await startDepot('ctrl-rabbitmq', { env: { RABBITMQ_SERVICE_URL: RABBITMQ_URL } });
  await ensureNamespace(api, NS);
  await brokerAuthSecret(api, NS, 'depot-auth');
  await create(api, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
  });
});

after(async () => {
  await amqp.closeAll();
  await controller?.stop('SIGKILL');
  await depot?.close();
  await api?.stop();
});

describe('rabbitmq through the controller', () => {
  test('the Secret uri publishes and consumes; deleting binding and instance leaves nothing', async () => {
    controller = await startController(api);
    await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
    await create(
      api,
      R.ServiceInstance,
      instance('orders-queue', NS, {
        clusterServiceClassExternalName: 'rabbitmq',
        clusterServicePlanExternalName: 'shared',
      }),
    );
    await create(
      api,
      R.ServiceBinding,
      binding('orders-queue-binding', NS, {
        instanceRef: { name: 'orders-queue' },
        secretName: 'orders-queue-credentials',
      }),
    );
    await api.kubectl(
      'wait',
      '-n',
      NS,
      '--for=condition=Ready',
      '--timeout=30s',
      'serviceinstance/orders-queue',
      'servicebinding/orders-queue-binding',
    );

    const secret = await api.client.get<Secret>(R.Secret, 'orders-queue-credentials', NS);
    const creds = secretValues(secret);
    assert.equal(creds.type, 'rabbitmq');
    assert.equal(creds.provider, 'depot');
    assert.equal(secret.type, 'servicebinding.io/rabbitmq');
    const provisioned = await api.client.get<ServiceInstance>(R.ServiceInstance, 'orders-queue', NS);
    const instanceId = provisioned.spec.externalID!;
    const { vhost } = rabbitmqNames(instanceId);
    assert.equal(creds.vhost, vhost);
    // Nested credentials arrive as JSON: Cloud Foundry's layout survives into the Secret.
    const protocols = JSON.parse(creds.protocols!) as { amqp: { uri: string; vhost: string } };
    assert.equal(protocols.amqp.uri, creds.uri);
    assert.equal(protocols.amqp.vhost, vhost);

    const publisher = await amqp.connect(creds.uri!);
    const consumer = await amqp.connect(creds.uri!);
    assert.equal(await roundTrip(publisher, consumer, 'orders', 'order 1 from a pod'), 'order 1 from a pod');
    const connections = await adminGet<Array<{ vhost: string; user: string }>>(
      `connections/username/${creds.username}`,
    );
    assert.ok(connections?.every((c) => c.vhost === vhost && c.user === creds.username));

    const closed = new Promise<void>((resolve) => publisher.once('close', () => resolve()));
    await remove(api, R.ServiceBinding, 'orders-queue-binding', NS);
    await waitForGone(api, R.ServiceBinding, 'orders-queue-binding', NS);
    assert.equal(await api.client.find(R.Secret, 'orders-queue-credentials', NS), undefined);
    await withTimeout(closed, 10_000, "unbind left the binding's connection open");
    assert.equal((await userNames()).includes(creds.username!), false);

    await remove(api, R.ServiceInstance, 'orders-queue', NS);
    await waitForGone(api, R.ServiceInstance, 'orders-queue', NS);
    assert.equal(await adminGet(`vhosts/${vhost}`), undefined);
    const bound = await api.client.find<ServiceBinding>(R.ServiceBinding, 'orders-queue-binding', NS);
    assert.equal(bound, undefined);
  });
});
