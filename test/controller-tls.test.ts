/**
 * The controller against a Depot that serves HTTPS (TLS_CERT_FILE, a self-signed certificate for
 * IP:127.0.0.1): a ClusterServiceBroker's spec.caBundle (base64 PEM) is the trust anchor, and
 * spec.insecureSkipTLSVerify turns verification off. A real kube-apiserver, the controller as a
 * child process; one broker at a time (they would fight over the class names), removed after
 * each test.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ServiceBroker, ServiceClass } from '../catalog-controller/api/v1beta1.js';
import { objectPath } from '../catalog-controller/kube/resources.js';
import { SERVICE_ID, type TestDepot } from './helpers.js';
import {
  R,
  brokerAuthSecret,
  condition,
  create,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForGone,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';
import { certificateDir, selfSignedCertificate, type TestCertificate } from './tls-certificates.js';

const AUTH_NS = 'broker-auth';
const b64 = (value: string): string => Buffer.from(value).toString('base64');

let api: KubeApi | undefined;
let depot: TestDepot | undefined;
let controller: ControllerProcess | undefined;
/** The certificate Depot serves, and one of another party. */
let served: TestCertificate;
let other: TestCertificate;

function kube(): KubeApi {
  if (!api) throw new Error('no kube-apiserver');
  return api;
}

function brokerUrl(): string {
  if (!depot) throw new Error('no Depot');
  return depot.baseUrl;
}

async function createClusterBroker(name: string, spec: Partial<ServiceBroker['spec']>): Promise<void> {
  await create<ServiceBroker>(kube(), R.ClusterServiceBroker, {
    metadata: { name },
    spec: {
      url: brokerUrl(),
      authInfo: { basic: { secretRef: { namespace: AUTH_NS, name: 'depot-basic' } } },
      ...spec,
    },
  });
}

const waitReason = (name: string, reason: string) =>
  waitForReason<ServiceBroker>(kube(), R.ClusterServiceBroker, name, undefined, reason, 'Ready', 15_000);

async function classesOf(name: string): Promise<string[]> {
  const { items } = await kube().client.list<ServiceClass>(R.ClusterServiceClass);
  return items.filter((c) => c.spec.clusterServiceBrokerName === name).map((c) => c.metadata.name);
}

/** A broker that could not be reached over TLS: Ready False, ErrorFetchingCatalog naming the failure. */
async function assertTlsFailure(name: string, failure: RegExp): Promise<void> {
  const failing = await waitReason(name, 'ErrorFetchingCatalog');
  const ready = condition(failing, 'Ready');
  assert.equal(ready?.status, 'False');
  assert.match(ready?.message ?? '', /^Error fetching catalog\. Error getting broker catalog: /);
  assert.match(ready?.message ?? '', failure);
  assert.deepEqual(await classesOf(name), []);
}

describe('catalog controller: a broker over HTTPS', () => {
  before(async () => {
    const dir = await certificateDir();
    [served, other] = await Promise.all([selfSignedCertificate(dir, 'depot'), selfSignedCertificate(dir, 'other')]);
    const [kubeStarted, depotStarted] = await Promise.allSettled([
      startKubeApi(),
      startTestBroker('controller-tls', { TLS_CERT_FILE: served.certFile, TLS_KEY_FILE: served.keyFile }),
    ]);
    if (kubeStarted.status === 'fulfilled') api = kubeStarted.value;
    if (depotStarted.status === 'fulfilled') depot = depotStarted.value;
    if (kubeStarted.status === 'rejected') throw kubeStarted.reason;
    if (depotStarted.status === 'rejected') throw depotStarted.reason;
    assert.match(brokerUrl(), /^https:\/\/127\.0\.0\.1:/);
    controller = await startController(kube(), { LEASE_DURATION_SECONDS: '15', LEASE_RETRY_PERIOD_MS: '2000' });
    await brokerAuthSecret(kube(), AUTH_NS, 'depot-basic');
  });

  afterEach(async () => {
    // The broker goes, and with it its classes and plans (its finalizer waits for them).
    const { items } = await kube().client.list<ServiceBroker>(R.ClusterServiceBroker);
    for (const broker of items) {
      await kube().client.delete(R.ClusterServiceBroker, broker.metadata.name);
      await waitForGone(kube(), R.ClusterServiceBroker, broker.metadata.name, undefined, 15_000);
    }
    await waitFor(
      async () => (await kube().client.list(R.ClusterServiceClass)).items.length === 0,
      15_000,
      'classes removed',
    );
    const c = controller;
    if (c && (c.child.exitCode !== null || c.child.signalCode !== null)) {
      throw new Error(`the controller exited; last lines:\n${c.logs.slice(-15).join('\n')}`);
    }
  });

  after(async () => {
    if (process.env.TEST_LOG_LEVEL && controller) process.stderr.write(`${controller.logs.join('\n')}\n`);
    await controller?.stop().catch(() => undefined);
    await depot?.close().catch(() => undefined);
    await api?.stop().catch(() => undefined);
  });

  it("caBundle with the broker's certificate: Ready, the catalog fetched over HTTPS", async () => {
    await createClusterBroker('tls-trusted', { caBundle: b64(served.pem) });
    const broker = await waitReason('tls-trusted', 'FetchedCatalog');
    assert.equal(condition(broker, 'Ready')?.status, 'True');
    assert.ok((await classesOf('tls-trusted')).includes(SERVICE_ID));
  });

  it('no caBundle: not Ready, ErrorFetchingCatalog naming the self-signed certificate', async () => {
    await createClusterBroker('tls-untrusted', {});
    await assertTlsFailure('tls-untrusted', /self[- ]signed certificate/);
  });

  it('a caBundle of another certificate: not Ready, naming the TLS failure; Ready with the right one', async () => {
    await createClusterBroker('tls-wrong-ca', { caBundle: b64(other.pem) });
    await assertTlsFailure('tls-wrong-ca', /self[- ]signed certificate/);
    await kube().client.request(
      'PATCH',
      objectPath(R.ClusterServiceBroker, 'tls-wrong-ca'),
      { spec: { caBundle: b64(served.pem) } },
      'application/merge-patch+json',
    );
    await waitReason('tls-wrong-ca', 'FetchedCatalog');
    assert.ok((await classesOf('tls-wrong-ca')).includes(SERVICE_ID));
  });

  it('insecureSkipTLSVerify: true without a caBundle: Ready', async () => {
    await createClusterBroker('tls-insecure', { insecureSkipTLSVerify: true });
    const broker = await waitReason('tls-insecure', 'FetchedCatalog');
    assert.equal(condition(broker, 'Ready')?.status, 'True');
    assert.ok((await classesOf('tls-insecure')).includes(SERVICE_ID));
  });
});
