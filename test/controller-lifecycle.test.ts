/**
 * The controller end to end against a real kube-apiserver and a real Depot: the README's
 * walkthrough (a PostgreSQL database whose bound Secret opens a session), resuming after a
 * crash in the middle of an operation, leader election between two replicas, events, and the
 * deploy/ manifests checked by the API server.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Lease, Secret, ServiceBinding, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { adminQuery, passwordMatchesRole, type TestDepot } from './helpers.js';
import {
  R,
  binding,
  brokerAuthSecret,
  condition,
  create,
  ensureNamespace,
  instance,
  remove,
  secretValues,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForGone,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';

const NS = 'lifecycle';
let api: KubeApi;
let depot: TestDepot;
const controllers: ControllerProcess[] = [];

async function controller(env: Record<string, string> = {}): Promise<ControllerProcess> {
  const started = await startController(api, env);
  controllers.push(started);
  return started;
}

before(async () => {
  api = await startKubeApi();
  depot = await startTestBroker('ctrl-lifecycle');
  await ensureNamespace(api, NS);
  await brokerAuthSecret(api, NS, 'depot-auth');
  await create(api, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
  });
});

after(async () => {
  for (const c of controllers) await c.stop('SIGKILL');
  await depot?.close();
  await api?.stop();
});

describe('walkthrough', () => {
  test('an instance and a binding give a Secret whose uri opens psql; deleting both leaves nothing', async () => {
    const c = await controller();
    await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
    await create(
      api,
      R.ServiceInstance,
      instance('orders-db', NS, {
        clusterServiceClassExternalName: 'postgresql',
        clusterServicePlanExternalName: 'small',
        parameters: { extensions: ['citext'] },
      }),
    );
    await create(
      api,
      R.ServiceBinding,
      binding('orders-db-binding', NS, { instanceRef: { name: 'orders-db' }, secretName: 'orders-db-credentials' }),
    );
    await api.kubectl(
      'wait',
      '-n',
      NS,
      '--for=condition=Ready',
      '--timeout=30s',
      'serviceinstance/orders-db',
      'servicebinding/orders-db-binding',
    );

    const secret = await api.client.get<Secret>(R.Secret, 'orders-db-credentials', NS);
    const creds = secretValues(secret);
    assert.equal(creds.type, 'postgresql');
    assert.equal(creds.provider, 'depot');
    assert.equal(secret.type, 'servicebinding.io/postgresql');
    const session = new pg.Client({ connectionString: creds.uri });
    await session.connect();
    try {
      const { rows } = await session.query<{ db: string; who: string }>(
        'select current_database() as db, session_user as who',
      );
      assert.equal(rows[0]!.db, creds.database);
      assert.equal(rows[0]!.who, creds.username);
      await session.query('create table orders (id citext primary key)');
    } finally {
      await session.end();
    }
    assert.equal(
      await passwordMatchesRole(creds.username!, creds.password!),
      true,
      "the bound password is the role's password",
    );

    const bound = await api.client.get<ServiceBinding>(R.ServiceBinding, 'orders-db-binding', NS);
    assert.equal(bound.status?.binding?.name, 'orders-db-credentials');
    const { stdout: described } = await api.kubectl('describe', 'serviceinstance', '-n', NS, 'orders-db');
    assert.match(described, /Normal\s+ProvisionRequestInFlight/);
    assert.match(described, /Normal\s+ProvisionedSuccessfully\s+.*The instance was provisioned successfully/);

    await remove(api, R.ServiceBinding, 'orders-db-binding', NS);
    await waitForGone(api, R.ServiceBinding, 'orders-db-binding', NS);
    assert.equal(await api.client.find(R.Secret, 'orders-db-credentials', NS), undefined);
    assert.deepEqual(await adminQuery('select 1 from pg_roles where rolname = $1', [creds.username]), []);
    await remove(api, R.ServiceInstance, 'orders-db', NS);
    await waitForGone(api, R.ServiceInstance, 'orders-db', NS);
    assert.deepEqual(await adminQuery('select 1 from pg_database where datname = $1', [creds.database]), []);
    await c.stop();
  });
});

describe('restarts', () => {
  test('a controller killed during an async provision resumes polling from status', async () => {
    const first = await controller();
    await create(
      api,
      R.ServiceInstance,
      instance('survivor', NS, {
        clusterServiceClassExternalName: 'depot-test',
        clusterServicePlanExternalName: 'slow',
      }),
    );
    const provisioning = await waitForReason<ServiceInstance>(api, R.ServiceInstance, 'survivor', NS, 'Provisioning');
    assert.equal(provisioning.status?.asyncOpInProgress, true);
    await first.stop('SIGKILL');
    const second = await controller({ LEASE_DURATION_SECONDS: '2' });
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'survivor',
      NS,
      'ProvisionedSuccessfully',
      'Ready',
      30_000,
    );
    assert.equal(ready.status?.lastOperation, undefined);
    assert.equal(ready.status?.externalProperties?.clusterServicePlanExternalName, 'slow');
    await second.stop();
  });

  test('a controller killed right after recording a bind intent completes the bind after restart', async () => {
    const first = await controller();
    await create(
      api,
      R.ServiceInstance,
      instance('intent', NS, { clusterServiceClassExternalName: 'depot-test-single' }),
    );
    await waitForReason(api, R.ServiceInstance, 'intent', NS, 'ProvisionedSuccessfully');
    await first.stop();
    // What a crash between "intent written" and "broker answered" leaves behind, written by hand.
    await create(api, R.ServiceBinding, binding('intent-binding', NS, { instanceRef: { name: 'intent' } }));
    const created = await api.client.get<ServiceBinding>(R.ServiceBinding, 'intent-binding', NS);
    await api.client.updateStatus(R.ServiceBinding, {
      ...created,
      status: {
        currentOperation: 'Bind',
        operationStartTime: new Date().toISOString(),
        unbindStatus: 'Required',
        observedGeneration: created.metadata.generation,
        inProgressProperties: {},
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'BindingRequestInFlight',
            message: 'Binding request for ServiceBinding in-flight to Broker',
            lastTransitionTime: new Date().toISOString(),
          },
        ],
      },
    });
    const second = await controller();
    await waitForReason(api, R.ServiceBinding, 'intent-binding', NS, 'InjectedBindResult');
    assert.equal(
      secretValues(await api.client.get<Secret>(R.Secret, 'intent-binding', NS))['special-key-1'],
      'special-value-1',
    );
    await second.stop();
  });
});

describe('leader election', () => {
  test('two replicas: one leads; when it stops the other takes over and reconciles', async () => {
    const a = await controller({ CONTROLLER_ID: 'replica-a' });
    await waitFor(
      async () =>
        (await api.client.find<Lease>(R.Lease, 'depot-catalog-controller', 'default'))?.spec.holderIdentity ===
        'replica-a',
      10_000,
      'replica-a to lead',
    );
    const b = await controller({ CONTROLLER_ID: 'replica-b' });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.match(await a.metrics(), /^depot_controller_leader 1$/m);
    assert.match(await b.metrics(), /^depot_controller_leader 0$/m);
    // The probes' port serves no metrics: they have a listener of their own (METRICS_PORT).
    assert.equal((await fetch(`http://127.0.0.1:${a.port}/metrics`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${a.port}/readyz`)).status, 200);
    assert.equal(
      (await api.client.get<Lease>(R.Lease, 'depot-catalog-controller', 'default')).spec.holderIdentity,
      'replica-a',
    );

    const stoppedAt = Date.now();
    assert.equal(await a.stop('SIGTERM'), 0, 'a clean stop exits 0');
    await waitFor(
      async () =>
        (await api.client.get<Lease>(R.Lease, 'depot-catalog-controller', 'default')).spec.holderIdentity ===
        'replica-b',
      10_000,
      'replica-b to lead',
    );
    const handover = Date.now() - stoppedAt;
    assert.ok(handover < 3000, `released lease taken over in ${handover} ms`);
    await create(
      api,
      R.ServiceInstance,
      instance('after-handover', NS, { clusterServiceClassExternalName: 'depot-test-single' }),
    );
    await waitForReason(api, R.ServiceInstance, 'after-handover', NS, 'ProvisionedSuccessfully');
    await b.stop();
  });
});

describe('deploy/ manifests', () => {
  test('the API server accepts every manifest (server-side dry run)', async () => {
    const deploy = path.resolve(import.meta.dirname, '../deploy');
    await api.kubectl('apply', '-f', path.join(deploy, '00-namespace.yaml'));
    const { stdout } = await api.kubectl('apply', '--dry-run=server', '-f', deploy);
    for (const object of [
      'deployment.apps/depot-broker',
      'service/depot-broker',
      'deployment.apps/depot-worker',
      'deployment.apps/depot-catalog-controller',
      'clusterrole.rbac.authorization.k8s.io/depot-catalog-controller',
    ]) {
      assert.match(
        stdout,
        new RegExp(`${object.replace(/[./]/g, '\\$&')} (created|configured|unchanged) \\(server dry run\\)`),
      );
    }
  });
});

describe('events', () => {
  test('every Ready transition of an instance is an Event', async () => {
    const c = await controller();
    await create(
      api,
      R.ServiceInstance,
      instance('evented', NS, {
        clusterServiceClassExternalName: 'depot-test',
        clusterServicePlanExternalName: 'provision-fail400',
      }),
    );
    await waitForReason(api, R.ServiceInstance, 'evented', NS, 'ClusterServiceBrokerReturnedFailure', 'Failed');
    const { stdout } = await api.kubectl(
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=evented',
      '-o',
      'jsonpath={range .items[*]}{.type}/{.reason}{"\\n"}{end}',
    );
    const events = stdout.trim().split('\n');
    assert.ok(events.includes('Normal/ProvisionRequestInFlight'), stdout);
    assert.ok(events.includes('Warning/ProvisionCallFailed'), stdout);
    assert.ok(events.includes('Warning/ClusterServiceBrokerReturnedFailure'), stdout);
    const failed = await api.client.get<ServiceInstance>(R.ServiceInstance, 'evented', NS);
    assert.equal(condition(failed, 'Failed')?.status, 'True');
    await c.stop();
  });
});
