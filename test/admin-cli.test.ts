/**
 * The admin CLI (`depot`, bin/depot.js), run as a child process against the state database of
 * a real Depot with the test offering: instances, bindings and operations in various states.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { withDatabase } from '../broker/config.js';
import {
  ADMIN_URL,
  ASYNC,
  ENCRYPTION_KEYS,
  REDIS_URL,
  bindingPath,
  dropDatabase,
  instancePath,
  operationOf,
  osb,
  startDepot,
  waitForOperation,
  type TestDepot,
} from './helpers.js';
import { runDepotCli, type CliRun } from './depot-cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const SINGLE_SERVICE_ID = '0e570001-7e57-4000-8000-000000000000';
const PLAN = {
  ok: '0e570000-7e57-4000-8000-000000000001',
  asyncProvisionFail: '0e570000-7e57-4000-8000-000000000013',
  asyncUpdateFail: '0e570000-7e57-4000-8000-000000000014',
  asyncDeprovisionFail3x: '0e570000-7e57-4000-8000-000000000015',
  single: '0e570001-7e57-4000-8000-000000000001',
} as const;

/** Secrets the state holds: no output may show them without --show-credentials. */
const BINDING_PASSWORD = `binding-password-${randomUUID()}`;
const PARAMETER_SECRET = `parameter-secret-${randomUUID()}`;

type Run = CliRun;

let target: TestDepot;
let cliEnv: Record<string, string>;
/** Every output of a run without --show-credentials, to look for secrets in. */
const redactedOutputs: string[] = [];

/** `node bin/depot.js …` with the broker's configuration. */
async function depot(...args: string[]): Promise<Run> {
  const run = await runDepotCli(cliEnv, args);
  if (!args.includes('--show-credentials')) redactedOutputs.push(run.stdout, run.stderr);
  return run;
}

/** A run that must succeed; its stdout. */
async function ok(...args: string[]): Promise<string> {
  const run = await depot(...args);
  assert.equal(run.code, 0, `depot ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run.stdout;
}

async function okJson<T>(...args: string[]): Promise<T> {
  return JSON.parse(await ok(...args, '--json')) as T;
}

interface Listed {
  id: string;
  state: string;
  type?: string;
}
const ids = (rows: Listed[]) => rows.map((r) => r.id).sort();

const provisionBody = (planId: string, overrides: Record<string, unknown> = {}) => ({
  service_id: planId === PLAN.single ? SINGLE_SERVICE_ID : TEST_SERVICE_ID,
  plan_id: planId,
  organization_guid: 'org-a',
  space_guid: 'space-a',
  ...overrides,
});
const deleteQuery = (planId: string) => `service_id=${TEST_SERVICE_ID}&plan_id=${planId}`;

async function provision(planId: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const id = randomUUID();
  const res = await osb(target).put(`${instancePath(id)}${ASYNC}`, provisionBody(planId, overrides));
  assert.equal(res.status, 202, JSON.stringify(res.body));
  await waitForOperation(target, instancePath(id), operationOf(res));
  return id;
}

async function bind(instanceId: string, planId: string, parameters: Record<string, unknown>): Promise<string> {
  const id = randomUUID();
  const res = await osb(target).put(`${bindingPath(instanceId, id)}${ASYNC}`, {
    service_id: TEST_SERVICE_ID,
    plan_id: planId,
    bind_resource: { app_guid: 'app-guid' },
    parameters,
  });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  assert.equal((await waitForOperation(target, bindingPath(instanceId, id), operationOf(res))).state, 'succeeded');
  return id;
}

/** A DELETE of the platform's, accepted and ended; the operation id. */
async function deprovision(instanceId: string, planId: string): Promise<string> {
  const res = await osb(target).delete(`${instancePath(instanceId)}${ASYNC}&${deleteQuery(planId)}`);
  assert.equal(res.status, 202, JSON.stringify(res.body));
  await waitForOperation(target, instancePath(instanceId), operationOf(res));
  return operationOf(res);
}

const fixture = {} as {
  instanceA: string;
  bindingA: string;
  kubernetes: string;
  single: string;
  createFailed: string;
  failedProvision: string;
  deprovisionFails: string;
  failedDeprovisions: string[];
  updateFails: string;
  failedUpdate: string;
  unbindFails: string;
  bindingU: string;
  failedUnbind: string;
};

before(async () => {
  target = await startDepot('admin-cli', { env: { TEST_OFFERING: 'enabled' } });
  cliEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATABASE_URL: target.depot.config.databaseUrl,
    ENCRYPTION_KEYS,
    REDIS_URL,
    QUEUE_PREFIX: target.depot.config.queuePrefix,
    REDIS_SERVICE_URL: target.depot.config.redisServiceUrl,
    POSTGRES_SERVICE_URL: ADMIN_URL,
    TEST_OFFERING: 'enabled',
  };
  fixture.instanceA = await provision(PLAN.ok, { parameters: { admin_password: PARAMETER_SECRET } });
  fixture.bindingA = await bind(fixture.instanceA, PLAN.ok, {
    credentials: { username: 'app', password: BINDING_PASSWORD },
  });
  fixture.kubernetes = await provision(PLAN.ok, {
    organization_guid: 'cluster-1',
    space_guid: 'team-k',
    context: { platform: 'kubernetes', namespace: 'team-k', clusterid: 'cluster-1', instance_name: 'k' },
  });
  fixture.single = await provision(PLAN.single, { organization_guid: 'org-b', space_guid: 'space-b' });

  fixture.createFailed = await provision(PLAN.asyncProvisionFail);
  const [provisionOp] = (
    await target.depot.pool.query<{ id: string }>('select id from operations where instance_id = $1', [
      fixture.createFailed,
    ])
  ).rows;
  fixture.failedProvision = provisionOp!.id;

  // Fails three deprovisions per instance, then succeeds: two here, the third by `depot retry`.
  fixture.deprovisionFails = await provision(PLAN.asyncDeprovisionFail3x);
  fixture.failedDeprovisions = [
    await deprovision(fixture.deprovisionFails, PLAN.asyncDeprovisionFail3x),
    await deprovision(fixture.deprovisionFails, PLAN.asyncDeprovisionFail3x),
  ];

  fixture.updateFails = await provision(PLAN.asyncUpdateFail);
  const patch = await osb(target).patch(`${instancePath(fixture.updateFails)}${ASYNC}`, {
    service_id: TEST_SERVICE_ID,
    parameters: { size: 'large', token: PARAMETER_SECRET },
  });
  assert.equal(patch.status, 202, JSON.stringify(patch.body));
  fixture.failedUpdate = operationOf(patch);
  assert.equal(
    (await waitForOperation(target, instancePath(fixture.updateFails), fixture.failedUpdate)).state,
    'failed',
  );

  // No test plan fails an unbind in its job: this instance's recorded settings (the ones its
  // operations run with) get a job fault for one unbind, so the worker really fails it once.
  fixture.unbindFails = await provision(PLAN.ok, { organization_guid: 'org-u' });
  fixture.bindingU = await bind(fixture.unbindFails, PLAN.ok, {});
  await target.depot.pool.query('update service_instances set plan_settings = $2 where id = $1', [
    fixture.unbindFails,
    { faults: { unbind: { mode: 'job', times: 1 } } },
  ]);
  const unbind = await osb(target).delete(
    `${bindingPath(fixture.unbindFails, fixture.bindingU)}${ASYNC}&${deleteQuery(PLAN.ok)}`,
  );
  assert.equal(unbind.status, 202, JSON.stringify(unbind.body));
  fixture.failedUnbind = operationOf(unbind);
  const unbound = await waitForOperation(
    target,
    bindingPath(fixture.unbindFails, fixture.bindingU),
    fixture.failedUnbind,
  );
  assert.equal(unbound.state, 'failed');
});

after(async () => {
  await target?.close();
});

describe('depot help and the bin', () => {
  it('lists the commands that exist, and package.json runs bin/depot.js as `depot`', async () => {
    const help = await ok('help');
    for (const name of ['instances', 'bindings', 'operations', 'operation', 'retry', 'drift', 'orphans']) {
      assert.match(help, new RegExp(`^  ${name} `, 'm'));
    }
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(pkg.bin.depot, 'bin/depot.js');
    assert.ok((statSync(path.join(ROOT, pkg.bin.depot)).mode & 0o111) !== 0, 'bin/depot.js is executable');
    assert.match(readFileSync(path.join(ROOT, pkg.bin.depot), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it('an unknown command prints the usage and exits 2; a missing argument or unknown flag too', async () => {
    const unknown = await depot('instancez');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "instancez"/);
    assert.match(unknown.stderr, /Usage: depot COMMAND/);
    const missing = await depot('bindings');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /INSTANCE is missing/);
    const flag = await depot('instances', '--colour');
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--colour/);
  });
});

describe('depot instances', () => {
  it('prints a table of the live instances, with service and plan names', async () => {
    const out = await ok('instances');
    assert.match(out, /^INSTANCE +SERVICE +PLAN +STATE +ORG +SPACE +NAMESPACE +CREATED$/m);
    for (const id of [fixture.instanceA, fixture.kubernetes, fixture.single, fixture.createFailed]) {
      assert.ok(out.includes(id), `${id} is listed`);
    }
    assert.match(
      out,
      new RegExp(`^${fixture.kubernetes} +depot-test +ok +provisioned +cluster-1 +team-k +team-k `, 'm'),
    );
    assert.match(out, new RegExp(`^${fixture.createFailed} +depot-test +async-provision-fail +create_failed `, 'm'));
  });

  it('filters by org, space, namespace, service, plan and state (--json)', async () => {
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--org', 'org-b')), [fixture.single]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--space', 'space-b')), [fixture.single]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--namespace', 'team-k')), [fixture.kubernetes]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--service', 'depot-test-single')), [fixture.single]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--service', SINGLE_SERVICE_ID)), [fixture.single]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--plan', 'async-update-fail')), [fixture.updateFails]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--plan', PLAN.asyncUpdateFail)), [fixture.updateFails]);
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--state', 'create_failed')), [fixture.createFailed]);
    const okPlan = ids(
      await okJson<Listed[]>('instances', '--service', 'depot-test', '--plan', 'ok', '--org', 'org-a'),
    );
    assert.deepEqual(okPlan, [fixture.instanceA]);
  });

  it('shows parameter keys, their values only with --show-credentials', async () => {
    const [redacted] = await okJson<Array<{ parameters: Record<string, string> }>>(
      'instances',
      '--plan',
      'ok',
      '--org',
      'org-a',
    );
    assert.deepEqual(redacted!.parameters, { admin_password: '[redacted]' });
    const [shown] = await okJson<Array<{ parameters: Record<string, string> }>>(
      'instances',
      '--plan',
      'ok',
      '--org',
      'org-a',
      '--show-credentials',
    );
    assert.deepEqual(shown!.parameters, { admin_password: PARAMETER_SECRET });
  });

  it('refuses an unknown --service, --plan or --state with exit 2 naming the flag', async () => {
    for (const [flag, value] of [
      ['--service', 'no-such-service'],
      ['--plan', 'no-such-plan'],
      ['--state', 'sleeping'],
    ] as const) {
      const run = await depot('instances', flag, value);
      assert.equal(run.code, 2, `${flag} ${value}`);
      assert.match(run.stderr, new RegExp(`${flag} .*${value}`));
    }
  });
});

describe('depot bindings', () => {
  it('lists the bindings, credential keys without their values', async () => {
    const out = await ok('bindings', fixture.instanceA);
    assert.match(out, new RegExp(`^${fixture.bindingA} +bound +app-guid `, 'm'));
    assert.match(out, /"password":"\[redacted\]"/);
    assert.ok(!out.includes(BINDING_PASSWORD));
    const [binding] = await okJson<Array<{ id: string; response: { credentials: Record<string, string> } }>>(
      'bindings',
      fixture.instanceA,
    );
    assert.equal(binding!.id, fixture.bindingA);
    assert.deepEqual(binding!.response.credentials, { username: '[redacted]', password: '[redacted]' });
  });

  it('prints the credentials with --show-credentials', async () => {
    const table = await ok('bindings', fixture.instanceA, '--show-credentials');
    assert.ok(table.includes(BINDING_PASSWORD));
    const [binding] = await okJson<Array<{ response: { credentials: Record<string, string> } }>>(
      'bindings',
      fixture.instanceA,
      '--show-credentials',
    );
    assert.deepEqual(binding!.response.credentials, { username: 'app', password: BINDING_PASSWORD });
  });

  it('an unknown instance exits 1 and says so', async () => {
    const unknown = randomUUID();
    const run = await depot('bindings', unknown);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`service instance ${unknown} does not exist`));
  });
});

describe('depot operations and depot operation', () => {
  it('lists operations; --failed only the failed ones; --since a recent window', async () => {
    const out = await ok('operations');
    assert.match(out, /^OPERATION +TYPE +STATE +INSTANCE +BINDING +CREATED +DESCRIPTION$/m);
    assert.ok(out.includes(fixture.failedUpdate));
    const failed = await okJson<Listed[]>('operations', '--failed');
    assert.ok(failed.every((op) => op.state === 'failed'));
    for (const id of [
      fixture.failedProvision,
      ...fixture.failedDeprovisions,
      fixture.failedUpdate,
      fixture.failedUnbind,
    ]) {
      assert.ok(ids(failed).includes(id), `${id} is listed as failed`);
    }
    const recent = await okJson<Listed[]>('operations', '--since', '1h');
    assert.ok(recent.length > failed.length, 'the succeeded ones too');
    const none = await okJson<Listed[]>('operations', '--since', '1h', '--failed');
    assert.deepEqual(ids(none), ids(failed));
  });

  it('a bad --since exits 2 naming the flag', async () => {
    const run = await depot('operations', '--since', 'yesterday');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--since must be a duration such as 30m, 1h or 2d/);
  });

  it('shows an operation: its request with parameter values redacted, its description and attempts', async () => {
    const op = await okJson<{
      type: string;
      state: string;
      description: string;
      update_repeatable: boolean;
      request: { parameters: Record<string, string> };
      attempts: Listed[];
    }>('operation', fixture.failedUpdate);
    assert.equal(op.type, 'update');
    assert.equal(op.state, 'failed');
    assert.match(op.description, /^Update failed: injected fault/);
    assert.equal(op.update_repeatable, true);
    assert.deepEqual(op.request.parameters, { size: '[redacted]', token: '[redacted]' });
    assert.deepEqual(ids(op.attempts), [fixture.failedUpdate]);
    const shown = await okJson<{ request: { parameters: Record<string, string> } }>(
      'operation',
      fixture.failedUpdate,
      '--show-credentials',
    );
    assert.equal(shown.request.parameters.token, PARAMETER_SECRET);

    const deprovision = await ok('operation', fixture.failedDeprovisions[1]!);
    assert.match(
      deprovision,
      /^description: +Deprovision failed: injected fault: deprovision failed \(attempt 2 of 3\)$/m,
    );
    assert.match(deprovision, /^attempt: +2 of 3 \(as the description says\)$/m);
    for (const id of fixture.failedDeprovisions) assert.ok(deprovision.includes(id), 'both DELETEs are listed');
  });

  it('an unknown operation exits 1 and says so', async () => {
    const run = await depot('operation', 'no-such-operation');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /operation no-such-operation does not exist/);
  });
});

describe('depot retry', () => {
  it('refuses what the spec does not let be repeated as it is, exit 1 with the reason', async () => {
    const provision = await depot('retry', fixture.failedProvision);
    assert.equal(provision.code, 1);
    assert.match(provision.stderr, /a failed provision is not repeated as it is: the platform deprovisions/);
    const [succeeded] = (
      await target.depot.pool.query<{ id: string }>(`select id from operations where instance_id = $1`, [
        fixture.instanceA,
      ])
    ).rows;
    const notFailed = await depot('retry', succeeded!.id);
    assert.equal(notFailed.code, 1);
    assert.match(notFailed.stderr, /is succeeded; only a failed operation can be retried/);
    const older = await depot('retry', fixture.failedDeprovisions[0]!);
    assert.equal(older.code, 1);
    assert.match(
      older.stderr,
      new RegExp(`not the latest of instance .*${fixture.failedDeprovisions[1]} came after it`),
    );
    const unknown = await depot('retry', 'no-such-operation');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /operation no-such-operation does not exist/);
  });

  it('starts a failed deprovision again until it succeeds: the instance is deleted', async () => {
    const instance = fixture.deprovisionFails;
    // The plan fails three deprovisions: the platform sent two, the first retry is the third.
    const first = await okJson<{ operation: string; type: string; retries: string }>(
      'retry',
      fixture.failedDeprovisions[1]!,
    );
    assert.equal(first.type, 'deprovision');
    assert.equal(first.retries, fixture.failedDeprovisions[1]);
    const third = await waitForOperation(target, instancePath(instance), first.operation);
    assert.equal(third.state, 'failed');
    assert.match(third.description ?? '', /attempt 3 of 3/);
    assert.equal((await okJson<Listed[]>('instances', '--plan', 'async-deprovision-fail-3x'))[0]!.state, 'provisioned');

    const out = await ok('retry', first.operation);
    const started = /^Started deprovision operation (\S+) \(retrying /m.exec(out)?.[1];
    assert.ok(started, out);
    assert.equal((await waitForOperation(target, instancePath(instance), started)).state, 'succeeded');
    assert.equal((await okJson<{ state: string }>('operation', started)).state, 'succeeded');
    assert.deepEqual(ids(await okJson<Listed[]>('instances', '--plan', 'async-deprovision-fail-3x')), []);
    assert.ok(ids(await okJson<Listed[]>('instances', '--state', 'deleted')).includes(instance));
  });

  it('starts a failed unbind again: the binding is deleted', async () => {
    assert.equal((await okJson<Listed[]>('bindings', fixture.unbindFails))[0]!.state, 'bound');
    const retried = await okJson<{ operation: string; type: string; binding_id: string }>(
      'retry',
      fixture.failedUnbind,
    );
    assert.equal(retried.type, 'unbind');
    assert.equal(retried.binding_id, fixture.bindingU);
    const last = await waitForOperation(target, bindingPath(fixture.unbindFails, fixture.bindingU), retried.operation);
    assert.equal(last.state, 'succeeded');
    assert.equal((await okJson<Listed[]>('bindings', fixture.unbindFails))[0]!.state, 'deleted');
  });

  it('repeats a failed update (update_repeatable) with the same request', async () => {
    const retried = await okJson<{ operation: string; type: string }>('retry', fixture.failedUpdate);
    assert.equal(retried.type, 'update');
    // This plan fails every update: the repeat fails as the first did, having asked the same.
    await waitForOperation(target, instancePath(fixture.updateFails), retried.operation);
    const repeat = await okJson<{ state: string; request: { parameters: Record<string, string> } }>(
      'operation',
      retried.operation,
      '--show-credentials',
    );
    assert.equal(repeat.state, 'failed');
    assert.deepEqual(repeat.request.parameters, { size: 'large', token: PARAMETER_SECRET });
  });
});

describe('the state database', () => {
  it('is not migrated by the CLI: an empty database is named, exit 1', async () => {
    const database = 'depot_test_admin_cli_empty';
    await dropDatabase(database);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`create database ${database}`);
    await admin.end();
    try {
      const saved = cliEnv;
      cliEnv = { ...saved, DATABASE_URL: withDatabase(ADMIN_URL, database) };
      const run = await depot('instances').finally(() => (cliEnv = saved));
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        /the state database depot_test_admin_cli_empty is not migrated \(pending: 001_initial\.sql/,
      );
      const empty = new pg.Client({ connectionString: withDatabase(ADMIN_URL, database) });
      await empty.connect();
      const tables = await empty
        .query<{ n: number }>(`select count(*)::int as n from information_schema.tables where table_schema = 'public'`)
        .finally(() => empty.end());
      assert.equal(tables.rows[0]!.n, 0, 'nothing was created');
    } finally {
      await dropDatabase(database);
    }
  });
});

describe('credentials', () => {
  it('no output without --show-credentials holds a password or a parameter value', () => {
    assert.ok(redactedOutputs.length > 20, 'the runs above were collected');
    for (const output of redactedOutputs) {
      assert.ok(!output.includes(BINDING_PASSWORD), 'no binding password');
      assert.ok(!output.includes(PARAMETER_SECRET), 'no parameter value');
    }
  });
});
