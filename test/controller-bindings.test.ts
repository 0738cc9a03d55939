/**
 * ServiceBinding handling, black box (bind, the Secret, unbind, orphan mitigation): a real
 * kube-apiserver, a real Depot with the failure-injecting test offering behind a recording proxy, and the
 * controller as a child process. Each test works in its own namespace.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { KubeObject, Secret, ServiceBinding, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { bindingPath, osb, type TestDepot } from './helpers.js';
import {
  R,
  binding,
  brokerAuthSecret,
  condition,
  create,
  edit,
  ensureNamespace,
  instance,
  remove,
  secretValues,
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

const BROKER = 'depot';
const AUTH_NAMESPACE = 'depot-system';
const AUTH_SECRET = 'depot-broker-auth';
const API_VERSION = 'servicecatalog.k8s.io/v1beta1';
const FINALIZER = 'kubernetes-incubator/service-catalog';
const ABANDON = 'depot/abandon';
const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

/** What a bind of the test offering returns when its parameters carry no `credentials`. */
const DEFAULT_CREDENTIALS = {
  'special-key-1': 'special-value-1',
  'special-key-2': 'special-value-2',
  port: '5432',
  nested: '{"a":1}',
};
/** servicebinding.io keys the controller adds: the class's external name and the broker's name. */
const SERVICEBINDING_KEYS = { type: 'depot-test', provider: BROKER };

let api: KubeApi | undefined;
let depot: TestDepot | undefined;
let proxy: BrokerProxy | undefined;
let controller: ControllerProcess | undefined;

const kube = (): KubeApi => {
  assert.ok(api, 'kube-apiserver not started');
  return api;
};

// ---- small helpers ----

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64');

async function createSecret(
  namespace: string,
  name: string,
  data: Record<string, string>,
  metadata: Partial<KubeObject['metadata']> = {},
): Promise<Secret> {
  return kube().client.create<Secret>(R.Secret, {
    metadata: { name, namespace, ...metadata },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  });
}

const findSecret = (namespace: string, name: string) => kube().client.find<Secret>(R.Secret, name, namespace);
const getBinding = (namespace: string, name: string) =>
  kube().client.get<ServiceBinding>(R.ServiceBinding, name, namespace);
const getInstance = (namespace: string, name: string) =>
  kube().client.get<ServiceInstance>(R.ServiceInstance, name, namespace);

/** Creates an instance of `depot-test` with the given plan. */
async function createInstance(namespace: string, name: string, plan: string): Promise<ServiceInstance> {
  await ensureNamespace(kube(), namespace);
  return create(
    kube(),
    R.ServiceInstance,
    instance(name, namespace, { clusterServiceClassExternalName: 'depot-test', clusterServicePlanExternalName: plan }),
  );
}

async function readyInstance(namespace: string, name: string, plan = 'ok'): Promise<ServiceInstance> {
  await createInstance(namespace, name, plan);
  return waitForReason<ServiceInstance>(kube(), R.ServiceInstance, name, namespace, 'ProvisionedSuccessfully');
}

async function createBinding(
  namespace: string,
  name: string,
  spec: Partial<ServiceBinding['spec']> & { instanceRef: { name: string } },
): Promise<ServiceBinding> {
  await ensureNamespace(kube(), namespace);
  return create(kube(), R.ServiceBinding, binding(name, namespace, spec));
}

const waitBinding = (namespace: string, name: string, reason: string, type = 'Ready', timeoutMs = 20_000) =>
  waitForReason<ServiceBinding>(kube(), R.ServiceBinding, name, namespace, reason, type, timeoutMs);

/** The OSB id of an instance, as the controller sends it. */
const instanceIdOf = (object: ServiceInstance): string => object.spec.externalID || object.metadata.uid!;

/** Requests the proxy saw for one binding id (bind, unbind, fetch, last_operation). */
function callsFor(bindingId: string, method?: string): RecordedRequest[] {
  assert.ok(proxy);
  return proxy.requests.filter(
    (r) => r.url.includes(`/service_bindings/${bindingId}`) && (!method || r.method === method),
  );
}
/** PUT / DELETE of the binding itself (not last_operation polls). */
const binds = (bindingId: string) => callsFor(bindingId, 'PUT');
const unbinds = (bindingId: string) => callsFor(bindingId, 'DELETE');

/** Depot's row for a binding id: its state, or undefined when it never got one. */
async function depotBindingState(bindingId: string): Promise<string | undefined> {
  assert.ok(depot);
  const { rows } = await depot.depot.pool.query<{ state: string }>('select state from service_bindings where id = $1', [
    bindingId,
  ]);
  return rows[0]?.state;
}

/** sha256 hex of the JSON with keys sorted at every level (Go's json.Marshal of a map). */
function goChecksum(value: unknown): string {
  const canonical = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
    if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      return `{${Object.keys(o)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
        .join(',')}}`;
    }
    return JSON.stringify(v);
  };
  return createHash('sha256').update(canonical(value)).digest('hex');
}

/** Asserts a condition is present with the given status and reason. */
function assertCondition(
  object: { status?: { conditions?: import('../catalog-controller/api/v1beta1.js').Condition[] } },
  type: string,
  status: string,
  reason: string,
): void {
  const found = condition(object, type);
  assert.ok(found, `no ${type} condition in ${JSON.stringify(object.status)}`);
  assert.equal(found.status, status, `${type} status: ${JSON.stringify(found)}`);
  assert.equal(found.reason, reason, `${type} reason: ${JSON.stringify(found)}`);
}

/** The checks of a bound binding and its Secret that every success shares. */
async function assertBound(
  namespace: string,
  name: string,
  secretName: string,
  expected: Record<string, string>,
): Promise<{ bound: ServiceBinding; secret: Secret }> {
  const bound = await waitBinding(namespace, name, 'InjectedBindResult');
  assertCondition(bound, 'Ready', 'True', 'InjectedBindResult');
  assert.equal(condition(bound, 'Failed'), undefined);
  assert.equal(bound.status?.lastConditionState, 'Ready');
  assert.deepEqual(bound.status?.binding, { name: secretName });
  assert.equal(bound.status?.unbindStatus, 'Required');
  assert.equal(bound.status?.currentOperation, undefined);
  assert.equal(bound.status?.reconciledGeneration, bound.metadata.generation);
  assert.equal(bound.spec.externalID, bound.metadata.uid, 'externalID defaults to the binding uid');
  assert.equal(bound.spec.secretName, secretName);
  assert.ok(bound.metadata.finalizers?.includes(FINALIZER));

  const secret = await findSecret(namespace, secretName);
  assert.ok(secret, `Secret ${namespace}/${secretName} missing`);
  assert.deepEqual(secret.metadata.ownerReferences, [
    {
      apiVersion: API_VERSION,
      kind: 'ServiceBinding',
      name,
      uid: bound.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  assert.equal(secret.type, 'servicebinding.io/depot-test');
  assert.deepEqual(secretValues(secret), expected);
  assert.equal(await depotBindingState(bound.metadata.uid!), 'bound');
  return { bound, secret };
}

// ---- setup ----

describe('catalog controller: ServiceBindings', () => {
  before(async () => {
    api = await startKubeApi();
    depot = await startTestBroker('controller_bindings');
    proxy = await startBrokerProxy(depot);
    await brokerAuthSecret(api, AUTH_NAMESPACE, AUTH_SECRET);
    await create(api, R.ClusterServiceBroker, {
      metadata: { name: BROKER },
      spec: { url: proxy.url, authInfo: { basic: { secretRef: { namespace: AUTH_NAMESPACE, name: AUTH_SECRET } } } },
    } as KubeObject);
    controller = await startController(api);
    await waitForReason(api, R.ClusterServiceBroker, BROKER, undefined, 'FetchedCatalog');
  });

  after(async () => {
    const failures: unknown[] = [];
    for (const step of [() => controller?.stop(), () => proxy?.close(), () => depot?.close(), () => api?.stop()]) {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length) throw failures[0];
  });

  // ---- E1 ----

  it('binds into a Secret named after it: owner, servicebinding.io type/provider, strings raw, rest JSON', async () => {
    const ns = 'bind-default';
    const db = await readyInstance(ns, 'db');
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    assert.equal(created.spec.secretName, undefined);

    const { bound } = await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    // The broker was asked with the instance's and the binding's ids, for this namespace.
    const put = binds(bound.metadata.uid!)[0];
    assert.ok(put, 'no bind request reached the broker');
    assert.ok(put.url.startsWith(bindingPath(instanceIdOf(db), bound.metadata.uid!)), put.url);
    const namespace = await kube().client.get<KubeObject>(R.Namespace, ns);
    const body = put.body as {
      service_id: string;
      plan_id: string;
      bind_resource: { app_guid: string };
      context: Record<string, unknown>;
      parameters?: unknown;
    };
    assert.equal(body.service_id, '0e570000-7e57-4000-8000-000000000000');
    assert.equal(body.plan_id, '0e570000-7e57-4000-8000-000000000001');
    assert.equal(body.bind_resource.app_guid, namespace.metadata.uid);
    assert.deepEqual(body.context, {
      platform: 'kubernetes',
      namespace: ns,
      clusterid: 'test-cluster',
      instance_name: 'db',
    });
    assert.equal(body.parameters, undefined, 'no parameters: the field is omitted');
    assert.equal(bound.status?.externalProperties?.parameters, undefined);
  });

  it('binds into a custom spec.secretName and writes no Secret under the binding name', async () => {
    const ns = 'bind-custom';
    await readyInstance(ns, 'db');
    await createBinding(ns, 'app', { instanceRef: { name: 'db' }, secretName: 'app-credentials' });
    await assertBound(ns, 'app', 'app-credentials', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    assert.equal(await findSecret(ns, 'app'), undefined);
  });

  // ---- E2 ----

  it('waits for a missing instance (ReferencesNonexistentInstance), then binds once it exists', async () => {
    const ns = 'bind-no-instance';
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const waiting = await waitBinding(ns, 'app', 'ReferencesNonexistentInstance');
    assertCondition(waiting, 'Ready', 'False', 'ReferencesNonexistentInstance');
    assert.equal(condition(waiting, 'Failed'), undefined, 'a missing instance is not terminal');
    assert.equal(waiting.status?.lastConditionState, 'ReferencesNonexistentInstance');
    assert.equal(await findSecret(ns, 'app'), undefined);
    assert.equal(callsFor(created.metadata.uid!).length, 0);

    await createInstance(ns, 'db', 'ok');
    await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
  });

  it('waits for an instance that is not ready yet (ErrorInstanceNotReady), then binds once it is', async () => {
    const ns = 'bind-slow-instance';
    await createInstance(ns, 'db', 'slow'); // provisions in 3 s
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const waiting = await waitBinding(ns, 'app', 'ErrorInstanceNotReady');
    assertCondition(waiting, 'Ready', 'False', 'ErrorInstanceNotReady');
    assert.equal(condition(waiting, 'Failed'), undefined);
    assert.notEqual(
      condition(await getInstance(ns, 'db'), 'Ready')?.status,
      'True',
      'the instance was still provisioning',
    );
    assert.equal(binds(created.metadata.uid!).length, 0, 'no bind before the instance is ready');

    await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    assertCondition(await getInstance(ns, 'db'), 'Ready', 'True', 'ProvisionedSuccessfully');
  });

  // ---- E3 ----

  it('refuses a non-bindable plan for good (Failed ErrorNonbindableServiceClass), not asking the broker', async () => {
    const ns = 'bind-not-bindable';
    await readyInstance(ns, 'db', 'not-bindable');
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const failed = await waitBinding(ns, 'app', 'ErrorNonbindableServiceClass', 'Failed');
    assertCondition(failed, 'Failed', 'True', 'ErrorNonbindableServiceClass');
    assertCondition(failed, 'Ready', 'False', 'ErrorNonbindableServiceClass');
    assert.match(condition(failed, 'Failed')!.message, /non-bindable/);
    // Terminal: still the same a while later, and nothing reached the broker.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const later = await getBinding(ns, 'app');
    assertCondition(later, 'Failed', 'True', 'ErrorNonbindableServiceClass');
    assert.equal(callsFor(created.metadata.uid!).length, 0, 'no request about this binding reached the broker');
    assert.equal(await depotBindingState(created.metadata.uid!), undefined);
    assert.equal(await findSecret(ns, 'app'), undefined);
    // And it can be deleted.
    await remove(kube(), R.ServiceBinding, 'app', ns);
    await waitForGone(kube(), R.ServiceBinding, 'app', ns, 10_000);
  });

  // ---- E4 ----

  it('sends plain parameters to the broker and records them in externalProperties', async () => {
    const ns = 'bind-params-plain';
    await readyInstance(ns, 'db');
    const parameters = { credentials: { token: 'abc', retries: 3 }, tier: 'gold' };
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' }, parameters });
    // The test offering returns `parameters.credentials` as the credentials: they reached the broker.
    const { bound } = await assertBound(ns, 'app', 'app', { token: 'abc', retries: '3', ...SERVICEBINDING_KEYS });
    assert.deepEqual((binds(created.metadata.uid!)[0]?.body as { parameters?: unknown }).parameters, parameters);
    assert.deepEqual(bound.status?.externalProperties?.parameters, parameters);
    assert.equal(bound.status?.externalProperties?.parameterChecksum, goChecksum(parameters));
    assert.equal(bound.status?.inProgressProperties, undefined);
  });

  it('merges parametersFrom a Secret with plain parameters, and shows the Secret values as <redacted>', async () => {
    const ns = 'bind-params-from';
    await readyInstance(ns, 'db');
    await createSecret(ns, 'bind-params', {
      params: JSON.stringify({ credentials: { username: 'alice', password: 's3cret-pw', port: 6543 } }),
    });
    const created = await createBinding(ns, 'app', {
      instanceRef: { name: 'db' },
      parameters: { tier: 'gold' },
      parametersFrom: [{ secretKeyRef: { name: 'bind-params', key: 'params' } }],
    });
    const { bound } = await assertBound(ns, 'app', 'app', {
      username: 'alice',
      password: 's3cret-pw',
      port: '6543',
      ...SERVICEBINDING_KEYS,
    });
    const merged = { credentials: { username: 'alice', password: 's3cret-pw', port: 6543 }, tier: 'gold' };
    assert.deepEqual((binds(created.metadata.uid!)[0]?.body as { parameters?: unknown }).parameters, merged);
    assert.deepEqual(bound.status?.externalProperties?.parameters, { credentials: '<redacted>', tier: 'gold' });
    assert.match(bound.status?.externalProperties?.parameterChecksum ?? '', /^[0-9a-f]{64}$/);
    assert.equal(
      bound.status?.externalProperties?.parameterChecksum,
      goChecksum(merged),
      'checksum of the unredacted parameters',
    );
    assert.ok(!JSON.stringify(bound.status).includes('s3cret-pw'), 'a Secret-sourced value leaked into status');
  });

  it('bad parametersFrom: ErrorWithParameters, no bind; retried once the Secret appears', async () => {
    const ns = 'bind-params-bad';
    await readyInstance(ns, 'db');
    await createSecret(ns, 'params', { good: '{"tier":"gold"}', notjson: 'tier=gold', array: '[1,2]' });
    const cases: Array<{ name: string; spec: Partial<ServiceBinding['spec']>; message: RegExp }> = [
      {
        name: 'missing-secret',
        spec: { parametersFrom: [{ secretKeyRef: { name: 'later', key: 'p' } }] },
        message: /later.*not found/,
      },
      {
        name: 'missing-key',
        spec: { parametersFrom: [{ secretKeyRef: { name: 'params', key: 'absent' } }] },
        message: /no key "absent"/,
      },
      {
        name: 'not-json',
        spec: { parametersFrom: [{ secretKeyRef: { name: 'params', key: 'notjson' } }] },
        message: /not JSON/,
      },
      {
        name: 'not-object',
        spec: { parametersFrom: [{ secretKeyRef: { name: 'params', key: 'array' } }] },
        message: /not a JSON object/,
      },
      {
        name: 'duplicate',
        spec: { parameters: { tier: 'silver' }, parametersFrom: [{ secretKeyRef: { name: 'params', key: 'good' } }] },
        message: /duplicate entry for parameter "tier"/,
      },
    ];
    const uids: Record<string, string> = {};
    for (const c of cases)
      uids[c.name] = (await createBinding(ns, c.name, { instanceRef: { name: 'db' }, ...c.spec })).metadata.uid!;
    for (const c of cases) {
      const blocked = await waitBinding(ns, c.name, 'ErrorWithParameters');
      assertCondition(blocked, 'Ready', 'False', 'ErrorWithParameters');
      assert.equal(condition(blocked, 'Failed'), undefined, `${c.name}: retried, not terminal`);
      assert.match(condition(blocked, 'Ready')!.message, c.message, c.name);
      assert.equal(binds(uids[c.name]!).length, 0, `${c.name}: no bind request`);
      assert.equal(await findSecret(ns, c.name), undefined, `${c.name}: no Secret`);
    }
    // The missing Secret created: the binding is retried and goes through with its parameters.
    await createSecret(ns, 'later', { p: JSON.stringify({ credentials: { late: 'yes' } }) });
    await assertBound(ns, 'missing-secret', 'missing-secret', { late: 'yes', ...SERVICEBINDING_KEYS });
  });

  // ---- E5 ----

  it('secretTransforms in order: addKey (string, bytes, JSONPath), renameKey, addKeysFrom, removeKey', async () => {
    const ns = 'bind-transforms';
    await readyInstance(ns, 'db');
    await createSecret(ns, 'extra', { 'extra-1': 'e1', greeting: 'overwritten' });
    const bytes = Buffer.from([0xff, 0x00, 0x01, 0x80]);
    await createBinding(ns, 'app', {
      instanceRef: { name: 'db' },
      secretTransforms: [
        { addKey: { key: 'greeting', stringValue: 'hello' } },
        { addKey: { key: 'blob', value: bytes.toString('base64') } },
        { addKey: { key: 'copy', jsonPathExpression: '{.special-key-1}' } },
        { addKey: { key: 'nested-a', jsonPathExpression: '{.nested.a}' } },
        { renameKey: { from: 'special-key-2', to: 'renamed' } },
        { renameKey: { from: 'absent', to: 'never' } },
        { addKeysFrom: { secretRef: { name: 'extra' } } },
        { removeKey: { key: 'nested' } },
      ],
    });
    const bound = await waitBinding(ns, 'app', 'InjectedBindResult');
    assertCondition(bound, 'Ready', 'True', 'InjectedBindResult');
    const secret = await findSecret(ns, 'app');
    assert.ok(secret?.data);
    assert.equal(secret.data.blob, bytes.toString('base64'), 'addKey value is stored as the given bytes');
    const { blob: _blob, ...text } = secretValues(secret);
    assert.deepEqual(text, {
      'special-key-1': 'special-value-1',
      renamed: 'special-value-2',
      port: '5432',
      greeting: 'overwritten',
      copy: 'special-value-1',
      'nested-a': '1',
      'extra-1': 'e1',
      ...SERVICEBINDING_KEYS,
    });
  });

  it('refuses addKeysFrom a Secret in another namespace (ErrorInjectingBindResult) and never copies it', async () => {
    const ns = 'bind-transforms-foreign';
    await readyInstance(ns, 'db');
    await ensureNamespace(kube(), 'bind-foreign-other');
    await createSecret('bind-foreign-other', 'foreign', { stolen: 'top-secret-value' });
    await createBinding(ns, 'app', {
      instanceRef: { name: 'db' },
      secretTransforms: [{ addKeysFrom: { secretRef: { namespace: 'bind-foreign-other', name: 'foreign' } } }],
    });
    const blocked = await waitBinding(ns, 'app', 'ErrorInjectingBindResult');
    assertCondition(blocked, 'Ready', 'False', 'ErrorInjectingBindResult');
    assert.match(condition(blocked, 'Ready')!.message, /bind-foreign-other/);
    // Still refused on the retries.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const later = await getBinding(ns, 'app');
    assertCondition(later, 'Ready', 'False', 'ErrorInjectingBindResult');
    const { items } = await kube().client.list<Secret>(R.Secret, { namespace: ns });
    for (const s of items)
      assert.ok(!('stolen' in (s.data ?? {})), `Secret ${s.metadata.name} got the other namespace's key`);
    assert.equal(await findSecret(ns, 'app'), undefined);
    assert.ok(!JSON.stringify(later).includes('top-secret-value'));
  });

  // ---- E6 ----

  it('never overwrites a Secret it does not own (ErrorInjectingBindResult), and binds once it is gone', async () => {
    const ns = 'bind-foreign-secret';
    await readyInstance(ns, 'db');
    const plain = await createSecret(ns, 'app', { mine: 'do-not-touch' });
    // One that looks like ours (our label) but is owned by another (older) binding.
    const lookalike = await createSecret(
      ns,
      'other',
      { mine: 'also-not-yours' },
      {
        labels: { [MANAGED_BY_LABEL]: 'depot-catalog-controller' },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: 'ServiceBinding',
            name: 'other',
            uid: '00000000-0000-4000-8000-000000000000',
            controller: true,
          },
        ],
      },
    );
    await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    await createBinding(ns, 'other', { instanceRef: { name: 'db' } });
    for (const name of ['app', 'other']) {
      const blocked = await waitBinding(ns, name, 'ErrorInjectingBindResult');
      assertCondition(blocked, 'Ready', 'False', 'ErrorInjectingBindResult');
      assert.match(condition(blocked, 'Ready')!.message, /not owned by ServiceBinding/);
    }
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a few retries
    for (const before of [plain, lookalike]) {
      const now = await findSecret(ns, before.metadata.name);
      assert.ok(now);
      assert.deepEqual(now.data, before.data, `${before.metadata.name}: data changed`);
      assert.equal(now.metadata.resourceVersion, before.metadata.resourceVersion, `${before.metadata.name}: written`);
      assert.deepEqual(now.metadata.ownerReferences, before.metadata.ownerReferences);
    }
    // The owner removes their Secret: the retry writes ours.
    await remove(kube(), R.Secret, 'app', ns);
    await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    // Deleting the binding that never got its Secret leaves the other owner's Secret alone.
    await remove(kube(), R.ServiceBinding, 'other', ns);
    await waitForGone(kube(), R.ServiceBinding, 'other', ns);
    const kept = await findSecret(ns, 'other');
    assert.ok(kept, 'a Secret the binding does not own was deleted with it');
    assert.deepEqual(kept.data, lookalike.data);
  });

  it('a Secret the API refuses: ErrorInjectingBindResult; an invalid secretName is refused first', async () => {
    const ns = 'bind-invalid-secret';
    await readyInstance(ns, 'db');
    const badKey = await createBinding(ns, 'bad-key', {
      instanceRef: { name: 'db' },
      parameters: { credentials: { 'not a key': 'x', fine: 'y' } },
    });
    const badName = await createBinding(ns, 'bad-name', { instanceRef: { name: 'db' }, secretName: 'Not_A_DNS_Name' });
    const keyBlocked = await waitBinding(ns, 'bad-key', 'ErrorInjectingBindResult', 'Ready', 10_000);
    assertCondition(keyBlocked, 'Ready', 'False', 'ErrorInjectingBindResult');
    assert.match(condition(keyBlocked, 'Ready')!.message, /not a key/);
    const nameBlocked = await waitBinding(ns, 'bad-name', 'InvalidSpec', 'Failed', 10_000);
    assertCondition(nameBlocked, 'Failed', 'True', 'InvalidSpec');
    assert.match(condition(nameBlocked, 'Failed')!.message, /Not_A_DNS_Name/);
    assert.equal(binds(badName.metadata.uid!).length, 0, 'no bind for a spec the API server would refuse');
    assert.equal(await depotBindingState(badName.metadata.uid!), undefined);
    assert.deepEqual(
      (await kube().client.list<Secret>(R.Secret, { namespace: ns })).items.map((x) => x.metadata.name),
      [],
    );
    // The broker did bind: deleting the binding unbinds it there.
    await remove(kube(), R.ServiceBinding, 'bad-key', ns);
    await waitForGone(kube(), R.ServiceBinding, 'bad-key', ns);
    assert.equal(await depotBindingState(badKey.metadata.uid!), 'deleted');
  });

  // ---- E7 ----

  it('writes a deleted binding Secret again, with the same owner and credentials', async () => {
    const ns = 'bind-secret-deleted';
    await readyInstance(ns, 'db');
    await createBinding(ns, 'app', {
      instanceRef: { name: 'db' },
      parameters: { credentials: { token: 'first-token' } },
    });
    const { secret: first } = await assertBound(ns, 'app', 'app', { token: 'first-token', ...SERVICEBINDING_KEYS });
    await remove(kube(), R.Secret, 'app', ns);
    const again = await waitFor(
      async () => {
        const s = await findSecret(ns, 'app');
        return s && s.metadata.uid !== first.metadata.uid ? s : undefined;
      },
      15_000,
      'the Secret to be written again',
    );
    assert.deepEqual(again.data, first.data);
    assert.equal(again.type, first.type);
    assert.deepEqual(again.metadata.ownerReferences, first.metadata.ownerReferences);
    const bound = await getBinding(ns, 'app');
    assertCondition(bound, 'Ready', 'True', 'InjectedBindResult');
  });

  // ---- E8 ----

  it('bind 400: Failed ServiceBindingReturnedFailure, no Secret, no unbind, deletes at once', async () => {
    const ns = 'bind-fail400';
    await readyInstance(ns, 'db', 'bind-fail400');
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const failed = await waitBinding(ns, 'app', 'ServiceBindingReturnedFailure', 'Failed');
    assertCondition(failed, 'Failed', 'True', 'ServiceBindingReturnedFailure');
    assertCondition(failed, 'Ready', 'False', 'BindCallFailed');
    assert.match(condition(failed, 'Failed')!.message, /400/);
    assert.equal(failed.status?.unbindStatus, 'NotRequired');
    assert.equal(failed.status?.orphanMitigationInProgress, undefined);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const uid = created.metadata.uid!;
    assert.equal(binds(uid).length, 1, 'terminal: the bind is not retried');
    assert.equal(unbinds(uid).length, 0, 'no orphan mitigation after a 400');
    assert.equal(await findSecret(ns, 'app'), undefined);
    assert.equal(await depotBindingState(uid), undefined);
    await remove(kube(), R.ServiceBinding, 'app', ns);
    await waitForGone(kube(), R.ServiceBinding, 'app', ns, 10_000);
    assert.equal(unbinds(uid).length, 0, 'nothing to unbind');
  });

  it('bind 500: Failed ServiceBindingReturnedFailure, then orphan mitigation (an unbind) succeeds', async () => {
    const ns = 'bind-fail500';
    await readyInstance(ns, 'db', 'bind-fail500');
    const created = await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const mitigated = await waitBinding(ns, 'app', 'OrphanMitigationSuccessful');
    assertCondition(mitigated, 'Ready', 'False', 'OrphanMitigationSuccessful');
    assertCondition(mitigated, 'Failed', 'True', 'ServiceBindingReturnedFailure');
    assert.match(condition(mitigated, 'Failed')!.message, /500/);
    assert.equal(mitigated.status?.unbindStatus, 'Succeeded');
    assert.equal(mitigated.status?.orphanMitigationInProgress, undefined);
    const uid = created.metadata.uid!;
    assert.ok(unbinds(uid).length >= 1, 'orphan mitigation sent an unbind');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(binds(uid).length, 1, 'terminal: the bind is not retried');
    assert.equal(await findSecret(ns, 'app'), undefined);
    assertCondition(await getBinding(ns, 'app'), 'Failed', 'True', 'ServiceBindingReturnedFailure');
  });

  // ---- E9 ----

  it('delete: the Secret goes, the broker unbinds, the binding goes', async () => {
    const ns = 'unbind-ok';
    const db = await readyInstance(ns, 'db');
    await createBinding(ns, 'app', { instanceRef: { name: 'db' }, secretName: 'creds' });
    const { bound } = await assertBound(ns, 'app', 'creds', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    const uid = bound.metadata.uid!;
    assert.equal((await osb(depot!).get(bindingPath(instanceIdOf(db), uid))).status, 200);

    await remove(kube(), R.ServiceBinding, 'app', ns);
    await waitForGone(kube(), R.ServiceBinding, 'app', ns);
    assert.equal(await findSecret(ns, 'creds'), undefined);
    assert.ok(unbinds(uid).length >= 1, 'the unbind reached the broker');
    const unbind = unbinds(uid)[0]!;
    assert.match(unbind.url, /service_id=0e570000-7e57-4000-8000-000000000000/);
    assert.match(unbind.url, /plan_id=0e570000-7e57-4000-8000-000000000001/);
    assert.equal(await depotBindingState(uid), 'deleted');
    assert.equal((await osb(depot!).get(bindingPath(instanceIdOf(db), uid))).status, 404);
  });

  it('an unbind failing 3 times: retried (UnbindCallFailed, Secret already gone), then the delete ends', async () => {
    const ns = 'unbind-retry';
    await readyInstance(ns, 'db', 'unbind-fail500-3x');
    await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const { bound } = await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    const uid = bound.metadata.uid!;

    await remove(kube(), R.ServiceBinding, 'app', ns);
    const retrying = await waitForReason<ServiceBinding>(
      kube(),
      R.ServiceBinding,
      'app',
      ns,
      'UnbindCallFailed',
      'Ready',
      10_000,
    );
    assert.equal(condition(retrying, 'Ready')?.status, 'Unknown');
    assert.ok(retrying.metadata.deletionTimestamp);
    assert.equal(await findSecret(ns, 'app'), undefined, 'the Secret goes before the unbind');
    await waitForGone(kube(), R.ServiceBinding, 'app', ns, 20_000);
    assert.ok(unbinds(uid).length >= 4, `expected 3 failed unbinds and a successful one, saw ${unbinds(uid).length}`);
    assert.equal(await depotBindingState(uid), 'deleted');
  });

  it('spaces unbind retries by the retry backoff instead of hammering the broker', async () => {
    const ns = 'unbind-backoff';
    await readyInstance(ns, 'db', 'unbind-fail500-3x');
    await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const { bound } = await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    const uid = bound.metadata.uid!;
    const times: number[] = [];
    const previous = proxy!.intercept;
    proxy!.intercept = (r) => {
      if (r.method === 'DELETE' && r.url.includes(`/service_bindings/${uid}`)) times.push(Date.now());
      return previous?.(r);
    };
    try {
      await remove(kube(), R.ServiceBinding, 'app', ns);
      await waitForGone(kube(), R.ServiceBinding, 'app', ns, 20_000);
    } finally {
      proxy!.intercept = previous;
    }
    assert.ok(times.length >= 4);
    // RETRY_BASE_DELAY_MS is 100: three retries back off 100 + 200 + 400 ms; allow for one early
    // retry from a genuine event (the Secret's deletion), which still leaves well over 300 ms.
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(
      times[3]! - times[0]! >= 300,
      `3 retries within ${times[3]! - times[0]!} ms (gaps: ${gaps.join(', ')} ms)`,
    );
  });

  it('a binding stuck unbinding (instance gone) is released by depot/abandon, without an unbind', async () => {
    const ns = 'unbind-abandon';
    await readyInstance(ns, 'db');
    await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const { bound } = await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });
    const uid = bound.metadata.uid!;
    // The instance disappears from under the binding (its finalizer removed by hand).
    await remove(kube(), R.ServiceInstance, 'db', ns);
    await edit<ServiceInstance>(kube(), R.ServiceInstance, 'db', ns, (i) => {
      i.metadata.finalizers = [];
    });
    await waitForGone(kube(), R.ServiceInstance, 'db', ns);

    await remove(kube(), R.ServiceBinding, 'app', ns);
    const stuck = await waitForReason<ServiceBinding>(
      kube(),
      R.ServiceBinding,
      'app',
      ns,
      'ReferencesNonexistentInstance',
      'Ready',
      10_000,
    );
    assert.equal(condition(stuck, 'Ready')?.status, 'Unknown');
    assert.match(condition(stuck, 'Ready')!.message, /depot\/abandon/);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(await kube().client.find(R.ServiceBinding, 'app', ns), 'stuck until abandoned');
    assert.equal(await findSecret(ns, 'app'), undefined, 'the Secret is removed anyway');

    await edit<ServiceBinding>(kube(), R.ServiceBinding, 'app', ns, (b) => {
      b.metadata.annotations = { ...(b.metadata.annotations ?? {}), [ABANDON]: 'true' };
    });
    await waitForGone(kube(), R.ServiceBinding, 'app', ns, 10_000);
    assert.equal(unbinds(uid).length, 0, 'an abandoned binding is not unbound');
    assert.equal(await depotBindingState(uid), 'bound');
  });

  // ---- E10 / D2 ----

  it('an instance is not deprovisioned while it has bindings (DeprovisionBlockedByExistingCredentials)', async () => {
    const ns = 'unbind-blocks-instance';
    const db = await readyInstance(ns, 'db');
    await createBinding(ns, 'app', { instanceRef: { name: 'db' } });
    const { bound } = await assertBound(ns, 'app', 'app', { ...DEFAULT_CREDENTIALS, ...SERVICEBINDING_KEYS });

    await remove(kube(), R.ServiceInstance, 'db', ns);
    const blocked = await waitForReason<ServiceInstance>(
      kube(),
      R.ServiceInstance,
      'db',
      ns,
      'DeprovisionBlockedByExistingCredentials',
    );
    assert.equal(condition(blocked, 'Ready')?.status, 'False');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(await kube().client.find(R.ServiceInstance, 'db', ns), 'the instance waits for its bindings');
    assert.ok(
      !proxy!.requests.some(
        (r) => r.method === 'DELETE' && r.url.startsWith(`/v2/service_instances/${instanceIdOf(db)}?`),
      ),
      'no deprovision while bound',
    );
    // The binding still works meanwhile.
    assertCondition(await getBinding(ns, 'app'), 'Ready', 'True', 'InjectedBindResult');
    assert.ok(await findSecret(ns, 'app'));

    // A new binding for an instance being deleted does not bind.
    const late = await createBinding(ns, 'late', { instanceRef: { name: 'db' } });
    const notReady = await waitBinding(ns, 'late', 'ErrorInstanceNotReady');
    assert.match(condition(notReady, 'Ready')!.message, /being deleted/);
    assert.equal(binds(late.metadata.uid!).length, 0);

    await remove(kube(), R.ServiceBinding, 'late', ns);
    await remove(kube(), R.ServiceBinding, 'app', ns);
    await waitForGone(kube(), R.ServiceBinding, 'app', ns);
    await waitForGone(kube(), R.ServiceBinding, 'late', ns);
    await waitForGone(kube(), R.ServiceInstance, 'db', ns, 20_000);
    assert.equal(await depotBindingState(bound.metadata.uid!), 'deleted');
    assert.ok(
      proxy!.requests.some(
        (r) => r.method === 'DELETE' && r.url.startsWith(`/v2/service_instances/${instanceIdOf(db)}?`),
      ),
      'deprovisioned at last',
    );
  });
});
