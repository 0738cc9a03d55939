/**
 * The controller's broker and catalog handling, black-box (auth, catalog fetch and relist,
 * catalog restrictions, escaped names, removal from the catalog, broker deletion): a real
 * kube-apiserver, a real Depot with the test offering, the controller as a child process, and a
 * recording proxy in front of Depot for what Depot does not do (bearer auth, a failing catalog, a
 * catalog with entries taken out).
 *
 * Cluster-scoped classes are named by OSB id, so two ClusterServiceBrokers of the same Depot
 * would fight over the names: the tests run one after another and afterEach removes every
 * broker, class, plan and instance a test left behind.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { CatalogResponse, ServiceOffering } from '../osb/index.js';
import type {
  KubeObject,
  ServiceBroker,
  ServiceClass,
  ServiceInstance,
  ServicePlan,
} from '../catalog-controller/api/v1beta1.js';
import { objectPath, type Resource } from '../catalog-controller/kube/resources.js';
import {
  PASSWORD,
  REDIS_SERVICE_ID,
  SERVICE_ID,
  SMALL_PLAN_ID,
  STANDARD_PLAN_ID,
  USERNAME,
  instancePath,
  osb,
  type TestDepot,
} from './helpers.js';
import { MYSQL_SERVICE_ID } from './mysql-helpers.js';
import { RABBITMQ_SERVICE_ID } from './rabbitmq-helpers.js';
import {
  R,
  brokerAuthSecret,
  condition,
  create,
  ensureNamespace,
  instance,
  startBrokerProxy,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForGone,
  waitForReason,
  type BrokerProxy,
  type ControllerProcess,
  type KubeApi,
  type RecordedRequest,
} from './kube-helpers.js';

const FINALIZER = 'kubernetes-incubator/service-catalog';
const API_VERSION = 'servicecatalog.k8s.io/v1beta1';
const LABEL = {
  externalID: 'servicecatalog.k8s.io/spec.externalID',
  externalName: 'servicecatalog.k8s.io/spec.externalName',
  clusterBrokerName: 'servicecatalog.k8s.io/spec.clusterServiceBrokerName',
  brokerName: 'servicecatalog.k8s.io/spec.serviceBrokerName',
  clusterClassRef: 'servicecatalog.k8s.io/spec.clusterServiceClassRef.name',
  classRef: 'servicecatalog.k8s.io/spec.serviceClassRef.name',
};

/** test-catalog.yaml */
const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const OK_PLAN_ID = '0e570000-7e57-4000-8000-000000000001';
const SLOW_PLAN_ID = '0e570000-7e57-4000-8000-000000000002';
const NOT_BINDABLE_PLAN_ID = '0e570000-7e57-4000-8000-000000000018';
const SINGLE_SERVICE_ID = '0e570001-7e57-4000-8000-000000000000';
const SINGLE_PLAN_ID = '0e570001-7e57-4000-8000-000000000001';

/** Namespace of the ClusterServiceBrokers' auth Secrets; Secret "depot-basic" has Depot's credentials. */
const AUTH_NS = 'broker-auth';
const BASIC = `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`;

const sha224 = (value: string): string => createHash('sha224').update(value).digest('hex');
const md5 = (value: string): string => createHash('md5').update(value).digest('hex');
const b64 = (value: string): string => Buffer.from(value).toString('base64');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const names = (items: KubeObject[]): string[] => items.map((i) => i.metadata.name).sort();

let api: KubeApi | undefined;
let depot: TestDepot | undefined;
let controller: ControllerProcess | undefined;
const proxies: BrokerProxy[] = [];
/** Depot's catalog as Depot serves it. */
let realCatalog: CatalogResponse;

function kube(): KubeApi {
  if (!api) throw new Error('no kube-apiserver');
  return api;
}

function broker(): TestDepot {
  if (!depot) throw new Error('no Depot');
  return depot;
}

// ---- helpers ----

const basicAuth = (secret = 'depot-basic') => ({ basic: { secretRef: { namespace: AUTH_NS, name: secret } } });

async function createClusterBroker(name: string, spec: ServiceBroker['spec']): Promise<ServiceBroker> {
  return create<ServiceBroker>(kube(), R.ClusterServiceBroker, { metadata: { name }, spec });
}

async function waitReady(name: string, namespace?: string): Promise<ServiceBroker> {
  return waitForReason<ServiceBroker>(
    kube(),
    namespace ? R.ServiceBroker : R.ClusterServiceBroker,
    name,
    namespace,
    'FetchedCatalog',
    'Ready',
    15_000,
  );
}

async function getBroker(name: string, namespace?: string): Promise<ServiceBroker> {
  return kube().client.get<ServiceBroker>(namespace ? R.ServiceBroker : R.ClusterServiceBroker, name, namespace);
}

async function mergePatch<T>(
  resource: Resource,
  name: string,
  namespace: string | undefined,
  patch: object,
): Promise<T> {
  return (await kube().client.request(
    'PATCH',
    objectPath(resource, name, namespace),
    patch,
    'application/merge-patch+json',
  )) as T;
}

/** `svcat sync broker`: relistRequests++. Returns the new generation. */
async function requestRelist(name: string): Promise<number> {
  const current = await getBroker(name);
  const updated = await mergePatch<ServiceBroker>(R.ClusterServiceBroker, name, undefined, {
    spec: { relistRequests: (current.spec.relistRequests ?? 0) + 1 },
  });
  assert.equal(updated.metadata.generation, (current.metadata.generation ?? 0) + 1);
  return updated.metadata.generation!;
}

/** Waits until the broker has fetched the catalog for `generation`. */
async function waitRelisted(name: string, generation: number): Promise<ServiceBroker> {
  let last: ServiceBroker | undefined;
  try {
    return await waitFor(
      async () => {
        last = await getBroker(name);
        const ready = condition(last, 'Ready');
        return last.status?.reconciledGeneration === generation &&
          ready?.status === 'True' &&
          ready.reason === 'FetchedCatalog'
          ? last
          : undefined;
      },
      15_000,
      `broker ${name} relisted at generation ${generation}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last?.status)}`, { cause: error });
  }
}

/** The classes or plans whose spec names the broker, by name. */
async function entriesOf<T extends ServiceClass | ServicePlan>(
  resource: Resource,
  brokerName: string,
  namespace?: string,
): Promise<T[]> {
  const { items } = await kube().client.list<T>(resource, namespace ? { namespace } : {});
  const field = namespace ? 'serviceBrokerName' : 'clusterServiceBrokerName';
  return items
    .filter((e) => e.spec[field] === brokerName)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

const clusterClasses = (brokerName: string) => entriesOf<ServiceClass>(R.ClusterServiceClass, brokerName);
const clusterPlans = (brokerName: string) => entriesOf<ServicePlan>(R.ClusterServicePlan, brokerName);

interface KubeEvent extends KubeObject {
  involvedObject: { kind?: string; name: string; uid?: string };
  reason: string;
  type: string;
  message: string;
}

async function eventsOf(name: string, reason: string, namespace = 'default'): Promise<KubeEvent[]> {
  const { items } = await kube().client.list<KubeEvent>(R.Event, { namespace });
  return items.filter((e) => e.involvedObject.name === name && e.reason === reason);
}

async function startProxy(): Promise<BrokerProxy> {
  const proxy = await startBrokerProxy(broker());
  proxy.upstreamAuthorization = BASIC;
  proxies.push(proxy);
  return proxy;
}

const isCatalogGet = (r: RecordedRequest): boolean => r.method === 'GET' && r.url.split('?')[0] === '/v2/catalog';
const catalogGets = (proxy: BrokerProxy): RecordedRequest[] => proxy.requests.filter(isCatalogGet);

/** Depot's catalog without some services and plans. */
function catalogWithout(ids: string[]): CatalogResponse {
  const services: ServiceOffering[] = structuredClone(realCatalog.services)
    .filter((s) => !ids.includes(s.id))
    .map((s) => ({ ...s, plans: s.plans.filter((p) => !ids.includes(p.id)) }));
  return { services };
}

/**
 * Every service of `catalog` is a class and every plan a plan of `broker`, named by the (lowercase
 * UUID, so unescaped) OSB id, with the spec fields and labels the Service Catalog gives them and
 * the broker as their controller ownerReference.
 */
async function assertMirrors(b: ServiceBroker, catalog: CatalogResponse): Promise<void> {
  const namespace = b.metadata.namespace;
  const cluster = namespace === undefined;
  const brokerField = cluster ? 'clusterServiceBrokerName' : 'serviceBrokerName';
  const otherBrokerField = cluster ? 'serviceBrokerName' : 'clusterServiceBrokerName';
  const classRefField = cluster ? 'clusterServiceClassRef' : 'serviceClassRef';
  const brokerLabel = cluster ? LABEL.clusterBrokerName : LABEL.brokerName;
  const classRefLabel = cluster ? LABEL.clusterClassRef : LABEL.classRef;
  const classes = await entriesOf<ServiceClass>(
    cluster ? R.ClusterServiceClass : R.ServiceClass,
    b.metadata.name,
    namespace,
  );
  const plans = await entriesOf<ServicePlan>(
    cluster ? R.ClusterServicePlan : R.ServicePlan,
    b.metadata.name,
    namespace,
  );
  const owner = {
    apiVersion: API_VERSION,
    kind: cluster ? 'ClusterServiceBroker' : 'ServiceBroker',
    name: b.metadata.name,
    uid: b.metadata.uid,
    controller: true,
    blockOwnerDeletion: false,
  };

  assert.deepEqual(names(classes), catalog.services.map((s) => s.id).sort());
  assert.deepEqual(names(plans), catalog.services.flatMap((s) => s.plans.map((p) => p.id)).sort());
  for (const service of catalog.services) {
    const cls = classes.find((c) => c.metadata.name === service.id);
    assert.ok(cls, `class ${service.id}`);
    assert.equal(cls.metadata.namespace, namespace);
    assert.deepEqual(
      {
        externalName: cls.spec.externalName,
        externalID: cls.spec.externalID,
        description: cls.spec.description,
        bindable: cls.spec.bindable,
        planUpdatable: cls.spec.planUpdatable,
        tags: cls.spec.tags,
        externalMetadata: cls.spec.externalMetadata,
        broker: cls.spec[brokerField],
        otherBroker: cls.spec[otherBrokerField],
      },
      {
        externalName: service.name,
        externalID: service.id,
        description: service.description,
        bindable: service.bindable,
        planUpdatable: service.plan_updateable ?? false,
        tags: service.tags,
        externalMetadata: service.metadata,
        broker: b.metadata.name,
        otherBroker: undefined,
      },
      `spec of class ${service.name}`,
    );
    assert.deepEqual(cls.metadata.labels, {
      [LABEL.externalID]: sha224(service.id),
      [LABEL.externalName]: sha224(service.name),
      [brokerLabel]: sha224(b.metadata.name),
    });
    assert.deepEqual(cls.metadata.ownerReferences, [owner]);
    assert.ok(!cls.status?.removedFromBrokerCatalog);

    for (const osbPlan of service.plans) {
      const plan = plans.find((p) => p.metadata.name === osbPlan.id);
      assert.ok(plan, `plan ${osbPlan.id}`);
      assert.equal(plan.metadata.namespace, namespace);
      assert.deepEqual(
        {
          externalName: plan.spec.externalName,
          externalID: plan.spec.externalID,
          description: plan.spec.description,
          free: plan.spec.free,
          bindable: plan.spec.bindable,
          externalMetadata: plan.spec.externalMetadata,
          instanceCreateParameterSchema: plan.spec.instanceCreateParameterSchema,
          instanceUpdateParameterSchema: plan.spec.instanceUpdateParameterSchema,
          serviceBindingCreateParameterSchema: plan.spec.serviceBindingCreateParameterSchema,
          maximumPollingDuration: plan.spec.maximumPollingDuration,
          maintenanceInfo: plan.spec.maintenanceInfo,
          broker: plan.spec[brokerField],
          classRef: plan.spec[classRefField],
        },
        {
          externalName: osbPlan.name,
          externalID: osbPlan.id,
          description: osbPlan.description,
          free: osbPlan.free ?? false,
          bindable: osbPlan.bindable,
          externalMetadata: osbPlan.metadata,
          instanceCreateParameterSchema: osbPlan.schemas?.service_instance?.create?.parameters,
          instanceUpdateParameterSchema: osbPlan.schemas?.service_instance?.update?.parameters,
          serviceBindingCreateParameterSchema: osbPlan.schemas?.service_binding?.create?.parameters,
          maximumPollingDuration: osbPlan.maximum_polling_duration,
          maintenanceInfo: osbPlan.maintenance_info,
          broker: b.metadata.name,
          classRef: { name: service.id },
        },
        `spec of plan ${service.name}/${osbPlan.name}`,
      );
      assert.deepEqual(plan.metadata.labels, {
        [LABEL.externalID]: sha224(osbPlan.id),
        [LABEL.externalName]: sha224(osbPlan.name),
        [brokerLabel]: sha224(b.metadata.name),
        [classRefLabel]: sha224(service.id),
      });
      assert.deepEqual(plan.metadata.ownerReferences, [owner]);
      assert.ok(!plan.status?.removedFromBrokerCatalog);
    }
  }

  // Fixed points of Depot's catalog, so a catalog that lost them cannot make the above vacuous.
  const byName = (id: string) => plans.find((p) => p.metadata.name === id)?.spec;
  assert.equal(byName(SMALL_PLAN_ID)?.maximumPollingDuration, 3600);
  assert.equal(byName(STANDARD_PLAN_ID)?.maximumPollingDuration, 3600);
  assert.equal(byName(OK_PLAN_ID)?.maximumPollingDuration, undefined);
  assert.deepEqual(byName(OK_PLAN_ID)?.maintenanceInfo, { version: '1.0.0', description: 'Test plan, first release.' });
  assert.equal(byName(NOT_BINDABLE_PLAN_ID)?.bindable, false);
  assert.equal(byName(SMALL_PLAN_ID)?.[classRefField]?.name, SERVICE_ID);
  assert.equal(classes.find((c) => c.metadata.name === TEST_SERVICE_ID)?.spec.planUpdatable, true);
  assert.equal(classes.find((c) => c.metadata.name === SINGLE_SERVICE_ID)?.spec.planUpdatable, false);
  assert.equal(classes.find((c) => c.metadata.name === SERVICE_ID)?.spec.externalName, 'postgresql');
}

/** Deletes an object; if the controller does not let it go within `timeoutMs`, strips its finalizers. */
async function deleteOrRelease(resource: Resource, object: KubeObject, timeoutMs: number): Promise<void> {
  const { name, namespace } = object.metadata;
  await kube().client.delete(resource, name, namespace);
  try {
    await waitForGone(kube(), resource, name, namespace, timeoutMs);
  } catch {
    await mergePatch(resource, name, namespace, { metadata: { finalizers: null } }).catch(() => undefined);
    await waitForGone(kube(), resource, name, namespace, 5_000);
  }
}

/**
 * Removes whatever a test left behind: instances (while their brokers exist), brokers, then
 * stray classes and plans.
 */
async function cleanUp(): Promise<void> {
  const k = kube();
  const { items: instances } = await k.client.list<ServiceInstance>(R.ServiceInstance);
  await Promise.all(instances.map((i) => deleteOrRelease(R.ServiceInstance, i, 5_000)));
  const { items: clusterBrokers } = await k.client.list<ServiceBroker>(R.ClusterServiceBroker);
  const { items: brokers } = await k.client.list<ServiceBroker>(R.ServiceBroker);
  await Promise.all([
    ...clusterBrokers.map((b) => deleteOrRelease(R.ClusterServiceBroker, b, 5_000)),
    ...brokers.map((b) => deleteOrRelease(R.ServiceBroker, b, 5_000)),
  ]);
  for (const resource of [R.ClusterServicePlan, R.ClusterServiceClass, R.ServicePlan, R.ServiceClass]) {
    const { items } = await k.client.list<KubeObject>(resource);
    await Promise.all(items.map((o) => k.client.delete(resource, o.metadata.name, o.metadata.namespace)));
  }
  await waitFor(
    async () => {
      for (const resource of [R.ClusterServicePlan, R.ClusterServiceClass, R.ServicePlan, R.ServiceClass]) {
        if ((await k.client.list(resource)).items.length > 0) return false;
      }
      return true;
    },
    10_000,
    'classes and plans cleaned up',
  );
}

/** A controller that exited (a crash, a lost lease) would only show as timeouts: say so at once. */
function assertControllerRunning(): void {
  const c = controller;
  if (!c) throw new Error('the controller did not start');
  if (c.child.exitCode !== null || c.child.signalCode !== null) {
    throw new Error(
      `the controller exited (code ${c.child.exitCode}, signal ${c.child.signalCode}); ` +
        `last lines:\n${c.logs.slice(-15).join('\n')}`,
    );
  }
}

// ---- tests ----

describe('catalog controller: brokers and catalogs', () => {
  before(async () => {
    const [kubeStarted, depotStarted] = await Promise.allSettled([
      startKubeApi(),
      startTestBroker('controller-brokers'),
    ]);
    if (kubeStarted.status === 'fulfilled') api = kubeStarted.value;
    if (depotStarted.status === 'fulfilled') depot = depotStarted.value;
    if (kubeStarted.status === 'rejected') throw kubeStarted.reason;
    if (depotStarted.status === 'rejected') throw depotStarted.reason;
    // A long lease: a loaded machine must not make the only replica lose it (it would exit).
    controller = await startController(kube(), { LEASE_DURATION_SECONDS: '15', LEASE_RETRY_PERIOD_MS: '2000' });
    const res = await osb(broker()).get('/v2/catalog');
    assert.equal(res.status, 200);
    realCatalog = res.body as CatalogResponse;
    assert.deepEqual(realCatalog.services.map((s) => s.name).sort(), [
      'depot-test',
      'depot-test-single',
      'mysql',
      'postgresql',
      'rabbitmq',
      'redis',
    ]);
    await brokerAuthSecret(kube(), AUTH_NS, 'depot-basic');
  });

  beforeEach(() => assertControllerRunning());

  afterEach(async () => {
    try {
      if (api) await cleanUp();
    } finally {
      for (const proxy of proxies.splice(0)) await proxy.close().catch(() => undefined);
    }
    assertControllerRunning();
  });

  after(async () => {
    if (process.env.TEST_LOG_LEVEL && controller) process.stderr.write(`${controller.logs.join('\n')}\n`);
    await controller?.stop().catch(() => undefined);
    for (const proxy of proxies.splice(0)) await proxy.close().catch(() => undefined);
    await depot?.close().catch(() => undefined);
    await api?.stop().catch(() => undefined);
  });

  it('basic auth: FetchedCatalog; classes and plans mirrored (escaped ids, labels, owner); kubectl Ready', async () => {
    const createdAt = Date.now();
    await createClusterBroker('basic', { url: broker().baseUrl, authInfo: basicAuth() });
    const b = await waitReady('basic');

    const ready = condition(b, 'Ready');
    assert.equal(ready?.status, 'True');
    assert.equal(ready?.message, 'Successfully fetched catalog entries from broker.');
    assert.equal(b.status?.lastConditionState, 'Ready');
    assert.equal(b.status?.reconciledGeneration, b.metadata.generation);
    assert.equal(b.status?.operationStartTime, undefined);
    const retrieved = Date.parse(b.status?.lastCatalogRetrievalTime ?? '');
    assert.ok(
      retrieved >= createdAt - 1000 && retrieved <= Date.now(),
      `lastCatalogRetrievalTime ${b.status?.lastCatalogRetrievalTime}`,
    );
    assert.deepEqual(b.metadata.finalizers, [FINALIZER]);
    assert.equal(condition(b, 'Failed'), undefined);

    await assertMirrors(b, realCatalog);
    await waitFor(
      async () =>
        (await eventsOf('basic', 'FetchedCatalog')).some(
          (e) => e.type === 'Normal' && e.involvedObject.kind === 'ClusterServiceBroker',
        ),
      5_000,
      'a Normal event FetchedCatalog',
    );

    // kubectl get clusterservicebrokers: NAME URL STATUS AGE, STATUS from lastConditionState.
    const { stdout } = await kube().kubectl('get', 'clusterservicebrokers');
    const [header, ...rows] = stdout
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/));
    assert.deepEqual(header, ['NAME', 'URL', 'STATUS', 'AGE']);
    const row = rows.find((r) => r[0] === 'basic');
    assert.ok(row, stdout);
    assert.equal(row[1], broker().baseUrl);
    assert.equal(row[2], 'Ready');
  });

  it('bearer auth: "Authorization: Bearer <token>"; a rejected token is ErrorFetchingCatalog until fixed', async () => {
    const proxy = await startProxy();
    proxy.intercept = (req) =>
      req.headers.authorization === 'Bearer right-token'
        ? undefined
        : { status: 401, body: { description: 'bad token' } };
    await kube().client.create(R.Secret, {
      metadata: { name: 'bearer', namespace: AUTH_NS },
      data: { token: b64('wrong-token') },
    } as KubeObject);
    await createClusterBroker('bearer', {
      url: proxy.url,
      authInfo: { bearer: { secretRef: { namespace: AUTH_NS, name: 'bearer' } } },
    });

    const failing = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'bearer',
      undefined,
      'ErrorFetchingCatalog',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'False');
    assert.match(
      condition(failing, 'Ready')?.message ?? '',
      /^Error fetching catalog\. Error getting broker catalog: .*401/,
    );
    assert.equal(failing.status?.lastConditionState, 'ErrorFetchingCatalog');
    assert.deepEqual(await clusterClasses('bearer'), []);
    assert.ok(catalogGets(proxy).length >= 1);
    assert.ok(catalogGets(proxy).every((r) => r.headers.authorization === 'Bearer wrong-token'));

    // A new token in the same Secret is read on the next retry: no change to the broker needed.
    await mergePatch(R.Secret, 'bearer', AUTH_NS, { data: { token: b64('right-token') } });
    const b = await waitReady('bearer');
    assert.equal(b.metadata.generation, 1);
    assert.equal(b.status?.operationStartTime, undefined);
    assert.equal(catalogGets(proxy).at(-1)?.headers.authorization, 'Bearer right-token');
    assert.deepEqual(names(await clusterClasses('bearer')), realCatalog.services.map((s) => s.id).sort());
  });

  it('no auth: no Authorization header is sent and the catalog is fetched', async () => {
    const proxy = await startProxy();
    await createClusterBroker('open', { url: proxy.url });
    const b = await waitReady('open');
    assert.ok(catalogGets(proxy).length >= 1);
    assert.ok(
      catalogGets(proxy).every((r) => r.headers.authorization === undefined),
      'no Authorization header',
    );
    assert.ok(
      catalogGets(proxy).every((r) => typeof r.headers['x-broker-api-version'] === 'string'),
      'X-Broker-API-Version sent',
    );
    await assertMirrors(b, realCatalog);
  });

  it('no auth Secret: ErrorFetchingCatalog, a Warning ErrorGettingAuthCredentials; Ready once it exists', async () => {
    await createClusterBroker('no-secret', { url: broker().baseUrl, authInfo: basicAuth('not-yet') });
    const failing = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'no-secret',
      undefined,
      'ErrorFetchingCatalog',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'False');
    assert.match(condition(failing, 'Ready')?.message ?? '', /not-yet/);
    assert.equal(failing.status?.lastConditionState, 'ErrorFetchingCatalog');
    assert.ok(failing.status?.operationStartTime, 'operationStartTime set while failing');
    assert.notEqual(failing.status?.reconciledGeneration, failing.metadata.generation);
    const warnings = await waitFor(
      async () => {
        const found = await eventsOf('no-secret', 'ErrorGettingAuthCredentials');
        return found.length > 0 ? found : undefined;
      },
      5_000,
      'event ErrorGettingAuthCredentials',
    );
    assert.equal(warnings[0]?.type, 'Warning');
    assert.equal(warnings[0]?.involvedObject.kind, 'ClusterServiceBroker');
    assert.deepEqual(await clusterClasses('no-secret'), []);

    await brokerAuthSecret(kube(), AUTH_NS, 'not-yet');
    const b = await waitReady('no-secret');
    assert.equal(b.status?.reconciledGeneration, b.metadata.generation);
    assert.equal(b.status?.operationStartTime, undefined);
    assert.equal(b.status?.lastConditionState, 'Ready');
    assert.deepEqual(names(await clusterClasses('no-secret')), realCatalog.services.map((s) => s.id).sort());
  });

  it('an auth Secret without "password": ErrorFetchingCatalog; Ready once the key is added', async () => {
    await brokerAuthSecret(kube(), AUTH_NS, 'half', { username: USERNAME });
    await createClusterBroker('half-secret', { url: broker().baseUrl, authInfo: basicAuth('half') });
    const failing = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'half-secret',
      undefined,
      'ErrorFetchingCatalog',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'False');
    assert.match(condition(failing, 'Ready')?.message ?? '', /password/);
    await waitFor(
      async () => (await eventsOf('half-secret', 'ErrorGettingAuthCredentials')).length > 0,
      5_000,
      'event ErrorGettingAuthCredentials',
    );

    await mergePatch(R.Secret, 'half', AUTH_NS, { data: { password: b64(PASSWORD) } });
    await waitReady('half-secret');
    assert.deepEqual(names(await clusterClasses('half-secret')), realCatalog.services.map((s) => s.id).sort());
  });

  it('a catalog answering 500: ErrorFetchingCatalog, retried with backoff, Ready again by itself', async () => {
    const proxy = await startProxy();
    let broken = true;
    proxy.intercept = (req) =>
      broken && isCatalogGet(req) ? { status: 500, body: { description: 'catalog store down' } } : undefined;
    await createClusterBroker('flaky', { url: proxy.url });

    const failing = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'flaky',
      undefined,
      'ErrorFetchingCatalog',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'False');
    assert.match(condition(failing, 'Ready')?.message ?? '', /Error getting broker catalog: .*500.*catalog store down/);
    assert.ok(failing.status?.operationStartTime);
    // Retried on its own.
    await waitFor(async () => catalogGets(proxy).length >= 3, 10_000, 'three catalog attempts');
    assert.deepEqual(await clusterClasses('flaky'), []);

    broken = false;
    const b = await waitReady('flaky');
    assert.equal(b.metadata.generation, 1, 'no spec change was needed');
    assert.equal(b.status?.reconciledGeneration, 1);
    assert.equal(b.status?.operationStartTime, undefined);
    assert.equal(condition(b, 'Failed'), undefined);
    await assertMirrors(b, realCatalog);
  });

  it('relistBehavior Manual: no timed relist even with a relistDuration; relistRequests++ relists once', async () => {
    const proxy = await startProxy();
    await createClusterBroker('manual', { url: proxy.url, relistBehavior: 'Manual', relistDuration: '1s' });
    const b = await waitReady('manual');
    const fetched = catalogGets(proxy).length;
    assert.ok(fetched >= 1);

    await sleep(2500);
    assert.equal(catalogGets(proxy).length, fetched, 'Manual: no relist on a timer');
    assert.equal((await getBroker('manual')).status?.lastCatalogRetrievalTime, b.status?.lastCatalogRetrievalTime);

    const generation = await requestRelist('manual');
    const relisted = await waitRelisted('manual', generation);
    assert.ok(catalogGets(proxy).length > fetched, 'relistRequests++ fetched the catalog');
    assert.ok(
      Date.parse(relisted.status?.lastCatalogRetrievalTime ?? '') >
        Date.parse(b.status?.lastCatalogRetrievalTime ?? ''),
      'lastCatalogRetrievalTime moved',
    );
    const afterRelist = catalogGets(proxy).length;
    await sleep(1500);
    assert.equal(catalogGets(proxy).length, afterRelist, 'still no relist on a timer');
  });

  it('relistBehavior Duration with relistDuration 2s: the catalog is fetched again about every 2 s', async () => {
    const proxy = await startProxy();
    const fetchedAt: number[] = [];
    proxy.intercept = (req) => {
      if (isCatalogGet(req)) fetchedAt.push(Date.now());
      return undefined;
    };
    await createClusterBroker('periodic', { url: proxy.url, relistBehavior: 'Duration', relistDuration: '2s' });
    const b = await waitReady('periodic');
    const first = fetchedAt.length;
    await waitFor(async () => fetchedAt.length >= first + 2, 8_000, 'two relists');
    const gaps = fetchedAt
      .slice(first - 1)
      .map((t, i, all) => (i === 0 ? 0 : t - all[i - 1]!))
      .slice(1);
    for (const gap of gaps) assert.ok(gap >= 1800 && gap <= 4000, `relist gaps ${gaps.join(', ')} ms`);

    const later = await getBroker('periodic');
    assert.equal(later.metadata.generation, 1);
    assert.equal(later.status?.reconciledGeneration, 1);
    assert.ok(
      Date.parse(later.status?.lastCatalogRetrievalTime ?? '') > Date.parse(b.status?.lastCatalogRetrievalTime ?? ''),
      'lastCatalogRetrievalTime moved',
    );
  });

  it('relistBehavior "" (as svcat sends it) is kept as written and means Duration: timed relists', async () => {
    const proxy = await startProxy();
    const created = await createClusterBroker('zero', {
      url: proxy.url,
      relistBehavior: '',
      relistRequests: 0,
      relistDuration: '1s',
    });
    assert.equal(created.spec.relistBehavior, '');
    await waitReady('zero');
    const fetched = catalogGets(proxy).length;
    await waitFor(async () => catalogGets(proxy).length >= fetched + 2, 10_000, 'relists on the timer');
    const later = await getBroker('zero');
    assert.equal(later.metadata.generation, 1, 'no spec change: the timer relisted');
    assert.equal(later.spec.relistBehavior, '');
  });

  // Manual too: the flagged entries' deletion must not wait for a relist that never comes.
  for (const relistBehavior of ['Duration', 'Manual'] as const) {
    it(`entries gone from the catalog (${relistBehavior}): flagged, deleted unless used, back again`, async () => {
      const proxy = await startProxy();
      let served: CatalogResponse | undefined;
      proxy.intercept = (req) => (served && isCatalogGet(req) ? { status: 200, body: served } : undefined);
      await createClusterBroker('shrinking', { url: proxy.url, relistBehavior });
      await waitReady('shrinking');
      const singleClass = await kube().client.get<ServiceClass>(R.ClusterServiceClass, SINGLE_SERVICE_ID);
      const singlePlan = await kube().client.get<ServicePlan>(R.ClusterServicePlan, SINGLE_PLAN_ID);

      await ensureNamespace(kube(), 'shrinking');
      await create(
        kube(),
        R.ServiceInstance,
        instance('keeper', 'shrinking', {
          clusterServiceClassExternalName: 'depot-test-single',
          clusterServicePlanExternalName: 'default',
        }),
      );
      const keeper = await waitForReason<ServiceInstance>(
        kube(),
        R.ServiceInstance,
        'keeper',
        'shrinking',
        'ProvisionedSuccessfully',
      );
      assert.equal(keeper.spec.clusterServiceClassRef?.name, SINGLE_SERVICE_ID);
      assert.equal(keeper.spec.clusterServicePlanRef?.name, SINGLE_PLAN_ID);

      // depot-test-single and the plan "slow" of depot-test leave the catalog.
      served = catalogWithout([SINGLE_SERVICE_ID, SLOW_PLAN_ID]);
      await waitRelisted('shrinking', await requestRelist('shrinking'));
      await waitForGone(kube(), R.ClusterServicePlan, SLOW_PLAN_ID, undefined, 5_000);
      const flaggedClass = await kube().client.get<ServiceClass>(R.ClusterServiceClass, SINGLE_SERVICE_ID);
      const flaggedPlan = await kube().client.get<ServicePlan>(R.ClusterServicePlan, SINGLE_PLAN_ID);
      assert.equal(flaggedClass.status?.removedFromBrokerCatalog, true);
      assert.equal(flaggedPlan.status?.removedFromBrokerCatalog, true);
      assert.equal(flaggedClass.metadata.uid, singleClass.metadata.uid);
      assert.equal(flaggedPlan.metadata.uid, singlePlan.metadata.uid);
      // Unaffected entries stay as they were.
      assert.ok(
        !(await kube().client.get<ServiceClass>(R.ClusterServiceClass, TEST_SERVICE_ID)).status
          ?.removedFromBrokerCatalog,
      );
      assert.ok(
        !(await kube().client.get<ServicePlan>(R.ClusterServicePlan, OK_PLAN_ID)).status?.removedFromBrokerCatalog,
      );
      // The instance is not touched.
      const stillThere = await kube().client.get<ServiceInstance>(R.ServiceInstance, 'keeper', 'shrinking');
      assert.equal(stillThere.metadata.deletionTimestamp, undefined);
      assert.equal(condition(stillThere, 'Ready')?.status, 'True');
      // A new instance of a class flagged removedFromBrokerCatalog is refused.
      await create(
        kube(),
        R.ServiceInstance,
        instance('latecomer', 'shrinking', {
          clusterServiceClassExternalName: 'depot-test-single',
          clusterServicePlanExternalName: 'default',
        }),
      );
      await waitForReason(kube(), R.ServiceInstance, 'latecomer', 'shrinking', 'ReferencesDeletedServiceClass');
      await deleteOrRelease(R.ServiceInstance, { metadata: { name: 'latecomer', namespace: 'shrinking' } }, 5_000);
      // Still kept a moment later: the instance uses it.
      await sleep(500);
      assert.equal(
        (await kube().client.get<ServiceClass>(R.ClusterServiceClass, SINGLE_SERVICE_ID)).status
          ?.removedFromBrokerCatalog,
        true,
      );

      // Back in the catalog: the same objects, no longer flagged; the deleted plan is created again.
      served = undefined;
      await waitRelisted('shrinking', await requestRelist('shrinking'));
      const restoredClass = await kube().client.get<ServiceClass>(R.ClusterServiceClass, SINGLE_SERVICE_ID);
      const restoredPlan = await kube().client.get<ServicePlan>(R.ClusterServicePlan, SINGLE_PLAN_ID);
      assert.equal(restoredClass.metadata.uid, singleClass.metadata.uid);
      assert.equal(restoredClass.status?.removedFromBrokerCatalog, false);
      assert.equal(restoredPlan.status?.removedFromBrokerCatalog, false);
      const slow = await kube().client.get<ServicePlan>(R.ClusterServicePlan, SLOW_PLAN_ID);
      assert.ok(!slow.status?.removedFromBrokerCatalog);
      assert.equal(slow.spec.clusterServiceClassRef?.name, TEST_SERVICE_ID);

      // Removed again, then the last instance goes: the class and plan go with it.
      served = catalogWithout([SINGLE_SERVICE_ID]);
      await waitRelisted('shrinking', await requestRelist('shrinking'));
      assert.equal(
        (await kube().client.get<ServiceClass>(R.ClusterServiceClass, SINGLE_SERVICE_ID)).status
          ?.removedFromBrokerCatalog,
        true,
      );
      await kube().client.delete(R.ServiceInstance, 'keeper', 'shrinking');
      await waitForGone(kube(), R.ServiceInstance, 'keeper', 'shrinking', 15_000);
      await waitForGone(kube(), R.ClusterServicePlan, SINGLE_PLAN_ID, undefined, 10_000);
      await waitForGone(kube(), R.ClusterServiceClass, SINGLE_SERVICE_ID, undefined, 10_000);
      assert.ok(await kube().client.find(R.ClusterServicePlan, SLOW_PLAN_ID), 'entries still in the catalog stay');
    });
  }

  it('catalogRestrictions.serviceClass: only the matching class and plans; a change removes others', async () => {
    await createClusterBroker('only-single', {
      url: broker().baseUrl,
      authInfo: basicAuth(),
      catalogRestrictions: { serviceClass: ['spec.externalName in (depot-test-single)'] },
    });
    await waitReady('only-single');
    assert.deepEqual(names(await clusterClasses('only-single')), [SINGLE_SERVICE_ID]);
    assert.deepEqual(names(await clusterPlans('only-single')), [SINGLE_PLAN_ID]);

    const updated = await mergePatch<ServiceBroker>(R.ClusterServiceBroker, 'only-single', undefined, {
      spec: {
        catalogRestrictions: {
          serviceClass: ['spec.externalName==depot-test'],
          servicePlan: ['spec.externalName in (ok, slow)'],
        },
      },
    });
    await waitRelisted('only-single', updated.metadata.generation!);
    await waitForGone(kube(), R.ClusterServicePlan, SINGLE_PLAN_ID, undefined, 5_000);
    await waitForGone(kube(), R.ClusterServiceClass, SINGLE_SERVICE_ID, undefined, 5_000);
    assert.deepEqual(names(await clusterClasses('only-single')), [TEST_SERVICE_ID]);
    assert.deepEqual(names(await clusterPlans('only-single')), [OK_PLAN_ID, SLOW_PLAN_ID].sort());
  });

  it('catalogRestrictions.servicePlan: ==, !=, notin, spec.free, name, class; no class without plans', async () => {
    await createClusterBroker('only-ok', {
      url: broker().baseUrl,
      authInfo: basicAuth(),
      catalogRestrictions: { servicePlan: ['spec.externalName==ok'] },
    });
    await waitReady('only-ok');
    assert.deepEqual(names(await clusterClasses('only-ok')), [TEST_SERVICE_ID]);
    assert.deepEqual(names(await clusterPlans('only-ok')), [OK_PLAN_ID]);
    await cleanUp();

    await createClusterBroker('mixed', {
      url: broker().baseUrl,
      authInfo: basicAuth(),
      catalogRestrictions: {
        serviceClass: [`name in (${SERVICE_ID}, ${SINGLE_SERVICE_ID})`],
        servicePlan: [
          'spec.free==true',
          'spec.externalName!=standard',
          `spec.clusterServiceClass.name notin (${TEST_SERVICE_ID})`,
        ],
      },
    });
    await waitReady('mixed');
    assert.deepEqual(names(await clusterClasses('mixed')), [SERVICE_ID, SINGLE_SERVICE_ID].sort());
    assert.deepEqual(names(await clusterPlans('mixed')), [SMALL_PLAN_ID, SINGLE_PLAN_ID].sort());
    await cleanUp();

    await createClusterBroker('nothing', {
      url: broker().baseUrl,
      authInfo: basicAuth(),
      catalogRestrictions: { servicePlan: ['spec.free==false'] },
    });
    const b = await waitReady('nothing');
    assert.equal(b.status?.reconciledGeneration, 1);
    assert.deepEqual(await clusterClasses('nothing'), []);
    assert.deepEqual(await clusterPlans('nothing'), []);
  });

  it('a catalogRestrictions predicate that does not parse: ErrorSyncingCatalog, nothing created', async () => {
    await createClusterBroker('bad-restriction', {
      url: broker().baseUrl,
      authInfo: basicAuth(),
      catalogRestrictions: { serviceClass: ['spec.externalName in (depot-test'] },
    });
    const b = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'bad-restriction',
      undefined,
      'ErrorSyncingCatalog',
    );
    assert.equal(condition(b, 'Ready')?.status, 'False');
    assert.equal(b.status?.lastConditionState, 'ErrorSyncingCatalog');
    assert.deepEqual(await clusterClasses('bad-restriction'), []);
    assert.deepEqual(await clusterPlans('bad-restriction'), []);
  });

  it('a service without plans: ErrorSyncingCatalog, nothing written; fine once a restriction drops it', async () => {
    const catalog: CatalogResponse = {
      services: [
        {
          id: 'f0000000-0000-4000-8000-000000000001',
          name: 'fine',
          description: 'fine',
          bindable: true,
          plans: [{ id: 'f0000000-0000-4000-8000-000000000002', name: 'p', description: 'p' }],
        },
        {
          id: 'f0000000-0000-4000-8000-000000000003',
          name: 'empty',
          description: 'no plans',
          bindable: true,
          plans: [],
        },
      ],
    };
    const proxy = await startProxy();
    proxy.intercept = (req) => (isCatalogGet(req) ? { status: 200, body: catalog } : undefined);
    await createClusterBroker('planless', { url: proxy.url });
    const failing = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'planless',
      undefined,
      'ErrorSyncingCatalog',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'False');
    assert.match(condition(failing, 'Ready')?.message ?? '', /must have at least one plan/);
    // convertAndFilterCatalog fails before anything is created.
    assert.deepEqual(await clusterClasses('planless'), []);
    assert.deepEqual(await clusterPlans('planless'), []);

    // The original checks plans only of classes the restrictions accept.
    const updated = await mergePatch<ServiceBroker>(R.ClusterServiceBroker, 'planless', undefined, {
      spec: { catalogRestrictions: { serviceClass: ['spec.externalName!=empty'] } },
    });
    await waitRelisted('planless', updated.metadata.generation!);
    assert.deepEqual(names(await clusterClasses('planless')), ['f0000000-0000-4000-8000-000000000001']);
    assert.deepEqual(names(await clusterPlans('planless')), ['f0000000-0000-4000-8000-000000000002']);
  });

  it('an entry the API server refuses: ErrorSyncingCatalog naming it; Ready once the broker fixes it', async () => {
    const bad: CatalogResponse = structuredClone(
      catalogWithout([TEST_SERVICE_ID, SERVICE_ID, REDIS_SERVICE_ID, MYSQL_SERVICE_ID, RABBITMQ_SERVICE_ID]),
    );
    const badPlan = bad.services[0]!.plans[0]!;
    // maintenanceInfo.version is a string in the CRD schema.
    (badPlan as unknown as { maintenance_info: { version: number } }).maintenance_info = { version: 2 };
    let served: CatalogResponse | undefined = bad;
    const proxy = await startProxy();
    proxy.intercept = (req) => (served && isCatalogGet(req) ? { status: 200, body: served } : undefined);
    await createClusterBroker('refused', { url: proxy.url });
    const failing = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'refused',
      undefined,
      'ErrorSyncingCatalog',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'False');
    assert.match(condition(failing, 'Ready')?.message ?? '', new RegExp(`ClusterServicePlan.*${SINGLE_PLAN_ID}`));
    assert.equal(await kube().client.find(R.ClusterServicePlan, SINGLE_PLAN_ID), undefined);

    served = undefined;
    await waitReady('refused');
    assert.ok(await kube().client.find(R.ClusterServicePlan, SINGLE_PLAN_ID));
  });

  it("two ClusterServiceBrokers, same ids: the second is ErrorSyncingCatalog, the first's classes stay", async () => {
    await createClusterBroker('first', { url: broker().baseUrl, authInfo: basicAuth() });
    const first = await waitReady('first');
    await createClusterBroker('second', { url: broker().baseUrl, authInfo: basicAuth() });
    const second = await waitForReason<ServiceBroker>(
      kube(),
      R.ClusterServiceBroker,
      'second',
      undefined,
      'ErrorSyncingCatalog',
    );
    assert.match(condition(second, 'Ready')?.message ?? '', /already exists for Broker "first"/);
    assert.deepEqual(await clusterClasses('second'), []);

    await kube().client.delete(R.ClusterServiceBroker, 'second');
    await waitForGone(kube(), R.ClusterServiceBroker, 'second', undefined, 10_000);
    await assertMirrors(first, realCatalog);
  });

  it('ids other than lowercase UUIDs are escaped (GenerateEscapedName); labels and externalID keep them', async () => {
    const longId = `plan-${'a'.repeat(60)}`;
    const catalog: CatalogResponse = {
      services: [
        {
          id: 'Svc_ID',
          name: 'escaped',
          description: 'Ids with capitals, an underscore, a "z", and one too long for a name.',
          bindable: true,
          plans: [
            { id: 'PLAN-1', name: 'p1', description: 'p1', free: true },
            { id: 'zone', name: 'p2', description: 'p2', free: true },
            { id: longId, name: 'p3', description: 'p3', free: true },
          ],
        },
      ],
    };
    const proxy = await startProxy();
    proxy.intercept = (req) => (isCatalogGet(req) ? { status: 200, body: catalog } : undefined);
    await createClusterBroker('escaping', { url: proxy.url });
    await waitReady('escaping');

    const classes = await clusterClasses('escaping');
    assert.deepEqual(names(classes), ['z53zvcz5fzz49zz44z']);
    assert.equal(classes[0]?.spec.externalID, 'Svc_ID');
    assert.equal(classes[0]?.metadata.labels?.[LABEL.externalID], sha224('Svc_ID'));
    const plans = await clusterPlans('escaping');
    const expected: Record<string, string> = {
      'z50zz4czz41zz4ez-1': 'PLAN-1',
      z7azone: 'zone',
      [`plan-${'a'.repeat(25)}-${md5(longId)}`]: longId,
    };
    assert.deepEqual(names(plans), Object.keys(expected).sort());
    for (const plan of plans) {
      assert.equal(plan.spec.externalID, expected[plan.metadata.name]);
      assert.equal(plan.metadata.labels?.[LABEL.externalID], sha224(expected[plan.metadata.name]!));
      assert.equal(plan.spec.clusterServiceClassRef?.name, 'z53zvcz5fzz49zz44z');
      assert.equal(plan.metadata.labels?.[LABEL.clusterClassRef], sha224('z53zvcz5fzz49zz44z'));
    }
  });

  it('ids with "..", "-." or ".-", or cut to 30 characters ending in ".": escaped as GenerateEscapedName', async () => {
    const cut = `${'a'.repeat(29)}.${'b'.repeat(40)}`;
    const catalog: CatalogResponse = {
      services: [
        {
          id: 'svc..x',
          name: 'dots',
          description: 'Ids a DNS subdomain does not allow as they are.',
          bindable: true,
          plans: [
            { id: 'p-.1', name: 'p1', description: 'p1' },
            { id: 'p.-2', name: 'p2', description: 'p2' },
            { id: cut, name: 'p3', description: 'p3' },
          ],
        },
      ],
    };
    const proxy = await startProxy();
    proxy.intercept = (req) => (isCatalogGet(req) ? { status: 200, body: catalog } : undefined);
    await createClusterBroker('dots', { url: proxy.url });
    const b = await waitFor(
      async () => {
        const current = await getBroker('dots');
        return condition(current, 'Ready') ? current : undefined;
      },
      10_000,
      'a Ready condition on broker dots',
    );
    assert.equal(condition(b, 'Ready')?.reason, 'FetchedCatalog', condition(b, 'Ready')?.message);
    assert.deepEqual(names(await clusterClasses('dots')), ['svc.z2ezx']);
    assert.deepEqual(names(await clusterPlans('dots')), [`${'a'.repeat(29)}-${md5(cut)}`, 'p-z2ez1', 'p.z2dz2'].sort());
  });

  it('deleting the broker deletes its classes and plans, then its finalizer; instances are left alone', async () => {
    await createClusterBroker('doomed', { url: broker().baseUrl, authInfo: basicAuth() });
    await waitReady('doomed');
    await ensureNamespace(kube(), 'doomed');
    await create(
      kube(),
      R.ServiceInstance,
      instance('survivor', 'doomed', {
        clusterServiceClassExternalName: 'depot-test',
        clusterServicePlanExternalName: 'ok',
      }),
    );
    const before = await waitForReason<ServiceInstance>(
      kube(),
      R.ServiceInstance,
      'survivor',
      'doomed',
      'ProvisionedSuccessfully',
    );
    const externalID = before.spec.externalID;
    assert.ok(externalID);
    assert.ok((await clusterClasses('doomed')).length > 0);

    await kube().client.delete(R.ClusterServiceBroker, 'doomed');
    await waitForGone(kube(), R.ClusterServiceBroker, 'doomed', undefined, 10_000);
    assert.deepEqual(await clusterClasses('doomed'), []);
    assert.deepEqual(await clusterPlans('doomed'), []);
    assert.equal((await kube().client.list(R.ClusterServiceClass)).items.length, 0);
    assert.equal((await kube().client.list(R.ClusterServicePlan)).items.length, 0);
    await waitFor(
      async () => (await eventsOf('doomed', 'DeletedClusterServiceBrokerSuccessfully')).length > 0,
      5_000,
      'event DeletedClusterServiceBrokerSuccessfully',
    );

    await sleep(500);
    const afterwards = await kube().client.get<ServiceInstance>(R.ServiceInstance, 'survivor', 'doomed');
    assert.equal(afterwards.metadata.uid, before.metadata.uid);
    assert.equal(afterwards.metadata.deletionTimestamp, undefined);
    assert.deepEqual(afterwards.spec, before.spec);
    // Depot was not asked to deprovision it.
    const atDepot = await osb(broker()).get(instancePath(externalID));
    assert.equal(atDepot.status, 200, JSON.stringify(atDepot.body));

    // Tidy up without a broker: Depot's abandon annotation (afterEach strips the finalizer if need be).
    await mergePatch(R.ServiceInstance, 'survivor', 'doomed', {
      metadata: { annotations: { 'depot/abandon': 'true' } },
    });
  });

  it('a ServiceBroker: ServiceClasses and ServicePlans in its namespace; an instance of it becomes Ready', async () => {
    await brokerAuthSecret(kube(), 'team-a', 'team-auth');
    await create<ServiceBroker>(kube(), R.ServiceBroker, {
      metadata: { name: 'team-broker', namespace: 'team-a' },
      spec: { url: broker().baseUrl, authInfo: { basic: { secretRef: { name: 'team-auth' } } } },
    });
    const b = await waitReady('team-broker', 'team-a');
    assert.equal(b.status?.lastConditionState, 'Ready');
    assert.equal(b.status?.reconciledGeneration, b.metadata.generation);
    assert.deepEqual(b.metadata.finalizers, [FINALIZER]);
    await assertMirrors(b, realCatalog);
    assert.equal((await kube().client.list(R.ClusterServiceClass)).items.length, 0, 'no cluster-scoped classes');

    // The auth Secret is looked up in the broker's own namespace only.
    await ensureNamespace(kube(), 'team-b');
    await create<ServiceBroker>(kube(), R.ServiceBroker, {
      metadata: { name: 'team-broker', namespace: 'team-b' },
      spec: { url: broker().baseUrl, authInfo: { basic: { secretRef: { name: 'team-auth' } } } },
    });
    const other = await waitForReason<ServiceBroker>(
      kube(),
      R.ServiceBroker,
      'team-broker',
      'team-b',
      'ErrorFetchingCatalog',
    );
    assert.match(condition(other, 'Ready')?.message ?? '', /team-b\/team-auth/);
    assert.equal((await kube().client.list(R.ServiceClass, { namespace: 'team-b' })).items.length, 0);

    await create(
      kube(),
      R.ServiceInstance,
      instance('db', 'team-a', { serviceClassExternalName: 'depot-test-single' }),
    );
    const ready = await waitForReason<ServiceInstance>(
      kube(),
      R.ServiceInstance,
      'db',
      'team-a',
      'ProvisionedSuccessfully',
    );
    assert.equal(condition(ready, 'Ready')?.status, 'True');
    assert.equal(ready.spec.serviceClassRef?.name, SINGLE_SERVICE_ID);
    assert.equal(ready.spec.servicePlanRef?.name, SINGLE_PLAN_ID);
    assert.equal(ready.spec.clusterServiceClassRef, undefined);

    await kube().client.delete(R.ServiceInstance, 'db', 'team-a');
    await waitForGone(kube(), R.ServiceInstance, 'db', 'team-a', 15_000);
    await kube().client.delete(R.ServiceBroker, 'team-broker', 'team-a');
    await waitForGone(kube(), R.ServiceBroker, 'team-broker', 'team-a', 10_000);
    assert.equal((await kube().client.list(R.ServiceClass, { namespace: 'team-a' })).items.length, 0);
    assert.equal((await kube().client.list(R.ServicePlan, { namespace: 'team-a' })).items.length, 0);
    await waitFor(
      async () => (await eventsOf('team-broker', 'DeletedSuccessfully', 'team-a')).length > 0,
      5_000,
      'event DeletedSuccessfully',
    );
  });
});
