/**
 * The Kubernetes walkthrough with a `mysql` instance: a real kube-apiserver, the controller as a
 * process and a real Depot whose mysql offering uses the machine's MariaDB. The ServiceBinding's
 * Secret carries the credentials; its `uri` opens a session (mysql2) that can create a table.
 * Deleting the binding and the instance leaves no user and no database on the server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Secret, ServiceBinding } from '../catalog-controller/api/v1beta1.js';
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
import { MYSQL_URL, closeMysql, databaseExists, mysqlLogin, rowsOf, usersLike } from './mysql-helpers.js';

const NS = 'mysql-walkthrough';
let api: KubeApi | undefined;
let depot: TestDepot | undefined;
let controller: ControllerProcess | undefined;

before(async () => {
  const [kubeStarted, depotStarted] = await Promise.allSettled([
    startKubeApi(),
    startDepot('ctrl-mysql', { env: { MYSQL_SERVICE_URL: MYSQL_URL } }),
  ]);
  if (kubeStarted.status === 'fulfilled') api = kubeStarted.value;
  if (depotStarted.status === 'fulfilled') depot = depotStarted.value;
  if (kubeStarted.status === 'rejected') throw kubeStarted.reason;
  if (depotStarted.status === 'rejected') throw depotStarted.reason;
  await ensureNamespace(api!, NS);
  await brokerAuthSecret(api!, NS, 'depot-auth');
  await create(api!, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: depot!.baseUrl, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
  });
  controller = await startController(api!);
});

after(async () => {
  await controller?.stop('SIGKILL');
  await closeMysql();
  await depot?.close();
  await api?.stop();
});

describe('mysql through the controller', () => {
  test('an instance and a binding give a Secret whose uri opens a session; deleting both leaves nothing', async () => {
    const kube = api!;
    await waitForReason(kube, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
    await create(
      kube,
      R.ServiceInstance,
      instance('orders-mysql', NS, {
        clusterServiceClassExternalName: 'mysql',
        clusterServicePlanExternalName: 'small',
        parameters: { collation: 'utf8mb4_unicode_ci' },
      }),
    );
    await create(
      kube,
      R.ServiceBinding,
      binding('orders-mysql-binding', NS, {
        instanceRef: { name: 'orders-mysql' },
        secretName: 'orders-mysql-credentials',
      }),
    );
    await kube.kubectl(
      'wait',
      '-n',
      NS,
      '--for=condition=Ready',
      '--timeout=60s',
      'serviceinstance/orders-mysql',
      'servicebinding/orders-mysql-binding',
    );

    const secret = await kube.client.get<Secret>(R.Secret, 'orders-mysql-credentials', NS);
    const creds = secretValues(secret);
    assert.equal(secret.type, 'servicebinding.io/mysql');
    assert.equal(creds.type, 'mysql');
    assert.equal(creds.provider, 'depot');
    for (const key of ['uri', 'jdbcUrl', 'host', 'port', 'database', 'username', 'password']) {
      assert.ok(creds[key], `the Secret has ${key}`);
    }
    const session = await mysqlLogin(creds.uri!);
    assert.deepEqual(await rowsOf(session, 'select database() as db, current_user() as me'), [
      { db: creds.database, me: `${creds.username}@%` },
    ]);
    await session.query('create table orders (id int primary key, item varchar(40))');
    await session.query("insert into orders values (1, 'Hello, Depot')");
    assert.deepEqual(await rowsOf(session, 'select item from orders'), [{ item: 'Hello, Depot' }]);
    assert.deepEqual(
      await rowsOf(session, 'select TABLE_COLLATION as collation from information_schema.TABLES where TABLE_NAME = ?', [
        'orders',
      ]),
      [{ collation: 'utf8mb4_unicode_ci' }],
      'the instance parameters reached the database',
    );

    const bound = await kube.client.get<ServiceBinding>(R.ServiceBinding, 'orders-mysql-binding', NS);
    assert.equal(bound.status?.binding?.name, 'orders-mysql-credentials');
    await remove(kube, R.ServiceBinding, 'orders-mysql-binding', NS);
    await waitForGone(kube, R.ServiceBinding, 'orders-mysql-binding', NS);
    assert.equal(await kube.client.find(R.Secret, 'orders-mysql-credentials', NS), undefined);
    assert.deepEqual(await usersLike(creds.username!), []);
    assert.ok(
      await mysqlLogin(creds.uri!).then(
        () => false,
        () => true,
      ),
      'the bound credentials no longer log in',
    );

    await remove(kube, R.ServiceInstance, 'orders-mysql', NS);
    await waitForGone(kube, R.ServiceInstance, 'orders-mysql', NS);
    assert.equal(await databaseExists(creds.database!), false);
    // No user of the instance is left (they all start with the database's first 19 characters).
    assert.deepEqual(await usersLike(creds.database!.slice(0, 19)), []);
  });
});
