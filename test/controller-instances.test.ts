/**
 * ServiceInstance against a real kube-apiserver, a real Depot with the failure-injecting test
 * offering, and the controller as a process: provision (success, failures, orphan mitigation),
 * update and delete, as the original Service Catalog's controller handled them. A recording proxy
 * sits between the controller and Depot so the tests can see which OSB calls were made (and, for
 * a few rows, answer in ways Depot never does).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Watch } from '@kubernetes/client-node';
import type { ServiceBroker, ServiceInstance, ServicePlan } from '../catalog-controller/api/v1beta1.js';
import { collectionPath } from '../catalog-controller/kube/resources.js';
import type { CatalogResponse } from '../osb/index.js';
import { USERNAME, PASSWORD, osb, type TestDepot } from './helpers.js';
import {
  R,
  brokerAuthSecret,
  condition,
  create,
  ensureNamespace,
  instance,
  remove,
  startBrokerProxy,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForGone,
  waitForReason,
  edit,
  type BrokerProxy,
  type ControllerProcess,
  type KubeApi,
  type RecordedRequest,
} from './kube-helpers.js';

const NS = 'instances';
const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';

let api: KubeApi;
let depot: TestDepot;
let proxy: BrokerProxy;
let controller: ControllerProcess;

/** OSB calls the controller made for one instance id. */
function calls(id: string, method?: string): RecordedRequest[] {
  return proxy.requests.filter(
    (r) =>
      r.url.startsWith(`/v2/service_instances/${id}`) &&
      !r.url.includes('/service_bindings/') &&
      (!method || r.method === method),
  );
}

async function uidOf(name: string): Promise<string> {
  const object = await api.client.get<ServiceInstance>(R.ServiceInstance, name, NS);
  return object.spec.externalID ?? object.metadata.uid!;
}

function testInstance(
  name: string,
  plan: string,
  extra: Partial<ServiceInstance['spec']> = {},
  metadata = {},
): ServiceInstance {
  return instance(
    name,
    NS,
    { clusterServiceClassExternalName: 'depot-test', clusterServicePlanExternalName: plan, ...extra },
    metadata,
  );
}

async function getInstance(name: string): Promise<ServiceInstance> {
  return api.client.get<ServiceInstance>(R.ServiceInstance, name, NS);
}

before(async () => {
  api = await startKubeApi();
  depot = await startTestBroker('ctrl-instances');
  proxy = await startBrokerProxy(depot);
  await ensureNamespace(api, NS);
  await brokerAuthSecret(api, NS, 'depot-auth');
  await create(api, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: proxy.url, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
  });
  controller = await startController(api, { OSB_REQUEST_TIMEOUT_MS: '1500' });
  await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
});

after(async () => {
  await controller?.stop();
  await proxy?.close();
  await depot?.close();
  await api?.stop();
});

describe('provision', () => {
  test('by external names: Ready with the status fields the original wrote', async () => {
    await create(api, R.ServiceInstance, testInstance('by-names', 'ok'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'by-names',
      NS,
      'ProvisionedSuccessfully',
    );
    const s = ready.status!;
    assert.equal(condition(ready, 'Ready')?.status, 'True');
    assert.equal(condition(ready, 'Ready')?.message, 'The instance was provisioned successfully');
    assert.equal(s.lastConditionState, 'Ready');
    assert.equal(s.provisionStatus, 'Provisioned');
    assert.equal(s.deprovisionStatus, 'Required');
    assert.equal(s.observedGeneration, ready.metadata.generation);
    assert.equal(s.reconciledGeneration, ready.metadata.generation);
    assert.equal(s.currentOperation, undefined);
    assert.equal(s.asyncOpInProgress, undefined);
    assert.equal(s.userSpecifiedClassName, 'ClusterServiceClass/depot-test');
    assert.equal(s.userSpecifiedPlanName, 'ok');
    assert.equal(s.externalProperties?.clusterServicePlanExternalName, 'ok');
    assert.equal(s.externalProperties?.clusterServicePlanExternalID, '0e570000-7e57-4000-8000-000000000001');
    assert.deepEqual(ready.metadata.finalizers, ['kubernetes-incubator/service-catalog']);
    assert.equal(ready.spec.clusterServiceClassRef?.name, TEST_SERVICE_ID);
    assert.equal(ready.spec.clusterServicePlanRef?.name, '0e570000-7e57-4000-8000-000000000001');
    assert.equal(ready.spec.externalID, ready.metadata.uid);
    // Depot has it.
    const fetched = await osb(depot).get(`/v2/service_instances/${ready.spec.externalID}`);
    assert.equal(fetched.status, 200);
    assert.equal(fetched.body.plan_id, '0e570000-7e57-4000-8000-000000000001');
    const { stdout } = await api.kubectl('get', 'serviceinstances', '-n', NS, 'by-names');
    assert.match(stdout, /^NAME\s+CLASS\s+PLAN\s+STATUS\s+AGE/);
    assert.match(stdout, /by-names\s+ClusterServiceClass\/depot-test\s+ok\s+Ready\s+/);
  });

  test('by external ids and by Kubernetes names', async () => {
    await create(
      api,
      R.ServiceInstance,
      instance('by-ids', NS, {
        clusterServiceClassExternalID: TEST_SERVICE_ID,
        clusterServicePlanExternalID: '0e570000-7e57-4000-8000-000000000001',
      }),
    );
    await create(
      api,
      R.ServiceInstance,
      instance('by-k8s-names', NS, {
        clusterServiceClassName: TEST_SERVICE_ID,
        clusterServicePlanName: '0e570000-7e57-4000-8000-000000000001',
      }),
    );
    for (const name of ['by-ids', 'by-k8s-names']) {
      const ready = await waitForReason<ServiceInstance>(api, R.ServiceInstance, name, NS, 'ProvisionedSuccessfully');
      assert.equal(ready.spec.clusterServicePlanRef?.name, '0e570000-7e57-4000-8000-000000000001');
    }
  });

  test('the default plan is used when the class has exactly one; several plans need a name', async () => {
    await create(
      api,
      R.ServiceInstance,
      instance('default-plan', NS, { clusterServiceClassExternalName: 'depot-test-single' }),
    );
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'default-plan',
      NS,
      'ProvisionedSuccessfully',
    );
    assert.equal(ready.status?.externalProperties?.clusterServicePlanExternalName, 'default');
    await create(api, R.ServiceInstance, instance('no-plan', NS, { clusterServiceClassExternalName: 'depot-test' }));
    const blocked = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'no-plan',
      NS,
      'ReferencesNonexistentServicePlan',
    );
    assert.match(condition(blocked, 'Ready')!.message, /has \d+ plans; name one/);
    assert.equal(calls(blocked.metadata.uid!).length, 0);
  });

  test('a class that does not exist: ReferencesNonexistentServiceClass; deleted without a broker call', async () => {
    await create(
      api,
      R.ServiceInstance,
      instance('no-class', NS, {
        clusterServiceClassExternalName: 'no-such-class',
        clusterServicePlanExternalName: 'x',
      }),
    );
    const blocked = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'no-class',
      NS,
      'ReferencesNonexistentServiceClass',
    );
    assert.match(condition(blocked, 'Ready')!.message, /"no-such-class" or there is more than one \(found: 0\)/);
    await remove(api, R.ServiceInstance, 'no-class', NS);
    await waitForGone(api, R.ServiceInstance, 'no-class', NS);
    assert.equal(calls(blocked.metadata.uid!).length, 0);
  });

  test('a spec naming both a cluster and a namespaced class is refused in a condition', async () => {
    await create(
      api,
      R.ServiceInstance,
      instance('both-kinds', NS, { clusterServiceClassExternalName: 'depot-test', serviceClassExternalName: 'x' }),
    );
    const failed = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'both-kinds',
      NS,
      'InvalidSpec',
      'Failed',
    );
    assert.equal(condition(failed, 'Failed')?.status, 'True');
  });

  test('parameters and parametersFrom are merged, sent to the broker, and redacted in status', async () => {
    await api.client.create(R.Secret, {
      metadata: { name: 'params', namespace: NS },
      data: { json: Buffer.from(JSON.stringify({ password: 's3cret', size: 2 })).toString('base64') },
    } as never);
    await create(
      api,
      R.ServiceInstance,
      testInstance('with-params', 'ok', {
        parameters: { color: 'blue' },
        parametersFrom: [{ secretKeyRef: { name: 'params', key: 'json' } }],
      }),
    );
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'with-params',
      NS,
      'ProvisionedSuccessfully',
    );
    assert.deepEqual(ready.status?.externalProperties?.parameters, {
      color: 'blue',
      password: '<redacted>',
      size: '<redacted>',
    });
    assert.match(ready.status?.externalProperties?.parameterChecksum ?? '', /^[0-9a-f]{64}$/);
    const put = calls(ready.spec.externalID!, 'PUT')[0]!;
    assert.deepEqual((put.body as { parameters: unknown }).parameters, { color: 'blue', password: 's3cret', size: 2 });
  });

  for (const [name, secretKey, data, pattern] of [
    ['params-missing-secret', 'nope', undefined, /secret "instances\/nope" not found/],
    ['params-missing-key', 'other', { json: '{}' }, /has no key "other"/],
    ['params-not-json', 'json', { json: 'not json' }, /not JSON/],
    ['params-duplicate', 'json', { json: '{"color":"red"}' }, /duplicate entry for parameter "color"/],
  ] as const) {
    test(`parametersFrom problem (${name}): ErrorWithParameters, nothing sent`, async () => {
      const secretName = `${name}-secret`;
      if (data) {
        await api.client.create(R.Secret, {
          metadata: { name: secretName, namespace: NS },
          data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        } as never);
      }
      await create(
        api,
        R.ServiceInstance,
        testInstance(name, 'ok', {
          parameters: { color: 'blue' },
          parametersFrom: [{ secretKeyRef: { name: data ? secretName : 'nope', key: secretKey } }],
        }),
      );
      const blocked = await waitForReason<ServiceInstance>(api, R.ServiceInstance, name, NS, 'ErrorWithParameters');
      assert.match(condition(blocked, 'Ready')!.message, pattern);
      assert.equal(calls(await uidOf(name)).length, 0);
    });
  }

  test('originating identity (from spec.userInfo) and the kubernetes context reach the broker', async () => {
    const userInfo = { username: 'alice', uid: 'u-1', groups: ['devs'], extra: { team: ['db'] } };
    await create(api, R.ServiceInstance, testInstance('identity', 'ok', { userInfo }));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'identity',
      NS,
      'ProvisionedSuccessfully',
    );
    const put = calls(ready.spec.externalID!, 'PUT')[0]!;
    const header = String(put.headers['x-broker-api-originating-identity']);
    assert.match(header, /^kubernetes /);
    assert.deepEqual(JSON.parse(Buffer.from(header.slice('kubernetes '.length), 'base64').toString()), userInfo);
    const body = put.body as Record<string, unknown>;
    const ns = await api.client.get(R.Namespace, NS);
    assert.deepEqual(body.context, {
      platform: 'kubernetes',
      namespace: NS,
      clusterid: 'test-cluster',
      instance_name: 'identity',
    });
    assert.equal(body.organization_guid, 'test-cluster');
    assert.equal(body.space_guid, ns.metadata.uid);
    assert.equal(put.headers['x-broker-api-version'], '2.17');
    assert.equal(put.headers.authorization, `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`);
  });
});

describe('provision failures', () => {
  test('400: Failed ClusterServiceBrokerReturnedFailure, not retried, deleted without a DELETE', async () => {
    await create(api, R.ServiceInstance, testInstance('fail400', 'provision-fail400'));
    const failed = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'fail400',
      NS,
      'ClusterServiceBrokerReturnedFailure',
      'Failed',
    );
    assert.equal(condition(failed, 'Ready')?.reason, 'ProvisionCallFailed');
    assert.match(condition(failed, 'Ready')!.message, /Status: 400; Description: injected fault/);
    assert.equal(failed.status?.lastConditionState, 'Failed');
    assert.equal(failed.status?.deprovisionStatus, 'NotRequired');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const id = failed.spec.externalID!;
    assert.equal(calls(id, 'PUT').length, 1, 'a 400 is not retried');
    await remove(api, R.ServiceInstance, 'fail400', NS);
    await waitForGone(api, R.ServiceInstance, 'fail400', NS);
    assert.equal(calls(id, 'DELETE').length, 0);
  });

  test('500 three times: orphan mitigation after each, then Ready', async () => {
    await create(api, R.ServiceInstance, testInstance('fail500-3x', 'provision-fail500-3x'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'fail500-3x',
      NS,
      'ProvisionedSuccessfully',
      'Ready',
      30_000,
    );
    const id = ready.spec.externalID!;
    assert.equal(calls(id, 'PUT').length, 4);
    assert.ok(calls(id, 'DELETE').length >= 3, 'each 500 is followed by an orphan-mitigation DELETE');
    assert.equal(condition(ready, 'OrphanMitigation'), undefined);
  });

  test('a spec edit while a provision is being retried is taken up (newest generation wins)', async () => {
    await create(api, R.ServiceInstance, testInstance('edit-while-retrying', 'provision-fail500'));
    await waitForReason(
      api,
      R.ServiceInstance,
      'edit-while-retrying',
      NS,
      'OrphanMitigationSuccessful',
      'Ready',
      20_000,
    ).catch(() => waitForReason(api, R.ServiceInstance, 'edit-while-retrying', NS, 'ProvisionCallFailed'));
    await edit<ServiceInstance>(api, R.ServiceInstance, 'edit-while-retrying', NS, (i) => {
      i.spec.clusterServicePlanExternalName = 'ok';
    });
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'edit-while-retrying',
      NS,
      'ProvisionedSuccessfully',
    );
    assert.equal(ready.status?.externalProperties?.clusterServicePlanExternalName, 'ok');
  });

  test('403 is retried without orphan mitigation', async () => {
    let refused = 0;
    proxy.intercept = (req) => {
      if (
        req.method === 'PUT' &&
        (req.body as { plan_id?: string })?.plan_id === '0e570001-7e57-4000-8000-000000000001' &&
        refused === 0
      ) {
        refused++;
        return { status: 403, body: { description: 'not today' } };
      }
      return undefined;
    };
    try {
      await create(
        api,
        R.ServiceInstance,
        instance('retry403', NS, { clusterServiceClassExternalName: 'depot-test-single' }),
      );
      const ready = await waitForReason<ServiceInstance>(
        api,
        R.ServiceInstance,
        'retry403',
        NS,
        'ProvisionedSuccessfully',
      );
      assert.equal(refused, 1);
      assert.equal(calls(ready.spec.externalID!, 'PUT').length, 2);
      assert.equal(calls(ready.spec.externalID!, 'DELETE').length, 0);
    } finally {
      proxy.intercept = undefined;
    }
  });

  for (const [label, answer] of [
    ['201 with a body that is not JSON', { status: 201, body: undefined }],
    ['204', { status: 204, body: undefined }],
    ['a timeout', { status: 0, hang: true }],
  ] as const) {
    test(`${label}: orphan mitigation (a DELETE), then provisioned`, async () => {
      const name = `ambiguous-${answer.status || 'timeout'}`;
      let answered = 0;
      proxy.intercept = (req) => {
        if (
          req.method === 'PUT' &&
          (req.body as { context?: { instance_name?: string } })?.context?.instance_name === name &&
          answered === 0
        ) {
          answered++;
          return answer;
        }
        return undefined;
      };
      try {
        await create(api, R.ServiceInstance, testInstance(name, 'ok'));
        const ready = await waitForReason<ServiceInstance>(
          api,
          R.ServiceInstance,
          name,
          NS,
          'ProvisionedSuccessfully',
          'Ready',
          20_000,
        );
        assert.equal(answered, 1);
        assert.ok(calls(ready.spec.externalID!, 'DELETE').length >= 1, 'orphan mitigation sent a DELETE');
      } finally {
        proxy.intercept = undefined;
      }
    });
  }

  test('async provision that fails: Failed ProvisionCallFailed, orphan-mitigated, not provisioned again', async () => {
    await create(api, R.ServiceInstance, testInstance('async-fail', 'async-provision-fail'));
    const done = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'async-fail',
      NS,
      'OrphanMitigationSuccessful',
      'Ready',
      20_000,
    );
    assert.equal(condition(done, 'Failed')?.reason, 'ProvisionCallFailed');
    assert.match(condition(done, 'Failed')!.message, /Provision call failed: .*injected fault/);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const id = done.spec.externalID!;
    assert.equal(calls(id, 'PUT').length, 1);
    assert.equal(calls(id, 'DELETE').length, 1);
    assert.equal(done.status?.provisionStatus, 'NotProvisioned');
  });

  test('last_operation 400: Failed ErrorPollingLastOperation with orphan mitigation', async () => {
    await create(api, R.ServiceInstance, testInstance('poll400', 'last-operation-fail400'));
    const failed = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'poll400',
      NS,
      'ErrorPollingLastOperation',
      'Failed',
      20_000,
    );
    await waitFor(async () => calls(failed.spec.externalID!, 'DELETE').length >= 1, 20_000, 'orphan-mitigation DELETE');
  });

  test('last_operation 500 three times, then Ready', async () => {
    await create(api, R.ServiceInstance, testInstance('poll500-3x', 'last-operation-fail500-3x'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'poll500-3x',
      NS,
      'ProvisionedSuccessfully',
      'Ready',
      20_000,
    );
    assert.ok(calls(ready.spec.externalID!, 'GET').length >= 4);
  });

  test('a slow async provision shows Provisioning with asyncOpInProgress, then Ready', async () => {
    await create(api, R.ServiceInstance, testInstance('slow', 'slow'));
    const provisioning = await waitForReason<ServiceInstance>(api, R.ServiceInstance, 'slow', NS, 'Provisioning');
    assert.equal(provisioning.status?.asyncOpInProgress, true);
    assert.equal(provisioning.status?.currentOperation, 'Provision');
    assert.ok(provisioning.status?.lastOperation, 'the OSB operation is kept in status');
    assert.equal(provisioning.status?.lastConditionState, 'Provisioning');
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'slow',
      NS,
      'ProvisionedSuccessfully',
      'Ready',
      20_000,
    );
    assert.equal(ready.status?.asyncOpInProgress, undefined);
    // Retry-After (1 s here) paces the polls: about one per second, not a storm.
    const polls = calls(ready.spec.externalID!, 'GET').length;
    assert.ok(polls >= 2 && polls <= 6, `polled ${polls} times in ~3 s`);
  });
});

describe('update', () => {
  test("the current plan's planUpdatable overrides its class's: leaving a plan not updatable is refused", async () => {
    const catalog = structuredClone((await osb(depot).get('/v2/catalog')).body as CatalogResponse);
    const okPlan = catalog.services.find((s) => s.id === TEST_SERVICE_ID)!.plans.find((p) => p.name === 'ok')!;
    okPlan.plan_updateable = false; // the class (depot-test) stays plan_updateable
    const relist = () =>
      edit<ServiceBroker>(api, R.ClusterServiceBroker, 'depot', undefined, (b) => {
        b.spec.relistRequests = (b.spec.relistRequests ?? 0) + 1;
      });
    const okPlanUpdatable = async () =>
      (await api.client.get<ServicePlan>(R.ClusterServicePlan, okPlan.id)).spec.planUpdatable;
    proxy.intercept = (req) =>
      req.method === 'GET' && req.url.startsWith('/v2/catalog') ? { status: 200, body: catalog } : undefined;
    try {
      await relist();
      await waitFor(async () => (await okPlanUpdatable()) === false, 20_000, 'plan ok not updatable');
      await create(api, R.ServiceInstance, testInstance('pinned', 'ok'));
      const ready = await waitForReason<ServiceInstance>(
        api,
        R.ServiceInstance,
        'pinned',
        NS,
        'ProvisionedSuccessfully',
      );
      await edit<ServiceInstance>(api, R.ServiceInstance, 'pinned', NS, (i) => {
        i.spec.clusterServicePlanExternalName = 'slow';
      });
      const refused = await waitForReason<ServiceInstance>(
        api,
        R.ServiceInstance,
        'pinned',
        NS,
        'PlanChangeNotAllowed',
        'Failed',
      );
      assert.equal(condition(refused, 'Ready')?.status, 'False');
      assert.equal(calls(ready.spec.externalID!, 'PATCH').length, 0);
    } finally {
      proxy.intercept = undefined;
      await relist();
      // A field the catalog no longer has goes from the plan's spec.
      await waitFor(async () => (await okPlanUpdatable()) === undefined, 20_000, 'plan ok as Depot serves it');
    }
  });

  test('a plan change sends plan_id and previous_values; parameters only when they change', async () => {
    await create(api, R.ServiceInstance, testInstance('updatable', 'ok', { parameters: { a: 1 } }));
    let ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'updatable',
      NS,
      'ProvisionedSuccessfully',
    );
    const id = ready.spec.externalID!;
    await edit<ServiceInstance>(api, R.ServiceInstance, ready.metadata.name, NS, (i) => {
      i.spec.clusterServicePlanExternalName = 'slow';
    });
    ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'updatable',
      NS,
      'InstanceUpdatedSuccessfully',
      'Ready',
      20_000,
    );
    const planPatch = calls(id, 'PATCH')[0]!.body as Record<string, unknown>;
    assert.equal(planPatch.plan_id, '0e570000-7e57-4000-8000-000000000002');
    assert.deepEqual(planPatch.previous_values, {
      service_id: TEST_SERVICE_ID,
      plan_id: '0e570000-7e57-4000-8000-000000000001',
    });
    assert.equal('parameters' in planPatch, false);
    assert.equal(ready.status?.externalProperties?.clusterServicePlanExternalName, 'slow');
    assert.equal(ready.status?.reconciledGeneration, ready.metadata.generation);

    // updateRequests++ with nothing else changed: a PATCH with neither plan_id nor parameters.
    await edit<ServiceInstance>(api, R.ServiceInstance, ready.metadata.name, NS, (i) => {
      i.spec.updateRequests = 1;
    });
    await waitFor(async () => calls(id, 'PATCH').length === 2, 20_000, 'second PATCH');
    const touch = calls(id, 'PATCH')[1]!.body as Record<string, unknown>;
    assert.equal('plan_id' in touch, false);
    assert.equal('parameters' in touch, false);
    await waitFor(
      async () => {
        const i = await getInstance('updatable');
        return i.status?.reconciledGeneration === i.metadata.generation && condition(i, 'Ready')?.status === 'True'
          ? i
          : undefined;
      },
      20_000,
      'update after touch',
    );

    // All parameters removed: parameters {}.
    await edit<ServiceInstance>(api, R.ServiceInstance, 'updatable', NS, (i) => {
      delete i.spec.parameters;
    });
    await waitFor(async () => calls(id, 'PATCH').length === 3, 20_000, 'third PATCH');
    assert.deepEqual((calls(id, 'PATCH')[2]!.body as Record<string, unknown>).parameters, {});
  });

  test('update 500 three times is retried, then Ready; 400 is terminal', async () => {
    await create(api, R.ServiceInstance, testInstance('update-retry', 'ok'));
    let ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'update-retry',
      NS,
      'ProvisionedSuccessfully',
    );
    await edit<ServiceInstance>(api, R.ServiceInstance, ready.metadata.name, NS, (i) => {
      i.spec.clusterServicePlanExternalName = 'update-fail500-3x';
    });
    ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'update-retry',
      NS,
      'InstanceUpdatedSuccessfully',
      'Ready',
      30_000,
    );
    assert.equal(calls(ready.spec.externalID!, 'PATCH').length, 4);

    await edit<ServiceInstance>(api, R.ServiceInstance, ready.metadata.name, NS, (i) => {
      i.spec.clusterServicePlanExternalName = 'update-fail400';
    });
    const failed = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'update-retry',
      NS,
      'UpdateInstanceCallFailed',
      'Failed',
    );
    assert.match(condition(failed, 'Failed')!.message, /will not be retried/);
    assert.equal(failed.status?.provisionStatus, 'Provisioned');
    assert.equal(failed.status?.externalProperties?.clusterServicePlanExternalName, 'update-fail500-3x');
  });

  test('async update that fails: Failed UpdateInstanceCallFailed', async () => {
    await create(api, R.ServiceInstance, testInstance('async-update', 'ok'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'async-update',
      NS,
      'ProvisionedSuccessfully',
    );
    await edit<ServiceInstance>(api, R.ServiceInstance, ready.metadata.name, NS, (i) => {
      i.spec.clusterServicePlanExternalName = 'async-update-fail';
    });
    const failed = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'async-update',
      NS,
      'UpdateInstanceCallFailed',
      'Failed',
      20_000,
    );
    assert.match(condition(failed, 'Failed')!.message, /Update call failed: /);
  });

  test('a plan that does not exist: ReferencesNonexistentServicePlan, no PATCH', async () => {
    await create(api, R.ServiceInstance, testInstance('bad-plan-change', 'ok'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'bad-plan-change',
      NS,
      'ProvisionedSuccessfully',
    );
    await edit<ServiceInstance>(api, R.ServiceInstance, ready.metadata.name, NS, (i) => {
      i.spec.clusterServicePlanExternalName = 'no-such-plan';
    });
    await waitForReason(api, R.ServiceInstance, 'bad-plan-change', NS, 'ReferencesNonexistentServicePlan');
    assert.equal(calls(ready.spec.externalID!, 'PATCH').length, 0);
  });
});

describe('delete', () => {
  test('deprovision: the broker forgets the instance and the object goes', async () => {
    await create(api, R.ServiceInstance, testInstance('to-delete', 'ok'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'to-delete',
      NS,
      'ProvisionedSuccessfully',
    );
    await remove(api, R.ServiceInstance, 'to-delete', NS);
    await waitForGone(api, R.ServiceInstance, 'to-delete', NS);
    const id = ready.spec.externalID!;
    const del = calls(id, 'DELETE')[0]!;
    assert.match(
      del.url,
      new RegExp(`service_id=${TEST_SERVICE_ID}&plan_id=0e570000-7e57-4000-8000-000000000001&accepts_incomplete=true`),
    );
    const gone = await osb(depot).get(`/v2/service_instances/${id}`);
    assert.equal(gone.status, 404);
  });

  test('delete during an async provision waits for it, then deprovisions', async () => {
    // Every version of the instance, as `kubectl get -w` shows them, from its creation on.
    const versions: Array<{ type: string; instance: ServiceInstance }> = [];
    const watch = await new Watch(api.client.config).watch(
      collectionPath(R.ServiceInstance, NS),
      { fieldSelector: 'metadata.name=delete-while-slow' },
      (type: string, object: unknown) => versions.push({ type, instance: object as ServiceInstance }),
      () => {},
    );
    try {
      await create(api, R.ServiceInstance, testInstance('delete-while-slow', 'slow'));
      const provisioning = await waitForReason<ServiceInstance>(
        api,
        R.ServiceInstance,
        'delete-while-slow',
        NS,
        'Provisioning',
      );
      await remove(api, R.ServiceInstance, 'delete-while-slow', NS);
      const id = provisioning.spec.externalID!;
      const readyReasons = () => versions.map((v) => condition(v.instance, 'Ready')?.reason ?? '-').join(', ');
      await waitForGone(api, R.ServiceInstance, 'delete-while-slow', NS, 30_000).catch((error: Error) => {
        throw new Error(`${error.message}; Ready reasons seen: ${readyReasons()}`, { cause: error });
      });
      await waitFor(async () => versions.at(-1)?.type === 'DELETED', 10_000, 'the DELETED event');

      // What the user sees: after the delete was asked for, the provision was still followed to its
      // end (Ready, provisioned), and only then deprovisioned; the object went with its finalizer.
      const deleting = versions.filter((v) => v.instance.metadata.deletionTimestamp);
      const reasons = deleting.map((v) => condition(v.instance, 'Ready')?.reason);
      const provisioned = deleting.findIndex(
        (v) =>
          condition(v.instance, 'Ready')?.reason === 'ProvisionedSuccessfully' &&
          v.instance.status?.provisionStatus === 'Provisioned',
      );
      assert.ok(
        provisioned >= 0,
        `the provision was followed to its end after the delete; Ready reasons seen: ${reasons.join(', ')}`,
      );
      const deprovisionStarted = reasons.indexOf('DeprovisionRequestInFlight');
      assert.ok(
        deprovisionStarted > provisioned,
        `deprovisioned only after the provision ended: ${reasons.join(', ')}`,
      );
      assert.ok(reasons.includes('Deprovisioning'), `the async deprovision was polled: ${reasons.join(', ')}`);
      assert.ok(!reasons.includes('DeprovisionCallFailed'), `no DELETE was refused: ${reasons.join(', ')}`);
      // Gone at all means the finalizer went: the API server keeps an object that has a
      // deletionTimestamp for as long as it has finalizers.
      assert.deepEqual(
        versions.at(-2)?.instance.metadata.finalizers,
        ['kubernetes-incubator/service-catalog'],
        'the delete was held by the finalizer while the deprovision ran',
      );

      // What the broker saw: the provision polled until it ended, then one DELETE (never one that
      // raced the provision), then the deprovision's own operation polled until the object went.
      const deletes = proxy.requests
        .map((r, i) => (r.method === 'DELETE' && r.url.startsWith(`/v2/service_instances/${id}?`) ? i : -1))
        .filter((i) => i >= 0);
      assert.equal(deletes.length, 1, 'one DELETE, accepted: none was sent while the provision ran');
      const firstDelete = deletes[0]!;
      const polls = proxy.requests
        .map((r, i) => (r.method === 'GET' && r.url.startsWith(`/v2/service_instances/${id}/last_operation`) ? i : -1))
        .filter((i) => i >= 0);
      const operationOf = (i: number) => new URL(proxy.requests[i]!.url, 'http://x').searchParams.get('operation');
      const provisionOperation = operationOf(polls[0]!);
      const provisionPolls = polls.filter((i) => operationOf(i) === provisionOperation);
      const deprovisionPolls = polls.filter((i) => operationOf(i) !== provisionOperation);
      assert.ok(
        provisionPolls.length >= 1 && provisionPolls.every((i) => i < firstDelete),
        'no DELETE before the provision finished',
      );
      assert.ok(
        deprovisionPolls.length >= 1 && deprovisionPolls.every((i) => i > firstDelete),
        'the deprovision was polled',
      );
      // And the broker no longer has the instance.
      assert.equal((await osb(depot).get(`/v2/service_instances/${id}`)).status, 404);
    } finally {
      watch.abort();
    }
  });

  test('deprovision 500 three times is retried (Ready Unknown DeprovisionCallFailed), then done', async () => {
    await create(api, R.ServiceInstance, testInstance('deprovision-retry', 'deprovision-fail500-3x'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'deprovision-retry',
      NS,
      'ProvisionedSuccessfully',
    );
    await remove(api, R.ServiceInstance, 'deprovision-retry', NS);
    const failing = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'deprovision-retry',
      NS,
      'DeprovisionCallFailed',
    );
    assert.equal(condition(failing, 'Ready')?.status, 'Unknown');
    await waitForGone(api, R.ServiceInstance, 'deprovision-retry', NS, 30_000);
    assert.equal(calls(ready.spec.externalID!, 'DELETE').length, 4);
  });

  test('async deprovision failing three times: a new DELETE each time, then gone', async () => {
    await create(api, R.ServiceInstance, testInstance('async-deprovision', 'async-deprovision-fail-3x'));
    const ready = await waitForReason<ServiceInstance>(
      api,
      R.ServiceInstance,
      'async-deprovision',
      NS,
      'ProvisionedSuccessfully',
    );
    await remove(api, R.ServiceInstance, 'async-deprovision', NS);
    await waitForGone(api, R.ServiceInstance, 'async-deprovision', NS, 40_000);
    assert.equal(calls(ready.spec.externalID!, 'DELETE').length, 4);
  });

  test('a deprovision that keeps failing can be abandoned with depot/abandon', async () => {
    await create(api, R.ServiceInstance, testInstance('stuck', 'deprovision-fail400'));
    const ready = await waitForReason<ServiceInstance>(api, R.ServiceInstance, 'stuck', NS, 'ProvisionedSuccessfully');
    await remove(api, R.ServiceInstance, 'stuck', NS);
    const failing = await waitForReason<ServiceInstance>(api, R.ServiceInstance, 'stuck', NS, 'DeprovisionCallFailed');
    assert.match(condition(failing, 'Ready')!.message, /Status: 400/);
    await edit<ServiceInstance>(api, R.ServiceInstance, 'stuck', NS, (i) => {
      i.metadata.annotations = { ...i.metadata.annotations, 'depot/abandon': 'true' };
    });
    await waitForGone(api, R.ServiceInstance, 'stuck', NS);
    // Abandoned, not deprovisioned: the broker still has it.
    assert.equal((await osb(depot).get(`/v2/service_instances/${ready.spec.externalID}`)).status, 200);
  });
});
