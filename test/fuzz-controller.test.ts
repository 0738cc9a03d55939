/**
 * Property-based fuzzing of the catalog controller (fast-check), against a real kube-apiserver,
 * a real Depot with the test offering (behind a ClusterServiceBroker and a namespaced
 * ServiceBroker) and the controller as a process: batches of random ServiceInstance and
 * ServiceBinding specs generated from the CRD schemas (test/controller-fuzz-specs.ts), naming
 * classes and plans every way the API has (existing or not), with parameters of random JSON,
 * parametersFrom of missing Secrets, missing keys and keys that are not JSON objects, odd
 * secretNames and transforms, instanceRefs to missing instances, and some that break the schema.
 *
 * Properties: every object the API server accepts ends with a Ready or Failed condition that has
 * a reason; the controller never exits and its /healthz answers, through the batches and the
 * deletion of every object. Objects the API server refuses are counted.
 *
 * The seed changes every run and is printed; a failure names the objects and prints the seed.
 * Replay: FUZZ_SEED=<seed> node --import tsx --test test/fuzz-controller.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Condition, KubeObject, ServiceBinding, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { KubeApiError } from '../catalog-controller/kube/kube-client.js';
import type { TestDepot } from './helpers.js';
import {
  R,
  brokerAuthSecret,
  create,
  edit,
  ensureNamespace,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';
import {
  applyEdit,
  bindingEdit,
  bindingSpec,
  instanceEdit,
  instanceSpec,
  type SpecEdit,
  type SpecPools,
} from './controller-fuzz-specs.js';

const NS = 'fuzz';
/** Batches of INSTANCES instances and BINDINGS bindings; each batch is deleted before the next. */
const BATCHES = 5;
const INSTANCES = 16;
const BINDINGS = 14;
/** How long a batch's objects have to get a condition. */
const CONDITION_TIMEOUT_MS = 45_000;

const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;

/** Test plans whose instances (real databases) the fuzzer must not create: the other offerings'. */
const TEST_SERVICE_NAMES = ['depot-test', 'depot-test-single'];

/** Secrets the specs' parametersFrom and transforms refer to: JSON objects, and keys that are not. */
const SECRETS: Record<string, Record<string, string>> = {
  'params-json': { p: '{"from":"secret","n":1}', q: '{"x":2}', empty: '{}' },
  'params-bad': {
    notjson: 'not json{',
    array: '[1,2]',
    null: 'null',
    string: '"text"',
    deep: `${'{"a":'.repeat(300)}1${'}'.repeat(300)}`,
    big: JSON.stringify({ big: 'b'.repeat(200_000) }),
  },
};

interface Tally {
  created: number;
  edited: number;
  refused: number;
  reasons: Map<string, number>;
}

describe('fuzzing the controller', () => {
  let api: KubeApi;
  let depot: TestDepot;
  let controller: ControllerProcess;
  let pools: SpecPools;
  const tally: Tally = { created: 0, edited: 0, refused: 0, reasons: new Map() };
  let batchNumber = 0;

  before(async () => {
    api = await startKubeApi();
    depot = await startTestBroker('fuzz-controller');
    await ensureNamespace(api, NS);
    await brokerAuthSecret(api, NS, 'depot-auth');
    for (const [name, data] of Object.entries(SECRETS)) {
      await api.client.create(R.Secret, {
        metadata: { name, namespace: NS },
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      } as KubeObject);
    }
    await create(api, R.ClusterServiceBroker, {
      metadata: { name: 'depot' },
      spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
    });
    await create(api, R.ServiceBroker, {
      metadata: { name: 'depot-ns', namespace: NS },
      spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { name: 'depot-auth' } } } },
    });
    // Operations that keep failing give up (Failed) after 5 s instead of a week.
    controller = await startController(api, { RECONCILIATION_RETRY_DURATION_SECONDS: '5' });
    await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
    await waitForReason(api, R.ServiceBroker, 'depot-ns', NS, 'FetchedCatalog');
    pools = await poolsOf(api);
  });

  after(async () => {
    await controller?.stop();
    await depot?.close();
    await api?.stop();
  });

  it(`${BATCHES} batches of ${INSTANCES} instances and ${BINDINGS} bindings: each ends in a condition`, async (t) => {
    t.diagnostic(`seed ${seed} (replay: FUZZ_SEED=${seed})`);
    const started = Date.now();
    const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    // The instance names of a batch are fixed, so that bindings can refer to them.
    const instanceNames = names('i', INSTANCES);
    const batch = fc.tuple(
      fc.array(instanceSpec(pools), { minLength: INSTANCES, maxLength: INSTANCES }),
      fc.array(bindingSpec(pools, instanceNames), { minLength: BINDINGS, maxLength: BINDINGS }),
      // Then edits of about half of the objects.
      fc.array(fc.option(instanceEdit(pools), { nil: undefined }), { minLength: INSTANCES, maxLength: INSTANCES }),
      fc.array(fc.option(bindingEdit(pools, instanceNames), { nil: undefined }), {
        minLength: BINDINGS,
        maxLength: BINDINGS,
      }),
    );
    await fc.assert(
      fc.asyncProperty(batch, async ([instanceSpecs, bindingSpecs, instanceEdits, bindingEdits]) => {
        const b = batchNumber++;
        const instances = instanceSpecs.map((spec, i) => ({ name: `b${b}-i-${i}`, spec }));
        const bindings = bindingSpecs.map((spec, i) => ({
          name: `b${b}-b-${i}`,
          // The pools name instances i-N: those of this batch.
          spec: renameInstanceRef(spec, b),
        }));
        const accepted = [
          ...(await createAll(api, R.ServiceInstance, instances, tally)),
          ...(await createAll(api, R.ServiceBinding, bindings, tally)),
        ];
        const missing = await waitForConditions(api, accepted);
        await assertAlive(controller);
        assert.deepEqual(missing, [], 'objects without a Ready or Failed condition with a reason');
        for (const object of await currentObjects(api, accepted)) {
          const reason = conditionOf(object)?.reason ?? 'under way again';
          tally.reasons.set(reason, (tally.reasons.get(reason) ?? 0) + 1);
        }

        const edits = [
          ...instances.map((o, i) => ({ resource: R.ServiceInstance, name: o.name, patch: instanceEdits[i] })),
          ...bindings.map((o, i) => ({
            resource: R.ServiceBinding,
            name: o.name,
            patch: bindingEdits[i] && renameEdit(bindingEdits[i], b),
          })),
        ];
        await editAll(api, accepted, edits, tally);
        await new Promise((resolve) => setTimeout(resolve, 1_000)); // the controller takes the edits up
        const missingAfterEdits = await waitForConditions(api, accepted);
        await assertAlive(controller);
        assert.deepEqual(missingAfterEdits, [], 'edited objects without a Ready or Failed condition with a reason');
        // Deleting everything (deprovision, unbind, orphaned references) must not crash it either.
        await deleteAll(api, accepted);
        await assertAlive(controller);
      }),
      { seed, numRuns: BATCHES, endOnFailure: true, includeErrorInReport: true },
    );
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // deletions under way
    await assertAlive(controller);
    const reasons = [...tally.reasons].map(([reason, count]) => `${reason}×${count}`).join(', ');
    t.diagnostic(
      `${tally.created} objects accepted and ${tally.edited} edits, ${tally.refused} refused by the API server, ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s; conditions: ${reasons}`,
    );
  });
});

/** Class and plan names and ids of the test services, as the brokers' catalogs gave them, and the Secrets. */
async function poolsOf(api: KubeApi): Promise<SpecPools> {
  type Entry = KubeObject & { spec: { externalName: string; externalID: string; clusterServiceClassRef?: unknown } };
  const classes = [
    ...(await api.client.list<Entry>(R.ClusterServiceClass)).items,
    ...(await api.client.list<Entry>(R.ServiceClass, { namespace: NS })).items,
  ].filter((c) => TEST_SERVICE_NAMES.includes(c.spec.externalName));
  const classNames = new Set(classes.map((c) => c.metadata.name));
  const plans = [
    ...(await api.client.list<Entry>(R.ClusterServicePlan)).items,
    ...(await api.client.list<Entry>(R.ServicePlan, { namespace: NS })).items,
  ].filter((p) => {
    const spec = p.spec as { clusterServiceClassRef?: { name: string }; serviceClassRef?: { name: string } };
    return classNames.has(spec.clusterServiceClassRef?.name ?? spec.serviceClassRef?.name ?? '');
  });
  assert.ok(classes.length >= 4 && plans.length > 10, 'the test offering is in both brokers’ catalogs');
  const unique = (values: string[]) => [...new Set(values)];
  const names = (e: Entry) => ({
    Name: e.metadata.name,
    ExternalName: e.spec.externalName,
    ExternalID: e.spec.externalID,
  });
  const classOf = (p: Entry) => {
    const spec = p.spec as { clusterServiceClassRef?: { name: string }; serviceClassRef?: { name: string } };
    const name = spec.clusterServiceClassRef?.name ?? spec.serviceClassRef?.name;
    return classes.find(
      (c) => c.metadata.name === name && (c.metadata.namespace ?? '') === (p.metadata.namespace ?? ''),
    );
  };
  return {
    classExternalNames: unique(classes.map((c) => c.spec.externalName)),
    planExternalNames: unique(plans.map((p) => p.spec.externalName)),
    classExternalIds: unique(classes.map((c) => c.spec.externalID)),
    planExternalIds: unique(plans.map((p) => p.spec.externalID)),
    classNames: unique(classes.map((c) => c.metadata.name)),
    planNames: unique(plans.map((p) => p.metadata.name)),
    secretNames: [...Object.keys(SECRETS), 'depot-auth', 'missing-secret'],
    secretKeys: [...Object.values(SECRETS).flatMap((data) => Object.keys(data)), 'username', 'missing-key'],
    pairs: plans.flatMap((p) => {
      const cls = classOf(p);
      return cls ? [{ class: names(cls), plan: names(p) }] : [];
    }),
  };
}

function renameEdit(edit: SpecEdit, batch: number): SpecEdit {
  return 'merge' in edit ? { merge: renameInstanceRef(edit.merge, batch) } : edit;
}

function renameInstanceRef(spec: Record<string, unknown>, batch: number): Record<string, unknown> {
  const ref = spec.instanceRef as { name?: unknown } | undefined;
  if (typeof ref?.name !== 'string' || !/^i-\d+$/.test(ref.name)) return spec;
  return { ...spec, instanceRef: { ...ref, name: `b${batch}-${ref.name}` } };
}

interface Made {
  resource: typeof R.ServiceInstance;
  name: string;
}

/** Creates the objects; those the API server refuses (422, 400) are counted, not kept. */
async function createAll(
  api: KubeApi,
  resource: typeof R.ServiceInstance,
  objects: Array<{ name: string; spec: Record<string, unknown> }>,
  tally: Tally,
): Promise<Made[]> {
  const made: Made[] = [];
  for (const { name, spec } of objects) {
    try {
      await api.client.create(resource, { metadata: { name, namespace: NS }, spec } as KubeObject);
      tally.created++;
      made.push({ resource, name });
    } catch (error) {
      if (!(error instanceof KubeApiError) || (error.status !== 422 && error.status !== 400)) throw error;
      tally.refused++;
    }
  }
  return made;
}

type Reconciled = ServiceInstance | ServiceBinding;

/**
 * Its Failed or Ready condition with a reason, once no operation is under way (observedGeneration
 * is not required: it only moves when an operation starts, not when a spec is refused).
 */
function conditionOf(object: Reconciled): Condition | undefined {
  const status = object.status;
  if (status?.currentOperation || status?.asyncOpInProgress) return undefined;
  const conditions = status?.conditions ?? [];
  return (
    conditions.find((c) => c.type === 'Failed' && c.reason) ?? conditions.find((c) => c.type === 'Ready' && c.reason)
  );
}

async function currentObjects(api: KubeApi, made: Made[]): Promise<Reconciled[]> {
  const [instances, bindings] = await Promise.all([
    api.client.list<ServiceInstance>(R.ServiceInstance, { namespace: NS }),
    api.client.list<ServiceBinding>(R.ServiceBinding, { namespace: NS }),
  ]);
  const wanted = new Set(made.map((m) => `${m.resource.kind}/${m.name}`));
  return [
    ...instances.items.filter((o) => wanted.has(`ServiceInstance/${o.metadata.name}`)),
    ...bindings.items.filter((o) => wanted.has(`ServiceBinding/${o.metadata.name}`)),
  ];
}

/** Waits until every object has a Ready or Failed condition with a reason; the ones that did not, with their specs. */
async function waitForConditions(api: KubeApi, made: Made[]): Promise<string[]> {
  let without: Reconciled[] = [];
  try {
    await waitFor(
      async () => {
        without = (await currentObjects(api, made)).filter((o) => !conditionOf(o));
        return without.length === 0;
      },
      CONDITION_TIMEOUT_MS,
      'conditions',
    );
    return [];
  } catch {
    return without.map(
      (o) =>
        `${o.metadata.name} (generation ${o.metadata.generation}): spec ${JSON.stringify(o.spec).slice(0, 300)}; ` +
        `status ${JSON.stringify(o.status ?? {}).slice(0, 500)}`,
    );
  }
}

/** Merges each patch into its object's spec (read, change, write); edits the API server refuses are counted. */
async function editAll(
  api: KubeApi,
  made: Made[],
  edits: Array<{ resource: typeof R.ServiceInstance; name: string; patch: SpecEdit | undefined }>,
  tally: Tally,
): Promise<void> {
  const accepted = new Set(made.map((m) => `${m.resource.kind}/${m.name}`));
  for (const { resource, name, patch } of edits) {
    if (!patch || !accepted.has(`${resource.kind}/${name}`)) continue;
    try {
      await edit<KubeObject & { spec: Record<string, unknown> }>(api, resource, name, NS, (object) => {
        object.spec = applyEdit(object.spec, patch);
      });
      tally.edited++;
    } catch (error) {
      if (!(error instanceof KubeApiError) || (error.status !== 422 && error.status !== 400)) throw error;
      tally.refused++;
    }
  }
}

async function deleteAll(api: KubeApi, made: Made[]): Promise<void> {
  for (const { resource, name } of made) {
    await api.client.delete(resource, name, NS).catch((error: unknown) => {
      if (!(error instanceof KubeApiError && error.isNotFound)) throw error;
    });
  }
}

/** The controller process has not exited and its /healthz answers. */
async function assertAlive(controller: ControllerProcess): Promise<void> {
  assert.equal(controller.child.exitCode, null, `the controller exited: ${controller.logs.slice(-20).join('\n')}`);
  assert.equal(controller.child.signalCode, null, 'the controller was killed');
  const res = await fetch(`http://127.0.0.1:${controller.port}/healthz`);
  assert.equal(res.status, 200, 'the controller /healthz');
}
