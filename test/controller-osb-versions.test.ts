/**
 * OSB API version negotiation, per broker: fake brokers (real HTTP servers in this file) that
 * accept only some versions and answer 412 Precondition Failed to the others, as spec.md's
 * "API Version Header" lets them. Each records every request, so the tests can check that the
 * controller never sent a broker a field, parameter, header or endpoint its version lacks.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import type {
  KubeObject,
  Secret,
  ServiceBinding,
  ServiceBroker,
  ServiceInstance,
  ServicePlan,
} from '../catalog-controller/api/v1beta1.js';
import type { CatalogResponse, JsonObject } from '../osb/index.js';
import {
  R,
  binding,
  condition,
  create,
  edit,
  ensureNamespace,
  instance,
  secretValues,
  startController,
  startKubeApi,
  waitFor,
  waitForGone,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';

const NS = 'versions';
const PIN = 'depot/osb-api-version';

let api: KubeApi | undefined;
let controller: ControllerProcess | undefined;
const fakes: FakeBroker[] = [];

const kube = (): KubeApi => {
  assert.ok(api, 'kube-apiserver not started');
  return api;
};

// ---- a fake broker that speaks some versions only ----

interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  version: string | undefined;
  requestIdentity: string | undefined;
  body: JsonObject | undefined;
  /** What the fake answered. */
  status: number;
}

interface FakeBroker {
  url: string;
  serviceId: string;
  planId: string;
  /** Minor versions it accepts; the tests change it to "upgrade" the broker. */
  accepts: number[];
  /** What the binding last_operation endpoint answers; the tests hold an asynchronous bind with "in progress". */
  bindingState: 'in progress' | 'succeeded';
  requests: FakeRequest[];
  close(): Promise<void>;
}

/** A catalog with fields of every version: a broker may list more than its version defines. */
function fakeCatalog(serviceId: string, planId: string): CatalogResponse {
  return {
    services: [
      {
        id: serviceId,
        name: `fake-${serviceId}`,
        description: 'A fake database',
        bindable: true,
        bindings_retrievable: true,
        instances_retrievable: true,
        plans: [
          {
            id: planId,
            name: 'small',
            description: 'Small',
            free: true,
            maintenance_info: { version: '1.0.0', description: 'first' },
          },
        ],
      },
    ],
  };
}

/** The fake's answer to a request it accepts (OSB status codes for the happy path). */
type Reply = { status: number; body: unknown };

function answer(
  fake: FakeBroker,
  method: string,
  path: string,
  query: URLSearchParams,
  catalog: CatalogResponse,
): Reply {
  const binding = /^\/v2\/service_instances\/[^/]+\/service_bindings\/([^/]+)$/.exec(path);
  const credentials = { uri: `fake://${binding?.[1] ?? ''}`, password: `secret-${binding?.[1] ?? ''}` };
  if (method === 'GET' && path === '/v2/catalog') return { status: 200, body: catalog };
  if (method === 'GET' && path.endsWith('/last_operation')) {
    const state = path.includes('/service_bindings/') ? fake.bindingState : 'succeeded';
    return { status: 200, body: { state } };
  }
  if (binding && method === 'PUT') {
    const async = query.get('accepts_incomplete') === 'true';
    return async ? { status: 202, body: { operation: 'bind' } } : { status: 201, body: { credentials } };
  }
  if (binding && method === 'GET') return { status: 200, body: { credentials } };
  if (method === 'PUT') return { status: 202, body: { operation: 'provision' } };
  if (method === 'PATCH' || method === 'DELETE') return { status: 200, body: {} };
  return { status: 404, body: {} };
}

async function startFakeBroker(name: string, accepts: number[]): Promise<FakeBroker> {
  const serviceId = `${name}-service`;
  const planId = `${name}-plan`;
  const catalog = fakeCatalog(serviceId, planId);
  const fake: FakeBroker = {
    url: '',
    serviceId,
    planId,
    accepts,
    bindingState: 'succeeded',
    requests: [],
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const version = req.headers['x-broker-api-version'] as string | undefined;
      const accepted = fake.accepts.some((minor) => version === `2.${minor}`);
      const speaks = fake.accepts.map((m) => `2.${m}`).join(', ');
      const reply = accepted
        ? answer(fake, req.method ?? '', url.pathname, url.searchParams, catalog)
        : { status: 412, body: { description: `This broker speaks OSB ${speaks}.` } };
      const raw = Buffer.concat(chunks).toString();
      fake.requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        version,
        requestIdentity: req.headers['x-broker-api-request-identity'] as string | undefined,
        body: raw ? (JSON.parse(raw) as JsonObject) : undefined,
        status: reply.status,
      });
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  fakes.push(fake);
  return fake;
}

/** The versions offered for the catalog, in order. */
const catalogOffers = (fake: FakeBroker): Array<string | undefined> =>
  fake.requests.filter((r) => r.path === '/v2/catalog').map((r) => r.version);

/**
 * What a broker speaking 2.`agreed` must never have received (spec.md, "Changes Since v2.N"
 * for each version; profile.md for the context object), one line per offence. Only catalog
 * requests may carry another version (they are the negotiation), and are held to their own.
 */
function offences(fake: FakeBroker, agreed: number): string[] {
  const out: string[] = [];
  for (const r of fake.requests) {
    const minor = r.path === '/v2/catalog' ? Number(r.version?.replace(/^2\./, '')) : agreed;
    const where = `${r.method} ${r.path}?${r.query.toString()}`;
    const context = r.body?.context as JsonObject | undefined;
    const bindingCall = r.path.includes('/service_bindings/');
    if (r.version !== `2.${minor}`) out.push(`${where}: X-Broker-API-Version ${r.version}`);
    if (minor < 15 && r.requestIdentity !== undefined) out.push(`${where}: X-Broker-API-Request-Identity (2.15)`);
    if (minor < 15 && r.body && 'maintenance_info' in r.body) out.push(`${where}: maintenance_info (2.15)`);
    if (minor < 17 && r.body && 'predecessor_binding_id' in r.body) out.push(`${where}: predecessor_binding_id (2.17)`);
    if (minor < 14 && context && 'clusterid' in context) out.push(`${where}: context.clusterid (2.14)`);
    if (minor < 15 && context && 'instance_name' in context) out.push(`${where}: context.instance_name (2.15)`);
    const asyncBinding = bindingCall && r.query.has('accepts_incomplete');
    if (minor < 14 && asyncBinding) out.push(`${where}: accepts_incomplete on a binding (2.14)`);
    if (minor < 14 && bindingCall && r.method === 'GET') out.push(`${where}: GET binding or its last_operation (2.14)`);
    const fetchInstance = r.method === 'GET' && /^\/v2\/service_instances\/[^/]+$/.test(r.path);
    if (minor < 14 && fetchInstance) out.push(`${where}: GET instance (2.14)`);
  }
  return out;
}

const calls = (fake: FakeBroker, method: string, pattern: RegExp): FakeRequest[] =>
  fake.requests.filter((r) => r.method === method && pattern.test(r.path));

// ---- Kubernetes side ----

type BrokerScope = { namespace?: string };

function brokerResource(scope: BrokerScope) {
  return scope.namespace ? R.ServiceBroker : R.ClusterServiceBroker;
}

async function register(
  name: string,
  fake: FakeBroker,
  scope: BrokerScope = {},
  annotations?: Record<string, string>,
  spec: Omit<ServiceBroker['spec'], 'url'> = {},
) {
  await create<ServiceBroker>(kube(), brokerResource(scope), {
    metadata: { name, ...(scope.namespace ? { namespace: scope.namespace } : {}), ...(annotations && { annotations }) },
    spec: { ...spec, url: fake.url },
  });
}

const getBroker = (name: string, scope: BrokerScope = {}): Promise<ServiceBroker> =>
  kube().client.get<ServiceBroker>(brokerResource(scope), name, scope.namespace);

/** Waits for a catalog fetch at `version` (status.osbApiVersion) with Ready True. */
async function waitAgreed(name: string, version: string, scope: BrokerScope = {}): Promise<ServiceBroker> {
  let last: ServiceBroker | undefined;
  try {
    return await waitFor(
      async () => {
        last = await getBroker(name, scope);
        const fetched = condition(last, 'Ready')?.reason === 'FetchedCatalog';
        return last.status?.osbApiVersion === version && fetched ? last : undefined;
      },
      20_000,
      `broker ${name} agreed on ${version}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last?.status)}`, { cause: error });
  }
}

const waitForBroker = (name: string, reason: string): Promise<ServiceBroker> =>
  waitForReason<ServiceBroker>(kube(), R.ClusterServiceBroker, name, undefined, reason);

/** An instance and a binding of the fake's plan, both Ready; returns the binding and its Secret. */
async function provisionAndBind(fake: FakeBroker, name: string, scope: BrokerScope = {}) {
  const spec = scope.namespace
    ? { serviceClassExternalName: `fake-${fake.serviceId}`, servicePlanExternalName: 'small' }
    : { clusterServiceClassExternalName: `fake-${fake.serviceId}`, clusterServicePlanExternalName: 'small' };
  await create(kube(), R.ServiceInstance, instance(name, NS, spec));
  await waitForReason<ServiceInstance>(kube(), R.ServiceInstance, name, NS, 'ProvisionedSuccessfully');
  await create(kube(), R.ServiceBinding, binding(name, NS, { instanceRef: { name } }));
  const bound = await waitForReason<ServiceBinding>(kube(), R.ServiceBinding, name, NS, 'InjectedBindResult');
  const secret = await kube().client.get<Secret>(R.Secret, name, NS);
  return { bound, secret };
}

/** Deletes the binding, then the instance; both go, and so does the Secret. */
async function unbindAndDeprovision(name: string): Promise<void> {
  await kube().client.delete(R.ServiceBinding, name, NS);
  await waitForGone(kube(), R.ServiceBinding, name, NS);
  assert.equal(await kube().client.find(R.Secret, name, NS), undefined, 'the Secret went with the binding');
  await kube().client.delete(R.ServiceInstance, name, NS);
  await waitForGone(kube(), R.ServiceInstance, name, NS);
}

before(async () => {
  api = await startKubeApi();
  await ensureNamespace(kube(), NS);
  controller = await startController(kube());
});

afterEach(async () => {
  try {
    for (const resource of [R.ServiceBinding, R.ServiceInstance]) {
      for (const o of (await kube().client.list<KubeObject>(resource)).items) {
        await kube().client.delete(resource, o.metadata.name, o.metadata.namespace);
        await waitForGone(kube(), resource, o.metadata.name, o.metadata.namespace);
      }
    }
    for (const resource of [R.ClusterServiceBroker, R.ServiceBroker]) {
      for (const o of (await kube().client.list<KubeObject>(resource)).items) {
        await kube().client.delete(resource, o.metadata.name, o.metadata.namespace);
        await waitForGone(kube(), resource, o.metadata.name, o.metadata.namespace);
      }
    }
  } finally {
    // Also after a failed test whose objects cannot go: an open fake would keep the run from exiting.
    await Promise.all(fakes.splice(0).map((f) => f.close()));
  }
});

after(async () => {
  await controller?.stop();
  await api?.stop();
});

describe('OSB API version negotiation', () => {
  it('a broker that speaks only 2.14: agreed after three 412s; async bindings, no 2.15+ fields', async () => {
    const fake = await startFakeBroker('only-214', [14]);
    await register('only-214', fake);
    const agreed = await waitAgreed('only-214', '2.14');
    assert.equal(condition(agreed, 'Ready')?.status, 'True');
    assert.deepEqual(catalogOffers(fake), ['2.17', '2.16', '2.15', '2.14']);
    const plan = await kube().client.get<ServicePlan>(R.ClusterServicePlan, fake.planId);
    assert.deepEqual(plan.spec.maintenanceInfo, { version: '1.0.0', description: 'first' }, 'maintenance_info listed');

    const { bound, secret } = await provisionAndBind(fake, 'db-214');
    assert.deepEqual(secretValues(secret), {
      uri: `fake://${bound.metadata.uid}`,
      password: `secret-${bound.metadata.uid}`,
      type: `fake-${fake.serviceId}`,
      provider: 'only-214',
    });
    // 2.14 has asynchronous bindings and GET binding: bindings_retrievable is used.
    const [bind] = calls(fake, 'PUT', /\/service_bindings\/[^/]+$/);
    assert.equal(bind?.query.get('accepts_incomplete'), 'true');
    assert.equal(calls(fake, 'GET', /\/service_bindings\/[^/]+$/).length, 1, 'the credentials came from GET binding');
    const [provision] = calls(fake, 'PUT', /^\/v2\/service_instances\/[^/]+$/);
    assert.deepEqual(provision?.body?.context, { platform: 'kubernetes', namespace: NS, clusterid: 'test-cluster' });

    // An update (svcat touch) speaks 2.14 as well.
    await edit<ServiceInstance>(kube(), R.ServiceInstance, 'db-214', NS, (i) => {
      i.spec.updateRequests = (i.spec.updateRequests ?? 0) + 1;
    });
    const patches = (): number => calls(fake, 'PATCH', /^\/v2\/service_instances\/[^/]+$/).length;
    await waitFor(async () => patches() === 1, 20_000, 'the update');
    await waitForReason(kube(), R.ServiceInstance, 'db-214', NS, 'InstanceUpdatedSuccessfully');

    await unbindAndDeprovision('db-214');
    assert.equal(calls(fake, 'DELETE', /\/service_bindings\//).length, 1, 'unbound');
    assert.equal(calls(fake, 'DELETE', /^\/v2\/service_instances\/[^/]+$/).length, 1, 'deprovisioned');
    assert.deepEqual(offences(fake, 14), []);
  });

  it('a namespaced broker speaking only 2.13: synchronous binds, no GET binding; a lost Secret rebound', async () => {
    const scope = { namespace: NS };
    const fake = await startFakeBroker('only-213', [13]);
    await register('only-213', fake, scope);
    await waitAgreed('only-213', '2.13', scope);
    assert.deepEqual(catalogOffers(fake), ['2.17', '2.16', '2.15', '2.14', '2.13']);
    assert.ok(await kube().client.find(R.ServiceClass, fake.serviceId, NS), 'a namespaced class');
    assert.ok(await kube().client.find(R.ServicePlan, fake.planId, NS), 'a namespaced plan');

    const { bound, secret } = await provisionAndBind(fake, 'db-213', scope);
    assert.equal(secretValues(secret).password, `secret-${bound.metadata.uid}`);
    const binds = (): FakeRequest[] => calls(fake, 'PUT', /\/service_bindings\/[^/]+$/);
    assert.equal(binds().length, 1);
    assert.equal(binds()[0]!.query.has('accepts_incomplete'), false, 'bound synchronously');
    const [provision] = calls(fake, 'PUT', /^\/v2\/service_instances\/[^/]+$/);
    assert.deepEqual(provision?.body?.context, { platform: 'kubernetes', namespace: NS });

    // Without GET binding (2.14), a deleted Secret comes back from an identical bind.
    await kube().client.delete(R.Secret, 'db-213', NS);
    const secretBack = async (): Promise<boolean> => (await kube().client.find(R.Secret, 'db-213', NS)) !== undefined;
    await waitFor(secretBack, 20_000, 'the Secret back');
    assert.equal(binds().length, 2);

    await unbindAndDeprovision('db-213');
    assert.equal(calls(fake, 'DELETE', /\/service_bindings\//).length, 1, 'unbound');
    assert.equal(calls(fake, 'DELETE', /^\/v2\/service_instances\/[^/]+$/).length, 1, 'deprovisioned');
    assert.deepEqual(offences(fake, 13), []);
  });

  it('a broker that accepts no version from 2.17 to 2.13: ErrorFetchingCatalog naming the versions tried', async () => {
    const fake = await startFakeBroker('only-212', [12]);
    await register('only-212', fake);
    const failing = await waitForBroker('only-212', 'ErrorFetchingCatalog');
    const message = condition(failing, 'Ready')?.message ?? '';
    assert.match(message, /accepts none of the OSB API versions 2\.17, 2\.16, 2\.15, 2\.14, 2\.13: Status: 412/);
    assert.equal(failing.status?.osbApiVersion, undefined);
    assert.deepEqual(catalogOffers(fake).slice(0, 5), ['2.17', '2.16', '2.15', '2.14', '2.13']);
    assert.equal(await kube().client.find(R.ClusterServiceClass, fake.serviceId), undefined);
  });

  it('each relist negotiates again from 2.17: a broker upgraded from 2.14 to 2.17 is spoken to in 2.17', async () => {
    const fake = await startFakeBroker('upgraded', [14]);
    await register('upgraded', fake);
    await waitAgreed('upgraded', '2.14');
    fake.accepts = [14, 15, 16, 17];
    const offered = catalogOffers(fake).length;
    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'upgraded', undefined, (b) => {
      b.spec.relistRequests = (b.spec.relistRequests ?? 0) + 1;
    });
    await waitAgreed('upgraded', '2.17');
    assert.deepEqual(catalogOffers(fake).slice(offered), ['2.17']);

    await create(
      kube(),
      R.ServiceInstance,
      instance('db-217', NS, {
        clusterServiceClassExternalName: `fake-${fake.serviceId}`,
        clusterServicePlanExternalName: 'small',
      }),
    );
    await waitForReason(kube(), R.ServiceInstance, 'db-217', NS, 'ProvisionedSuccessfully');
    const [provision] = calls(fake, 'PUT', /^\/v2\/service_instances\/[^/]+$/);
    assert.equal(provision?.version, '2.17');
    assert.deepEqual(provision?.body?.maintenance_info, { version: '1.0.0', description: 'first' });
    assert.equal((provision?.body?.context as JsonObject | undefined)?.instance_name, 'db-217');
    assert.ok(provision?.requestIdentity, 'X-Broker-API-Request-Identity from 2.15');
  });

  it(`the ${PIN} annotation pins the version: no negotiation; a change relists; an invalid one is shown`, async () => {
    const fake = await startFakeBroker('pinned', [13, 14, 15, 16, 17]);
    await register('pinned', fake, {}, { [PIN]: '2.14' });
    await waitAgreed('pinned', '2.14');
    assert.deepEqual(catalogOffers(fake), ['2.14']);
    await create(
      kube(),
      R.ServiceInstance,
      instance('db-pinned', NS, {
        clusterServiceClassExternalName: `fake-${fake.serviceId}`,
        clusterServicePlanExternalName: 'small',
      }),
    );
    await waitForReason(kube(), R.ServiceInstance, 'db-pinned', NS, 'ProvisionedSuccessfully');
    assert.deepEqual(offences(fake, 14), []);

    // An annotation is no spec change, yet the broker is relisted at the new version.
    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'pinned', undefined, (b) => {
      b.metadata.annotations = { [PIN]: '2.13' };
    });
    await waitAgreed('pinned', '2.13');
    assert.deepEqual(catalogOffers(fake), ['2.14', '2.13']);

    const offered = catalogOffers(fake).length;
    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'pinned', undefined, (b) => {
      b.metadata.annotations = { [PIN]: 'v2.14' };
    });
    const invalid = await waitForBroker('pinned', 'InvalidSpec');
    assert.equal(condition(invalid, 'Ready')?.status, 'False');
    assert.match(condition(invalid, 'Ready')?.message ?? '', /osb-api-version: "v2\.14" is not an OSB API version/);
    assert.equal(catalogOffers(fake).length, offered, 'no catalog fetch with an invalid pin');
    assert.equal(invalid.status?.osbApiVersion, '2.13', 'the last agreed version stays');

    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'pinned', undefined, (b) => {
      delete b.metadata.annotations;
    });
    await waitAgreed('pinned', '2.17');
    assert.deepEqual(catalogOffers(fake).slice(offered), ['2.17']);
  });

  it(`removing the ${PIN} annotation from a Ready broker relists at once, without a spec change`, async () => {
    // relistBehavior Manual: no timed relist can hide a missed one.
    const fake = await startFakeBroker('unpinned', [13, 17]);
    await register('unpinned', fake, {}, { [PIN]: '2.13' }, { relistBehavior: 'Manual' });
    const pinned = await waitAgreed('unpinned', '2.13');
    assert.equal(pinned.status?.osbApiVersionPinned, true);
    assert.deepEqual(catalogOffers(fake), ['2.13']);

    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'unpinned', undefined, (b) => {
      delete b.metadata.annotations?.[PIN];
    });
    const negotiated = await waitAgreed('unpinned', '2.17');
    assert.equal(negotiated.metadata.generation, pinned.metadata.generation, 'no spec change');
    assert.equal(negotiated.status?.osbApiVersionPinned, undefined);
    assert.deepEqual(catalogOffers(fake), ['2.13', '2.17']);

    // Pinning the version just negotiated relists too: the status then says it is pinned.
    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'unpinned', undefined, (b) => {
      b.metadata.annotations = { ...b.metadata.annotations, [PIN]: '2.17' };
    });
    const repinned = await waitFor(
      async () => {
        const b = await getBroker('unpinned');
        return b.status?.osbApiVersionPinned === true ? b : undefined;
      },
      20_000,
      'the broker relisted with the pin',
    );
    assert.equal(repinned.status?.osbApiVersion, '2.17');
    assert.deepEqual(catalogOffers(fake), ['2.13', '2.17', '2.17']);
  });

  it('an asynchronous bind in flight when a pin lowers the version below 2.14 is polled to its end', async () => {
    const fake = await startFakeBroker('async-pinned', [13, 14]);
    await register('async-pinned', fake);
    await waitAgreed('async-pinned', '2.14');
    await create(
      kube(),
      R.ServiceInstance,
      instance('db-async', NS, {
        clusterServiceClassExternalName: `fake-${fake.serviceId}`,
        clusterServicePlanExternalName: 'small',
      }),
    );
    await waitForReason(kube(), R.ServiceInstance, 'db-async', NS, 'ProvisionedSuccessfully');
    fake.bindingState = 'in progress';
    await create(kube(), R.ServiceBinding, binding('db-async', NS, { instanceRef: { name: 'db-async' } }));
    await waitForReason<ServiceBinding>(kube(), R.ServiceBinding, 'db-async', NS, 'Binding');
    const [bind] = calls(fake, 'PUT', /\/service_bindings\/[^/]+$/);
    assert.equal(bind?.query.get('accepts_incomplete'), 'true', 'bound asynchronously at 2.14');

    await edit<ServiceBroker>(kube(), R.ClusterServiceBroker, 'async-pinned', undefined, (b) => {
      b.metadata.annotations = { [PIN]: '2.13' };
    });
    await waitAgreed('async-pinned', '2.13');
    // Two more polls: the second was sent after the controller had written (and cached) 2.13.
    const polls = (): FakeRequest[] => calls(fake, 'GET', /\/service_bindings\/[^/]+\/last_operation$/);
    const before = polls().length;
    const seen = await waitFor(
      async () => {
        const b = await kube().client.get<ServiceBinding>(R.ServiceBinding, 'db-async', NS);
        const ready = condition(b, 'Ready');
        if (ready?.reason !== 'Binding') return ready ?? { reason: 'none', message: JSON.stringify(b.status) };
        return polls().length >= before + 2 ? ready : undefined;
      },
      20_000,
      'two polls of the binding after the pin',
    );
    assert.equal(seen.reason, 'Binding', `still binding after the pin; Ready: ${seen.message}`);

    fake.bindingState = 'succeeded';
    const bound = await waitForReason<ServiceBinding>(kube(), R.ServiceBinding, 'db-async', NS, 'InjectedBindResult');
    assert.equal(condition(bound, 'Failed'), undefined);
    const secret = await kube().client.get<Secret>(R.Secret, 'db-async', NS);
    assert.equal(secretValues(secret).password, `secret-${bound.metadata.uid}`);
    // Polled and fetched at 2.14, the version the bind was accepted at; no orphan mitigation.
    assert.deepEqual([...new Set(polls().map((r) => r.version))], ['2.14']);
    const fetched = calls(fake, 'GET', /\/service_bindings\/[^/]+$/);
    assert.deepEqual(
      fetched.map((r) => r.version),
      ['2.14'],
      'the credentials came from GET binding',
    );
    assert.deepEqual(calls(fake, 'DELETE', /\/service_bindings\//), []);

    // Once the operation is over, the binding speaks the pinned 2.13: a synchronous unbind.
    await unbindAndDeprovision('db-async');
    const [unbind] = calls(fake, 'DELETE', /\/service_bindings\//);
    assert.equal(unbind?.version, '2.13');
    assert.equal(unbind?.query.has('accepts_incomplete'), false);
  });

  it('a pinned version the broker refuses: ErrorFetchingCatalog naming it; no other version is tried', async () => {
    const fake = await startFakeBroker('pin-refused', [13]);
    await register('pin-refused', fake, {}, { [PIN]: '2.14' });
    const failing = await waitForBroker('pin-refused', 'ErrorFetchingCatalog');
    const message = condition(failing, 'Ready')?.message ?? '';
    assert.match(message, /does not accept OSB API version 2\.14 \(annotation depot\/osb-api-version\): Status: 412/);
    assert.ok(
      catalogOffers(fake).every((v) => v === '2.14'),
      `offered: ${catalogOffers(fake).join(', ')}`,
    );
  });
});
