/**
 * Property-based fuzzing of every OSB endpoint (fast-check): random ids, query strings, headers,
 * encodings, body shapes and sizes, generated from the request schemas and the catalog, and
 * near-valid mutations of valid requests (test/osb-fuzz-requests.ts).
 *
 * Properties: no answer is a 5xx and every request gets a complete answer; every error is a
 * JSON object with a string `description`; a request that must be refused gets a 4xx and
 * changes no row of Depot's state (row digests before and after); the process stays up and
 * still provisions afterwards.
 *
 * The seed changes every run; it is printed, and a failure prints the seed and the path of the
 * shrunk counterexample. Replay (docs/testing.md, "Fuzzing"): FUZZ_SEED=<seed> [FUZZ_PATH=<path>]
 * node --import tsx --test --test-name-pattern='<the failing test>' test/fuzz-osb.test.ts
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import type { CatalogResponse } from '../osb/index.js';
import { TEST_CATALOG_FILE } from '../testing/test-offering.js';
import { FuzzClient, answerProblem, batchOf, inParallel, type Answer } from './fuzz-client.js';
import {
  ASYNC,
  SERVICE_ID,
  SMALL_PLAN_ID,
  bindBody,
  bindingPath,
  instancePath,
  operationOf,
  osb,
  provisionInstance,
  rowDigests,
  startDepot,
  waitForOperation,
  type TestDepot,
} from './helpers.js';
import { lifecycle, runLifecycle } from './osb-fuzz-lifecycles.js';
import {
  describeRequest,
  osbGenerators,
  type FuzzPlan,
  type FuzzRequest,
  type FuzzService,
  type FuzzWorld,
} from './osb-fuzz-requests.js';
import type { JsonSchema } from './json-schema-arbitrary.js';

/** Requests of the first phase: batches of BATCH, CONCURRENCY in flight, digests around each batch. */
const BATCH = 100;
const BATCHES = 100;
const CONCURRENCY = 12;
/** The second phase: LIFECYCLE_RUNS runs of LIFECYCLES lifecycles side by side (not shrunk: they create rows). */
const LIFECYCLES = 6;
const LIFECYCLE_RUNS = 15;
const REAL_LIFECYCLES = 2;
/** Test plans whose operations end at once (fail or succeed) and never answer a 5xx. */
const LIFECYCLE_PLANS = [
  'ok',
  'not-bindable',
  'provision-fail400',
  'update-fail400',
  'bind-fail400',
  'async-provision-fail',
  'async-update-fail',
];

const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
const replay = { seed, ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}) };

const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const SINGLE_SERVICE_ID = '0e570001-7e57-4000-8000-000000000000';
const TEST_PLAN = {
  ok: '0e570000-7e57-4000-8000-000000000001',
  asyncProvisionFail: '0e570000-7e57-4000-8000-000000000013',
  lastOperationFail400: '0e570000-7e57-4000-8000-000000000016',
  notBindable: '0e570000-7e57-4000-8000-000000000018',
  single: '0e570001-7e57-4000-8000-000000000001',
};

/** Test plans that answer a 5xx on purpose (an http fault of status >= 500): left out of the requests. */
function plansFailingOnPurpose(): Set<string> {
  type Doc = {
    services: Array<{ plans: Array<{ id: string; 'x-depot'?: { faults?: Record<string, { status?: number }> } }> }>;
  };
  const doc = parseYaml(readFileSync(TEST_CATALOG_FILE, 'utf8'), { merge: true }) as Doc;
  const ids = doc.services.flatMap((s) =>
    s.plans
      .filter((p) => Object.values(p['x-depot']?.faults ?? {}).some((f) => (f.status ?? 0) >= 500))
      .map((p) => p.id),
  );
  return new Set(ids);
}

/** The catalog as the generators see it: every service and plan, with its schemas. */
function worldOf(catalog: CatalogResponse): FuzzWorld {
  const excluded = plansFailingOnPurpose();
  const services = catalog.services.map((service) => ({
    id: service.id,
    name: service.name,
    plans: service.plans
      .filter((plan) => !excluded.has(plan.id))
      .map((plan): FuzzPlan => ({
        id: plan.id,
        name: plan.name,
        ...(plan.maintenance_info ? { maintenanceVersion: plan.maintenance_info.version } : {}),
        schemas: {
          provision: plan.schemas?.service_instance?.create?.parameters as JsonSchema | undefined,
          update: plan.schemas?.service_instance?.update?.parameters as JsonSchema | undefined,
          bind: plan.schemas?.service_binding?.create?.parameters as JsonSchema | undefined,
        },
      })),
  }));
  return { services, instances: [], operations: [] };
}

describe('fuzzing the OSB API', () => {
  let depot: TestDepot;
  let world: FuzzWorld;
  let client: FuzzClient;
  let requests = 0;
  let fuzzMs = 0;

  /** Provisions a fixture (accepts_incomplete) and waits; records it and its operation. */
  async function fixture(
    serviceId: string,
    planId: string,
    state: 'live' | 'failed' | 'deleted',
    bindings: Array<{ live: boolean }> = [],
  ): Promise<void> {
    const id = randomUUID();
    const body = {
      service_id: serviceId,
      plan_id: planId,
      organization_guid: 'fixture-org',
      space_guid: 'fixture-space',
    };
    const res = await osb(depot).put(`${instancePath(id)}${ASYNC}`, body);
    assert.equal(res.status, 202, res.text);
    world.operations.push(operationOf(res));
    if (planId === TEST_PLAN.lastOperationFail400) {
      // Its last_operation always answers 400: wait for the row instead.
      await waitForRow(id, state === 'failed' ? 'create_failed' : 'provisioned');
    } else {
      const last = await waitForOperation(depot, instancePath(id), operationOf(res));
      assert.equal(last.state, state === 'failed' ? 'failed' : 'succeeded');
    }
    const made: FuzzWorld['instances'][number] = { id, serviceId, planId, state, bindings: [] };
    for (const { live } of bindings) {
      const bindingId = randomUUID();
      const bound = await osb(depot).put(bindingPath(id, bindingId), { service_id: serviceId, plan_id: planId });
      assert.equal(bound.status, 201, bound.text);
      if (!live) {
        await osb(depot)
          .delete(`${bindingPath(id, bindingId)}?service_id=${serviceId}&plan_id=${planId}`)
          .expect(200);
      }
      made.bindings.push({ id: bindingId, live });
    }
    if (state === 'deleted') {
      const gone = await osb(depot).delete(`${instancePath(id)}${ASYNC}&service_id=${serviceId}&plan_id=${planId}`);
      assert.equal(gone.status, 202, gone.text);
      world.operations.push(operationOf(gone));
      assert.equal((await waitForOperation(depot, instancePath(id), operationOf(gone))).state, 'succeeded');
    }
    world.instances.push(made);
  }

  async function waitForRow(id: string, state: string): Promise<void> {
    for (let i = 0; i < 400; i++) {
      const { rows } = await depot.depot.pool.query<{ state: string }>(
        'select state from service_instances where id = $1',
        [id],
      );
      if (rows[0]?.state === state) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`instance ${id} did not become ${state}`);
  }

  before(async () => {
    depot = await startDepot('fuzz-osb', { env: { TEST_OFFERING: 'enabled' } });
    const catalog = (await osb(depot).get('/v2/catalog').expect(200)).body as CatalogResponse;
    world = worldOf(catalog);
    await fixture(TEST_SERVICE_ID, TEST_PLAN.ok, 'live', [{ live: true }, { live: true }, { live: false }]);
    await fixture(TEST_SERVICE_ID, TEST_PLAN.ok, 'deleted', [{ live: false }]);
    await fixture(TEST_SERVICE_ID, TEST_PLAN.asyncProvisionFail, 'failed');
    await fixture(TEST_SERVICE_ID, TEST_PLAN.notBindable, 'live');
    await fixture(TEST_SERVICE_ID, TEST_PLAN.lastOperationFail400, 'live', [{ live: true }]);
    await fixture(SINGLE_SERVICE_ID, TEST_PLAN.single, 'live', [{ live: true }]);
    // One real database (bounded: the only real provision of the phase), to reach its plan's checks.
    const pgId = await provisionInstance(depot);
    const pgBinding = randomUUID();
    await osb(depot).put(bindingPath(pgId, pgBinding), bindBody()).expect(201);
    world.instances.push({
      id: pgId,
      serviceId: SERVICE_ID,
      planId: SMALL_PLAN_ID,
      state: 'live',
      bindings: [{ id: pgBinding, live: true }],
    });
    client = new FuzzClient(depot.baseUrl, CONCURRENCY);
    client.takeStatuses();
  });

  after(async () => {
    client?.close();
    await depot?.close();
  });

  it(`${BATCH * BATCHES} mutated requests: no 5xx, JSON errors, every refused request changes no row`, async (t) => {
    t.diagnostic(`seed ${seed} (replay: FUZZ_SEED=${seed})`);
    const { request } = osbGenerators(world);
    const started = Date.now();
    const sentBefore = client.sent;
    await fc.assert(
      fc.asyncProperty(batchOf(request, BATCH), async (batch) => {
        const before = await rowDigests(depot);
        const problems = (await sendAll(client, batch)).filter((p): p is string => p !== undefined);
        const after = await rowDigests(depot);
        assert.deepEqual(problems, [], `${problems.length} bad answers`);
        assert.deepEqual(after, before, 'a refused request changed rows of Depot state');
      }),
      { ...replay, numRuns: BATCHES, includeErrorInReport: true },
    );
    fuzzMs += Date.now() - started;
    requests += client.sent - sentBefore;
    t.diagnostic(`${client.sent - sentBefore} requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    t.diagnostic(`answers: ${client.takeStatuses()}`);
  });

  it(`${LIFECYCLES * LIFECYCLE_RUNS} lifecycles of valid requests, refused ones between the steps`, async (t) => {
    const services = world.services;
    const byName = (serviceId: string, names: string[]) => {
      const service = services.find((s) => s.id === serviceId)!;
      return service.plans.filter((p) => names.includes(p.name)).map((p): [FuzzService, FuzzPlan] => [service, p]);
    };
    const testPlans = [...byName(TEST_SERVICE_ID, LIFECYCLE_PLANS), ...byName(SINGLE_SERVICE_ID, ['default'])];
    const realPlans = byName(SERVICE_ID, ['small']);
    assert.equal(testPlans.length, LIFECYCLE_PLANS.length + 1, 'a lifecycle plan is missing from the catalog');
    const context = { send: (r: FuzzRequest) => client.send(r), digest: (id: string) => rowDigests(depot, id) };
    const started = Date.now();
    const sentBefore = client.sent;
    let realRuns = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(lifecycle(services, testPlans), {
          minLength: LIFECYCLES,
          maxLength: LIFECYCLES,
          selector: (l) => l.instanceId,
        }),
        lifecycle(services, realPlans),
        async (lifecycles, real) => {
          // A bounded number of lifecycles create a real database (with parameters from its plan's schema).
          const all = realRuns++ < REAL_LIFECYCLES ? [...lifecycles, real] : lifecycles;
          const problems = (await Promise.all(all.map((l) => runLifecycle(l, context)))).flat();
          assert.deepEqual(problems, [], `${problems.length} bad answers`);
        },
      ),
      { ...replay, numRuns: LIFECYCLE_RUNS, endOnFailure: true, includeErrorInReport: true },
    );
    fuzzMs += Date.now() - started;
    requests += client.sent - sentBefore;
    t.diagnostic(`${client.sent - sentBefore} requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    t.diagnostic(`answers: ${client.takeStatuses()}`);
  });

  it('afterwards: the process is up, answers /healthz and provisions', async (t) => {
    t.diagnostic(`in all: ${requests} fuzzed requests in ${(fuzzMs / 1000).toFixed(1)} s`);
    const health = await fetch(`${depot.baseUrl}/healthz`);
    assert.equal(health.status, 200);
    const id = randomUUID();
    const res = await osb(depot).put(`${instancePath(id)}${ASYNC}`, {
      service_id: TEST_SERVICE_ID,
      plan_id: TEST_PLAN.ok,
      organization_guid: 'o',
      space_guid: 's',
    });
    assert.equal(res.status, 202, res.text);
    assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res))).state, 'succeeded');
    // Nothing went wrong inside either, but for the jobs the test plans fail on purpose.
    const severe = depot.logs
      .flatMap((chunk) => chunk.split('\n'))
      .filter((line) => line.trim() !== '' && (JSON.parse(line) as { level?: number }).level! >= 50)
      .filter((line) => !line.includes('"message":"injected fault: '));
    assert.deepEqual(severe.slice(0, 5), [], `${severe.length} lines logged at level error or above`);
  });
});

/** Sends a batch; what is wrong with each answer (or its missing answer), undefined if nothing. */
async function sendAll(client: FuzzClient, batch: FuzzRequest[]): Promise<Array<string | undefined>> {
  return inParallel(batch, CONCURRENCY, async (request) => {
    let answer: Answer;
    try {
      answer = await client.send(request);
    } catch (error) {
      return `${(error as Error).message}: ${describeRequest(request)}`;
    }
    return answerProblem(request, answer);
  });
}
