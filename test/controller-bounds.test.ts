/**
 * Bounded calls, black-box: the controller as a process against a real kube-apiserver, and
 * brokers on loopback written here that stand for other people's brokers misbehaving. A broker
 * call is bounded as a whole by OSB_REQUEST_TIMEOUT_MS (2 s here) and its body by
 * OSB_MAX_RESPONSE_BYTES (16 MiB, the default); a Kubernetes read by KUBE_REQUEST_TIMEOUT_MS and
 * KUBE_MAX_RESPONSE_BYTES. Past a limit the object's conditions name it, the connection is closed,
 * the usual retries follow, and other objects are reconciled meanwhile: the controller runs with
 * CONCURRENT_SYNCS=1, so a call that held its one worker for good would stop everything behind it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  ABANDON_ANNOTATION,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
} from '../catalog-controller/api/v1beta1.js';
import {
  R,
  condition,
  create,
  edit,
  ensureNamespace,
  instance,
  remove,
  startController,
  startKubeApi,
  waitFor,
  waitForGone,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';
import {
  json,
  largeCatalog,
  smallCatalog,
  startFakeBroker,
  streamLargeBody,
  trickle,
  type FakeBroker,
  type Sent,
} from './misbehaving-broker.js';

const NS = 'bounds';
const MiB = 1024 * 1024;
const CONTROLLER_ENV = { OSB_REQUEST_TIMEOUT_MS: '2000', CONCURRENT_SYNCS: '1' };

let api: KubeApi;
let controller: ControllerProcess;
const brokers: FakeBroker[] = [];

before(async () => {
  api = await startKubeApi();
  await ensureNamespace(api, NS);
  controller = await startController(api, CONTROLLER_ENV);
});

after(async () => {
  await controller?.stop();
  await Promise.all(brokers.map((b) => b.close()));
  await api?.stop();
});

/** A broker on loopback: `catalog` answers GET /v2/catalog; PUT and DELETE answer 201 {} and 200 {} unless given. */
async function broker(
  catalog: (res: http.ServerResponse) => void,
  instances: { put?: (res: http.ServerResponse) => void; del?: (res: http.ServerResponse) => void } = {},
): Promise<FakeBroker> {
  const started = await startFakeBroker((req, res) => {
    if (req.method === 'GET' && req.url === '/v2/catalog') return catalog(res);
    if (req.method === 'PUT') return instances.put ? instances.put(res) : json(res, 201, {});
    if (req.method === 'DELETE') return instances.del ? instances.del(res) : json(res, 200, {});
    json(res, 404, {});
  });
  brokers.push(started);
  return started;
}

async function clusterBroker(name: string, url: string): Promise<void> {
  await create<ServiceBroker>(api, R.ClusterServiceBroker, { metadata: { name }, spec: { url } });
}

async function removeBroker(name: string): Promise<void> {
  await remove(api, R.ClusterServiceBroker, name);
  await waitForGone(api, R.ClusterServiceBroker, name);
}

/** The controller's resident set now and at its peak (Linux /proc), in MiB. */
function controllerMemory(): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${controller.child.pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

describe('catalog fetches', () => {
  test('a catalog sent a byte a second: ErrorFetchingCatalog naming the deadline, connection closed', async (t) => {
    const sent: Array<Promise<Sent>> = [];
    const slow = await broker((res) => sent.push(trickle(res, JSON.stringify(smallCatalog('trickle')))));
    const startedAt = Date.now();
    await clusterBroker('trickle', slow.url);
    const failed = await waitForReason<ServiceBroker>(
      api,
      R.ClusterServiceBroker,
      'trickle',
      undefined,
      'ErrorFetchingCatalog',
    );
    t.diagnostic(`ErrorFetchingCatalog ${Date.now() - startedAt} ms after the broker was created`);
    assert.equal(condition(failed, 'Ready')?.status, 'False');
    assert.equal(
      condition(failed, 'Ready')?.message,
      'Error fetching catalog. Error getting broker catalog: ' +
        'the broker did not answer in full within 2 s (OSB_REQUEST_TIMEOUT_MS)',
    );
    const first = await sent[0]!;
    assert.equal(first.complete, false, 'the controller closed the connection before the catalog was all sent');
    assert.ok(first.bytes > 0, 'bytes kept arriving: an idle timeout would not have fired');
    await removeBroker('trickle');
  });

  test('a 100 MB catalog: ErrorFetchingCatalog naming the size cap, the rest not read', async (t) => {
    const sent: Array<Promise<Sent>> = [];
    const huge = await broker((res) => sent.push(streamLargeBody(res, 100 * 1000 * 1000)));
    const before = controllerMemory();
    await clusterBroker('huge', huge.url);
    const failed = await waitForReason<ServiceBroker>(
      api,
      R.ClusterServiceBroker,
      'huge',
      undefined,
      'ErrorFetchingCatalog',
    );
    const afterwards = controllerMemory();
    t.diagnostic(
      `controller RSS ${before.rss.toFixed(1)} → ${afterwards.rss.toFixed(1)} MiB, ` +
        `peak ${before.peak.toFixed(1)} → ${afterwards.peak.toFixed(1)} MiB`,
    );
    assert.equal(
      condition(failed, 'Ready')?.message,
      'Error fetching catalog. Error getting broker catalog: ' +
        "Status: 200; the broker's response exceeded 16 MiB (OSB_MAX_RESPONSE_BYTES)",
    );
    const first = await sent[0]!;
    t.diagnostic(`the broker got ${(first.bytes / MiB).toFixed(1)} MiB of 95.4 MiB out before the connection closed`);
    assert.equal(first.complete, false, 'the controller closed the connection early');
    assert.ok(first.bytes < 100 * 1000 * 1000);
    await removeBroker('huge');
  });

  test('a catalog of about 4 MB is fetched whole: Ready, its classes created', async () => {
    const catalog = largeCatalog(4 * 1000 * 1000, 20, 'big');
    assert.ok(JSON.stringify(catalog).length > 4 * 1000 * 1000);
    const big = await broker((res) => json(res, 200, catalog));
    await clusterBroker('big', big.url);
    await waitForReason(api, R.ClusterServiceBroker, 'big', undefined, 'FetchedCatalog', 'Ready', 60_000);
    const { items } = await api.client.list<ServiceClass>(R.ClusterServiceClass);
    const classes = items.filter((c) => c.spec.clusterServiceBrokerName === 'big');
    assert.deepEqual(classes.map((c) => c.spec.externalName).sort(), catalog.services.map((s) => s.name).sort());
    await removeBroker('big');
    await waitFor(
      async () => (await api.client.list<ServiceClass>(R.ClusterServiceClass)).items.length === 0,
      30_000,
      'the classes of the 4 MB catalog to go',
    );
  });

  test('a broker that trickles its catalog does not stop another broker from becoming Ready', async () => {
    const slow = await broker((res) => void trickle(res, ' '.repeat(3600)));
    const healthy = await broker((res) => json(res, 200, smallCatalog('healthy')));
    await clusterBroker('slow', slow.url);
    await waitForReason(api, R.ClusterServiceBroker, 'slow', undefined, 'ErrorFetchingCatalog');
    await clusterBroker('healthy', healthy.url);
    await waitForReason(api, R.ClusterServiceBroker, 'healthy', undefined, 'FetchedCatalog');
    const stillSlow = await api.client.get<ServiceBroker>(R.ClusterServiceBroker, 'slow');
    assert.equal(condition(stillSlow, 'Ready')?.reason, 'ErrorFetchingCatalog');
    // The usual retries follow, behind the key's backoff.
    await waitFor(
      async () => slow.requests.filter((r) => r === 'GET /v2/catalog').length >= 2,
      20_000,
      'the slow broker to be asked again',
    );
    await removeBroker('slow');
  });
});

describe('instances', () => {
  test('a provision past the deadline is orphan-mitigated; another instance is provisioned meanwhile', async () => {
    const stalled = await broker((res) => json(res, 200, smallCatalog('stalled')), {
      put: (res) => void trickle(res, ' '.repeat(3600)),
      del: () => {},
    });
    await clusterBroker('stalled', stalled.url);
    await waitForReason(api, R.ClusterServiceBroker, 'stalled', undefined, 'FetchedCatalog');
    await create(
      api,
      R.ServiceInstance,
      instance('on-stalled', NS, {
        clusterServiceClassExternalName: 'stalled-service',
        clusterServicePlanExternalName: 'stalled-plan',
      }),
    );
    await create(
      api,
      R.ServiceInstance,
      instance('on-healthy', NS, {
        clusterServiceClassExternalName: 'healthy-service',
        clusterServicePlanExternalName: 'healthy-plan',
      }),
    );
    await waitForReason(api, R.ServiceInstance, 'on-healthy', NS, 'ProvisionedSuccessfully');

    // spec.md, "Orphan Mitigation": a provision that timed out is followed by a DELETE.
    const mitigated = await waitFor(
      async () => {
        const current = await api.client.get<ServiceInstance>(R.ServiceInstance, 'on-stalled', NS);
        const deleted = stalled.requests.some((r) => r.startsWith('DELETE /v2/service_instances/'));
        return deleted && condition(current, 'OrphanMitigation') ? current : undefined;
      },
      20_000,
      'orphan mitigation of the stalled provision',
    );
    assert.equal(condition(mitigated, 'OrphanMitigation')?.reason, 'ErrorCallingProvision');
    assert.match(
      condition(mitigated, 'OrphanMitigation')!.message,
      /timed out; operation will be retried: the broker did not answer in full within 2 s \(OSB_REQUEST_TIMEOUT_MS\)$/,
    );
    assert.notEqual(mitigated.status?.provisionStatus, 'Provisioned');
    // The DELETE stalls too: the deprovision's condition names the deadline as well.
    const retried = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'on-stalled',
      NS,
      'DeprovisionCallFailed',
    );
    assert.match(condition(retried, 'Ready')!.message, /within 2 s \(OSB_REQUEST_TIMEOUT_MS\)$/);

    await edit<ServiceInstance>(api, R.ServiceInstance, 'on-stalled', NS, (i) => {
      i.metadata.annotations = { ...i.metadata.annotations, [ABANDON_ANNOTATION]: 'true' };
    });
    await remove(api, R.ServiceInstance, 'on-stalled', NS);
    await waitForGone(api, R.ServiceInstance, 'on-stalled', NS);
    await removeBroker('stalled');
  });
});

describe('Kubernetes reads', () => {
  before(async () => {
    await controller.stop();
    controller = await startController(api, { ...CONTROLLER_ENV, KUBE_MAX_RESPONSE_BYTES: String(512 * 1024) });
  });

  test('a parametersFrom Secret past KUBE_MAX_RESPONSE_BYTES: ErrorWithParameters naming the cap', async () => {
    const params = JSON.stringify({ blob: 'p'.repeat(700 * 1024) });
    await create(api, R.Secret, {
      metadata: { name: 'big-params', namespace: NS },
      data: { params: Buffer.from(params).toString('base64') },
    });
    await create(
      api,
      R.ServiceInstance,
      instance('big-params', NS, {
        clusterServiceClassExternalName: 'healthy-service',
        clusterServicePlanExternalName: 'healthy-plan',
        parametersFrom: [{ secretKeyRef: { name: 'big-params', key: 'params' } }],
      }),
    );
    const blocked = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'big-params',
      NS,
      'ErrorWithParameters',
    );
    assert.equal(
      condition(blocked, 'Ready')?.message,
      `failed to prepare parameters: GET /api/v1/namespaces/${NS}/secrets/big-params: ` +
        "the Kubernetes API server's response exceeded 512 KiB (KUBE_MAX_RESPONSE_BYTES)",
    );
  });
});
