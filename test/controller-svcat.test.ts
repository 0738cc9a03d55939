/**
 * svcat v0.3 against Depot's CRDs and controller: the requests svcat sends (test/svcat-recording.ts,
 * recorded with `svcat -v 8`) replayed against a real kube-apiserver, with a real Depot behind a
 * recording proxy and the controller running. Each step checks what svcat would then show: the
 * write accepted, the conditions its `--wait` looks for, the labels it looks classes and plans
 * up by, the Secret `describe binding --show-secrets` reads, the 404 a deleting `--wait` ends on.
 * The steps run in the recorded order and build on one another.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type {
  Condition,
  KubeObject,
  Secret,
  ServiceBinding,
  ServiceBroker,
  ServiceInstance,
} from '../catalog-controller/api/v1beta1.js';
import { KubeApiError } from '../catalog-controller/kube/kube-client.js';
import { SERVICE_ID, SMALL_PLAN_ID, STANDARD_PLAN_ID, type TestDepot } from './helpers.js';
import {
  R,
  brokerAuthSecret,
  condition,
  secretValues,
  startBrokerProxy,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForGone,
  type BrokerProxy,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';
import {
  RECORDED_BROKER_URL,
  RECORDED_INSTANCE_LABELS,
  SVCAT_COMMANDS_NOT_RECORDED,
  svcatCommand,
  type RecordedCommand,
  type RecordedRequest,
} from './svcat-recording.js';

const NS = 'shop';
const sha224 = (value: string): string => createHash('sha224').update(value).digest('hex');

let api: KubeApi | undefined;
let depot: TestDepot | undefined;
let proxy: BrokerProxy | undefined;
let controller: ControllerProcess | undefined;

const kube = (): KubeApi => {
  assert.ok(api, 'kube-apiserver not started');
  return api;
};
const broker = (): BrokerProxy => {
  assert.ok(proxy, 'broker proxy not started');
  return proxy;
};

// ---- replaying ----

/** What the API server answered: the object, or the HTTP status of a refusal. */
type Answer = { ok: true; body: unknown } | { ok: false; status: number; message: string };

interface Listed<T> {
  items: T[];
}

async function send(method: string, path: string, body?: unknown): Promise<Answer> {
  try {
    return { ok: true, body: await kube().client.request(method, path, body) };
  } catch (error) {
    if (error instanceof KubeApiError) return { ok: false, status: error.status, message: error.message };
    throw error;
  }
}

/** svcat's WaitForInstance / WaitForBinding: Ready or Failed True, and no async operation running. */
function svcatDone(answer: Answer): boolean {
  if (!answer.ok) return false;
  const status = (answer.body as { status?: { conditions?: Condition[]; asyncOpInProgress?: boolean } }).status;
  const isTrue = (type: string): boolean =>
    status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
  return (isTrue('Ready') || isTrue('Failed')) && status?.asyncOpInProgress !== true;
}

/** What a deleting `--wait` waits for. */
const gone = (answer: Answer): boolean => !answer.ok && answer.status === 404;

/** The request as svcat sent it; only the broker URL of the recording is replaced with the running one. */
function recordedBody(request: RecordedRequest): unknown {
  if (request.body === undefined) return undefined;
  return JSON.parse(JSON.stringify(request.body).replaceAll(RECORDED_BROKER_URL, broker().url));
}

/** The object `previous` returned, its spec counter + 1: what `touch instance` and `sync broker` PUT. */
function incremented(request: RecordedRequest, previous: Answer | undefined): unknown {
  assert.ok(previous?.ok, `${request.method} ${request.path} follows a successful GET`);
  const object = structuredClone(previous.body) as { spec: Record<string, number | undefined> };
  object.spec[request.increment!] = (object.spec[request.increment!] ?? 0) + 1;
  return object;
}

/**
 * Sends a command's requests in order and returns the answers. A `poll` GET is repeated, as
 * svcat's `--wait` does, until `until` holds for its answer (svcatDone by default).
 */
async function replay(command: RecordedCommand, until: (answer: Answer) => boolean = svcatDone): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const request of command.requests) {
    const body = request.increment ? incremented(request, answers[answers.length - 1]) : recordedBody(request);
    if (!request.poll) {
      answers.push(await send(request.method, request.path, body));
      continue;
    }
    let last: Answer | undefined;
    try {
      const what = `${command.command}: ${request.path}`;
      await waitFor(async () => until((last = await send(request.method, request.path))), 90_000, what);
    } catch (error) {
      throw new Error(`${(error as Error).message}; last answer: ${JSON.stringify(last)}`, { cause: error });
    }
    answers.push(last!);
  }
  return answers;
}

function accepted(answer: Answer | undefined, what: string): unknown {
  assert.ok(answer, what);
  assert.ok(answer.ok, `${what} refused: ${answer.ok ? '' : answer.message}`);
  return answer.body;
}

/** The names of the objects of a list answer. */
function listed(answer: Answer | undefined, what: string): string[] {
  return (accepted(answer, what) as Listed<KubeObject>).items.map((o) => o.metadata.name);
}

const SC = '/apis/servicecatalog.k8s.io/v1beta1';

// ---- what the broker saw ----

const instanceId = async (name: string): Promise<string> => {
  const object = await kube().client.get<ServiceInstance>(R.ServiceInstance, name, NS);
  assert.ok(object.spec.externalID, `${name} has an externalID`);
  return object.spec.externalID;
};
const brokerCalls = (method: string, pathPrefix: string): number =>
  broker().requests.filter((r) => r.method === method && r.url.split('?')[0]!.startsWith(pathPrefix)).length;
const instanceCalls = (method: string, id: string): number =>
  broker().requests.filter((r) => r.method === method && r.url.split('?')[0] === `/v2/service_instances/${id}`).length;

type WithConditions = { status?: { conditions?: Condition[] } };

function assertCondition(object: WithConditions, type: string, status: string, reason: string): void {
  const found = condition(object, type);
  const message = `${type}: ${JSON.stringify(found)}`;
  assert.deepEqual({ status: found?.status, reason: found?.reason }, { status, reason }, message);
}

before(async () => {
  api = await startKubeApi();
  depot = await startTestBroker('controller-svcat');
  proxy = await startBrokerProxy(depot);
  // What the recording had before `register`: the broker's auth Secret and the parameters Secret.
  await brokerAuthSecret(kube(), NS, 'depot-auth');
  await kube().client.create<Secret>(R.Secret, {
    metadata: { name: 'db-params', namespace: NS },
    data: { params: Buffer.from('{"extensions":["citext"]}').toString('base64') },
  });
  controller = await startController(kube());
});

after(async () => {
  await controller?.stop();
  await proxy?.close();
  await depot?.close();
  await api?.stop();
});

describe('svcat v0.3 commands, replayed', () => {
  it('register depot --scope cluster: accepted as sent (relistBehavior "", relistRequests 0); Ready', async () => {
    const [created] = await replay(svcatCommand('svcat register depot '));
    const body = accepted(created, 'POST clusterservicebrokers') as ServiceBroker;
    assert.equal(body.spec.relistBehavior, '');
    assert.equal(body.spec.relistRequests, 0);
    // `svcat get brokers` shows Ready; "" meant relistBehavior Duration, as the original's webhook defaulted it.
    const ready = await waitFor(
      async () => {
        const b = await kube().client.get<ServiceBroker>(R.ClusterServiceBroker, 'depot');
        return condition(b, 'Ready')?.status === 'True' ? b : undefined;
      },
      20_000,
      'broker depot Ready',
    );
    assertCondition(ready, 'Ready', 'True', 'FetchedCatalog');
    assert.equal(ready.status?.lastConditionState, 'Ready');
    assert.equal(ready.status?.osbApiVersion, '2.17');
  });

  it('register nsbroker --scope namespace: accepted; namespaced classes; deregister removes them', async () => {
    const [created] = await replay(svcatCommand('svcat register nsbroker '));
    accepted(created, 'POST servicebrokers');
    await waitFor(
      async () => {
        const b = await kube().client.get<ServiceBroker>(R.ServiceBroker, 'nsbroker', NS);
        return condition(b, 'Ready')?.reason === 'FetchedCatalog';
      },
      20_000,
      'nsbroker Ready',
    );
    const selector = encodeURIComponent(`servicecatalog.k8s.io/spec.externalName=${sha224('postgresql')}`);
    const classes = await send('GET', `${SC}/namespaces/${NS}/serviceclasses?labelSelector=${selector}`);
    assert.deepEqual(listed(classes, 'list serviceclasses'), [SERVICE_ID]);

    // Both would leave svcat two postgresql classes to choose from; the recording had only the cluster one.
    const [deleted] = await replay(SVCAT_COMMANDS_NOT_RECORDED.deregisterNsbroker);
    accepted(deleted, 'DELETE servicebroker');
    await waitForGone(kube(), R.ServiceBroker, 'nsbroker', NS);
    assert.deepEqual((await kube().client.list(R.ServiceClass, { namespace: NS })).items, []);
    assert.deepEqual((await kube().client.list(R.ServicePlan, { namespace: NS })).items, []);
  });

  it('sync broker depot: the whole object PUT back with relistRequests + 1 relists the catalog', async () => {
    const earlier = await kube().client.get<ServiceBroker>(R.ClusterServiceBroker, 'depot');
    const fetches = brokerCalls('GET', '/v2/catalog');
    const [, put] = await replay(SVCAT_COMMANDS_NOT_RECORDED.syncBroker);
    const written = accepted(put, 'PUT clusterservicebroker') as ServiceBroker;
    assert.equal(written.spec.relistRequests, 1);
    const relisted = await waitFor(
      async () => {
        const b = await kube().client.get<ServiceBroker>(R.ClusterServiceBroker, 'depot');
        return b.status?.reconciledGeneration === written.metadata.generation ? b : undefined;
      },
      20_000,
      'depot relisted',
    );
    assertCondition(relisted, 'Ready', 'True', 'FetchedCatalog');
    const retrieved = (b: ServiceBroker): number => Date.parse(b.status?.lastCatalogRetrievalTime ?? '');
    assert.ok(retrieved(relisted) > retrieved(earlier), 'lastCatalogRetrievalTime moved');
    assert.ok(brokerCalls('GET', '/v2/catalog') > fetches, 'the catalog was fetched again');
  });

  it('provision db (a string where an array is due): found by labels; --wait ends on Failed', async () => {
    const [clusterClasses, classes, plans, created, waited] = await replay(svcatCommand('svcat provision db '));
    // svcat wants exactly one class (cluster or namespaced) and one plan for the names given.
    assert.deepEqual(listed(clusterClasses, 'list clusterserviceclasses'), [SERVICE_ID]);
    assert.deepEqual(listed(classes, 'list serviceclasses'), []);
    assert.deepEqual(listed(plans, 'list clusterserviceplans'), [SMALL_PLAN_ID]);
    accepted(created, 'POST serviceinstance db');

    const db = accepted(waited, 'GET serviceinstance db') as ServiceInstance;
    assertCondition(db, 'Failed', 'True', 'ClusterServiceBrokerReturnedFailure');
    assertCondition(db, 'Ready', 'False', 'ProvisionCallFailed');
    // externalID "" meant "generate one", as the original's webhook did.
    assert.equal(db.spec.externalID, db.metadata.uid);
    assert.deepEqual(db.spec.clusterServiceClassRef, { name: SERVICE_ID });
    assert.deepEqual(db.spec.clusterServicePlanRef, { name: SMALL_PLAN_ID });
    // The labels svcat and the original's webhook use, equal to those in the recording.
    assert.deepEqual(db.metadata.labels, RECORDED_INSTANCE_LABELS);
    assert.deepEqual(db.metadata.labels, {
      'servicecatalog.k8s.io/spec.clusterServiceClassRef.name': sha224(SERVICE_ID),
      'servicecatalog.k8s.io/spec.clusterServicePlanRef.name': sha224(SMALL_PLAN_ID),
    });
    assert.equal(instanceCalls('PUT', db.spec.externalID!), 1);
  });

  it('provision db2 with --secret db-params[params]: Ready, the parameters from the Secret redacted', async () => {
    const answers = await replay(svcatCommand('svcat provision db2 '));
    const db2 = accepted(answers[4], 'GET serviceinstance db2') as ServiceInstance;
    assertCondition(db2, 'Ready', 'True', 'ProvisionedSuccessfully');
    assert.equal(condition(db2, 'Failed'), undefined);
    assert.equal(db2.status?.lastConditionState, 'Ready');
    assert.deepEqual(db2.status?.externalProperties?.parameters, { extensions: '<redacted>' });
  });

  it('provision db3 --plan standard --params-json: Ready on the standard plan', async () => {
    const answers = await replay(svcatCommand('svcat provision db3 '));
    assert.deepEqual(listed(answers[2], 'list plans'), [STANDARD_PLAN_ID]);
    const db3 = accepted(answers[4], 'GET serviceinstance db3') as ServiceInstance;
    assertCondition(db3, 'Ready', 'True', 'ProvisionedSuccessfully');
    assert.deepEqual(db3.spec.clusterServicePlanRef, { name: STANDARD_PLAN_ID });
    const planLabel = db3.metadata.labels?.['servicecatalog.k8s.io/spec.clusterServicePlanRef.name'];
    assert.equal(planLabel, sha224(STANDARD_PLAN_ID));
  });

  it('touch instance db: the PUT of updateRequests + 1 makes the controller provision Failed db again', async () => {
    const id = await instanceId('db');
    const [, put] = await replay(svcatCommand('svcat touch instance db '));
    const touched = accepted(put, 'PUT serviceinstance db') as ServiceInstance;
    assert.equal(touched.spec.updateRequests, 1);
    const again = await waitFor(
      async () => {
        const db = await kube().client.get<ServiceInstance>(R.ServiceInstance, 'db', NS);
        const failed = condition(db, 'Failed')?.status === 'True';
        const settled = db.status?.observedGeneration === touched.metadata.generation && failed;
        return settled && instanceCalls('PUT', id) === 2 ? db : undefined;
      },
      30_000,
      'db provisioned again after the touch',
    );
    assertCondition(again, 'Failed', 'True', 'ClusterServiceBrokerReturnedFailure');
  });

  it('bind db --name db-app: accepted; waits for an instance that never becomes Ready (svcat times out)', async () => {
    const notReady = (answer: Answer): boolean =>
      answer.ok && condition(answer.body as ServiceBinding, 'Ready')?.reason === 'ErrorInstanceNotReady';
    const [created, waited] = await replay(svcatCommand('svcat bind db '), notReady);
    accepted(created, 'POST servicebinding db-app');
    const dbApp = accepted(waited, 'GET servicebinding db-app') as ServiceBinding;
    assertCondition(dbApp, 'Ready', 'False', 'ErrorInstanceNotReady');
    assert.equal(condition(dbApp, 'Failed'), undefined, 'not Failed: it binds once db is Ready');
    assert.equal(brokerCalls('PUT', `/v2/service_instances/${await instanceId('db')}/service_bindings`), 0);
  });

  it('bind db2: Ready, with a Secret named after the binding', async () => {
    const [created, waited] = await replay(svcatCommand('svcat bind db2 '));
    accepted(created, 'POST servicebinding db2');
    const bound = accepted(waited, 'GET servicebinding db2') as ServiceBinding;
    assertCondition(bound, 'Ready', 'True', 'InjectedBindResult');
    assert.equal(bound.spec.secretName, 'db2');
    assert.equal(bound.spec.externalID, bound.metadata.uid);
  });

  it("describe binding --show-secrets: db-app has no Secret yet; db2's Secret holds working credentials", async () => {
    const [dbApp, dbAppSecret] = await replay(svcatCommand('svcat describe binding db-app '));
    assert.equal((accepted(dbApp, 'GET servicebinding db-app') as ServiceBinding).spec.secretName, 'db-app-creds');
    assert.ok(gone(dbAppSecret!), `no Secret db-app-creds: ${JSON.stringify(dbAppSecret)}`);

    // The same command for db2 (not recorded): GET the binding, then the Secret its spec.secretName names.
    const bindingPath = `${SC}/namespaces/${NS}/servicebindings/db2`;
    const bound = accepted(await send('GET', bindingPath), 'GET db2') as ServiceBinding;
    const secretPath = `/api/v1/namespaces/${NS}/secrets/${bound.spec.secretName}`;
    const secret = accepted(await send('GET', secretPath), 'GET Secret db2') as Secret;
    const values = secretValues(secret);
    const keys = ['database', 'host', 'jdbcUrl', 'password', 'port', 'provider', 'type', 'uri', 'username'];
    assert.deepEqual(Object.keys(values).sort(), keys);
    assert.deepEqual({ type: values.type, provider: values.provider }, { type: 'postgresql', provider: 'depot' });
    const client = new pg.Client({ connectionString: values.uri });
    await client.connect();
    try {
      const query = `select extname from pg_extension where extname = 'citext'`;
      const { rows } = await client.query<{ extname: string }>(query);
      assert.deepEqual(rows, [{ extname: 'citext' }], 'parametersFrom reached the broker');
    } finally {
      await client.end();
    }
  });

  it('unbind --name db-app: deleted at once (it was never bound); --wait ends on 404', async () => {
    const [deleted, waited] = await replay(svcatCommand('svcat unbind -n shop --name db-app '), gone);
    accepted(deleted, 'DELETE servicebinding db-app');
    assert.ok(gone(waited!));
  });

  it('unbind db2: bindings found by spec.instanceRef.name; the Secret and the broker binding go', async () => {
    const [instance, bindings, deleted, waited] = await replay(svcatCommand('svcat unbind db2 '), gone);
    accepted(instance, 'GET serviceinstance db2');
    const all = (accepted(bindings, 'list servicebindings') as Listed<ServiceBinding>).items;
    const ofDb2 = all.filter((b) => b.spec.instanceRef.name === 'db2');
    assert.deepEqual(
      ofDb2.map((b) => b.metadata.name),
      ['db2'],
    );
    accepted(deleted, 'DELETE servicebinding db2');
    assert.ok(gone(waited!));
    assert.equal(await kube().client.find(R.Secret, 'db2', NS), undefined);
    const id = await instanceId('db2');
    const unbinds = brokerCalls('DELETE', `/v2/service_instances/${id}/service_bindings/${ofDb2[0]!.metadata.uid}`);
    assert.ok(unbinds >= 1, 'unbound at the broker');
  });

  const deprovisions = [
    ['db', false, 'no DELETE for an instance never provisioned'],
    ['db2', true, 'the broker deprovisioned it'],
    ['db3', true, 'the broker deprovisioned it'],
  ] as const;
  for (const [name, deprovisioned, outcome] of deprovisions) {
    it(`deprovision ${name}: --wait ends on 404; ${outcome}`, async () => {
      const id = await instanceId(name);
      const [deleted, waited] = await replay(svcatCommand(`svcat deprovision ${name} `), gone);
      accepted(deleted, `DELETE serviceinstance ${name}`);
      assert.ok(gone(waited!));
      const deletes = instanceCalls('DELETE', id);
      assert.ok(deprovisioned ? deletes >= 1 : deletes === 0, `${deletes} DELETE requests for ${name}`);
    });
  }

  it('deregister depot: the broker, its classes and plans go', async () => {
    const [deleted] = await replay(svcatCommand('svcat deregister depot '));
    accepted(deleted, 'DELETE clusterservicebroker depot');
    await waitForGone(kube(), R.ClusterServiceBroker, 'depot');
    assert.deepEqual((await kube().client.list(R.ClusterServiceClass)).items, []);
    assert.deepEqual((await kube().client.list(R.ClusterServicePlan)).items, []);
  });
});
