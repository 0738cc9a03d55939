/**
 * deploy/grafana/depot-dashboard.json and deploy/prometheus/depot-rules.yaml query only metrics
 * that Depot or the catalog controller exposes, checked against a live scrape of each; the rules
 * are a well-formed PrometheusRule; and the gauges they rest on say what is so: operations in
 * progress, the queue, readiness (and a scrape still answers while PostgreSQL is down), and the
 * controller's Ready and Failed objects.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { parse } from 'yaml';
import { withDatabase } from '../broker/config.js';
import {
  ADMIN_URL,
  ASYNC,
  dropDatabase,
  instancePath,
  operationOf,
  osb,
  provisionBody,
  waitForOperation,
  type TestDepot,
} from './helpers.js';
import {
  R,
  brokerAuthSecret,
  create,
  instance,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/depot-dashboard.json');
const RULES = path.join(ROOT, 'deploy/prometheus/depot-rules.yaml');
const DATABASE = 'depot_test_dashboards';
const NS = 'dashboards';
const TEST_SERVICE_ID = '0e570000-7e57-4000-8000-000000000000';
const SLOW_PLAN_ID = '0e570000-7e57-4000-8000-000000000002';

// ---- PromQL: the metric names an expression selects ----

/** Words that are PromQL operators, aggregations (`sum by (x) (…)`) or modifiers, never metric names. */
const KEYWORDS = new Set([
  ...['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2'],
  ...['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk'],
  ...['quantile', 'limitk', 'limit_ratio'],
]);
/** Modifiers followed by a list of label names in parentheses. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric names an expression selects: identifiers that are not keywords, functions or
 * aggregations (followed by `(`), label names (inside `{…}` or a `by (…)` list), durations
 * (`[5m]`, `offset 5m`), numbers, strings or Grafana variables (`$__rate_interval`).
 */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const char = expr[i]!;
    if (char === '"' || char === "'" || char === '`') i = afterString(expr, i);
    else if (char === '{') i = afterMatchers(expr, i);
    else if (char === '[') i = expr.indexOf(']', i) + 1;
    else if (char === '#') i = expr.includes('\n', i) ? expr.indexOf('\n', i) : expr.length;
    else if (char === '$') i += /^\$\{?\w+\}?/.exec(rest)![0].length;
    else if (/[0-9.]/.test(char)) i += /^[0-9.]+(e[+-]?\d+)?[a-z]*/i.exec(rest)![0].length;
    else if (/[a-zA-Z_:]/.test(char)) {
      const word = /^[a-zA-Z_:][\w:]*/.exec(rest)![0];
      i += word.length;
      const call = expr.slice(i).trimStart().startsWith('(');
      if (LABEL_LISTS.has(word.toLowerCase())) {
        if (call) i = expr.indexOf(')', i) + 1;
      } else if (!KEYWORDS.has(word.toLowerCase()) && !call) names.add(word);
    } else i += 1;
  }
  return [...names];
}

function afterString(expr: string, start: number): number {
  const quote = expr[start];
  let i = start + 1;
  while (i < expr.length && expr[i] !== quote) i += expr[i] === '\\' && quote !== '`' ? 2 : 1;
  return i + 1;
}

function afterMatchers(expr: string, start: number): number {
  let i = start + 1;
  while (i < expr.length && expr[i] !== '}') {
    i = expr[i] === '"' || expr[i] === "'" || expr[i] === '`' ? afterString(expr, i) : i + 1;
  }
  return i + 1;
}

/**
 * The series names a scrape exposes: every `# TYPE` line (a histogram's or summary's with its
 * `_bucket`, `_sum` and `_count` series, which appear only once observed) and every sample.
 */
function exposedNames(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const line of scrape.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      names.add(type[1]!);
      if (type[2] === 'histogram' || type[2] === 'summary') {
        for (const suffix of ['_bucket', '_sum', '_count']) names.add(type[1]! + suffix);
      }
    } else if (!line.startsWith('#')) {
      const sample = /^[a-zA-Z_:][\w:]*/.exec(line);
      if (sample) names.add(sample[0]);
    }
  }
  return names;
}

/** The metric names `queries` select that no scrape exposes, with the query of each. */
function unexposed(queries: Array<{ where: string; expr: string }>, scrapes: string[]): string[] {
  const exposed = new Set(scrapes.flatMap((scrape) => [...exposedNames(scrape)]));
  return queries.flatMap(({ where, expr }) =>
    metricNames(expr)
      .filter((name) => !exposed.has(name))
      .map((name) => `${name} (${where}: ${expr.trim()})`),
  );
}

// ---- the files ----

interface DashboardPanel {
  title?: string;
  targets?: Array<{ expr?: string; datasource?: { uid?: string } }>;
  panels?: DashboardPanel[];
}

interface AlertRule {
  alert?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface PrometheusRule {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: { groups: Array<{ name: string; rules: AlertRule[] }> };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  title: string;
  panels: DashboardPanel[];
  templating: { list: Array<{ name: string; type: string; query: string }> };
};
const rules = parse(readFileSync(RULES, 'utf8')) as PrometheusRule;

function dashboardQueries(): Array<{ where: string; expr: string }> {
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  return panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr ?? '' })));
}

function ruleQueries(): Array<{ where: string; expr: string }> {
  return rules.spec.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr ?? '' })));
}

// ---- live Depot and controller ----

let api: KubeApi | undefined;
let proxy: TcpProxy | undefined;
let depot: TestDepot | undefined;
let controller: ControllerProcess | undefined;

function broker(): TestDepot {
  if (!depot) throw new Error('no Depot');
  return depot;
}

function catalogController(): ControllerProcess {
  if (!controller) throw new Error('no controller');
  return controller;
}

const scrapeDepot = async (): Promise<string> => (await request(broker().metricsUrl).get('/metrics').expect(200)).text;

/** The value of the sample `series` (name and labels, as exposed) in a scrape; undefined if absent. */
function sample(scrape: string, series: string): number | undefined {
  const line = scrape.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

before(async () => {
  await dropDatabase(DATABASE);
  proxy = await TcpProxy.start(ADMIN_URL, 5432);
  depot = await startTestBroker('dashboards', { DATABASE_URL: proxy.via(withDatabase(ADMIN_URL, DATABASE)) });
  api = await startKubeApi();
  await brokerAuthSecret(api, NS, 'depot-auth');
  await create(api, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
  });
  controller = await startController(api);
});

after(async () => {
  await proxy?.restore();
  await controller?.stop('SIGKILL');
  await depot?.close();
  await proxy?.close();
  await api?.stop();
  await dropDatabase(DATABASE);
});

describe('the dashboard and the alert rules', () => {
  it('query only metrics that Depot or the controller exposes (a live scrape of each)', async () => {
    await waitFor(
      async () => /^depot_controller_leader 1$/m.test(await catalogController().metrics()),
      20_000,
      'a leader',
    );
    const scrapes = [await scrapeDepot(), await catalogController().metrics()];
    const queries = [...dashboardQueries(), ...ruleQueries()];
    assert.ok(queries.length >= 20, `only ${queries.length} queries found`);
    assert.deepEqual(unexposed(queries, scrapes), []);
    // The check sees a name nothing exposes, wherever it stands in an expression.
    const madeUp = [
      { where: 'test', expr: 'sum by (type) (rate(depot_no_such_total{state="failed"}[5m]))' },
      { where: 'test', expr: 'depot_ready == 0 and on (instance) depot_not_exposed_seconds > 1' },
      { where: 'test', expr: 'histogram_quantile(0.9, rate(depot_missing_seconds_bucket[$__rate_interval]))' },
    ];
    assert.deepEqual(
      unexposed(madeUp, scrapes).map((m) => m.split(' ')[0]),
      ['depot_no_such_total', 'depot_not_exposed_seconds', 'depot_missing_seconds_bucket'],
    );
  });

  it('every metric the issue names is on the dashboard', () => {
    const queried = new Set(dashboardQueries().flatMap(({ expr }) => metricNames(expr)));
    for (const name of [
      'depot_http_request_duration_seconds_count',
      'depot_http_request_duration_seconds_bucket',
      'depot_operations_finished_total',
      'depot_operations_in_progress',
      'depot_queue_jobs',
      'depot_drift_repaired_total',
      'depot_controller_reconcile_total',
      'depot_controller_osb_requests_total',
      'depot_controller_objects_ready',
      'depot_controller_objects_failed',
    ]) {
      assert.ok(queried.has(name), name);
    }
    assert.deepEqual(
      dashboard.templating.list.map((v) => [v.name, v.type, v.query]),
      [['DS_PROMETHEUS', 'datasource', 'prometheus']],
    );
    for (const panel of dashboard.panels.filter((p) => p.targets)) {
      for (const target of panel.targets!) assert.equal(target.datasource?.uid, '${DS_PROMETHEUS}', panel.title);
    }
  });

  it('the rules are a PrometheusRule whose every alert has an expr, a for, a severity and annotations', () => {
    assert.equal(rules.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(rules.kind, 'PrometheusRule');
    assert.equal(rules.metadata.namespace, 'depot');
    const alerts = rules.spec.groups.flatMap((g) => g.rules);
    assert.deepEqual(alerts.map((a) => a.alert).sort(), [
      'DepotControllerWithoutLeader',
      'DepotDriftRepaired',
      'DepotNotReady',
      'DepotOperationOverdue',
      'DepotOperationsFailing',
      'DepotQueueGrowing',
    ]);
    for (const alert of alerts) {
      assert.ok(alert.expr?.trim(), `${alert.alert}: expr`);
      assert.match(alert.for ?? '', /^\d+[smh]$/, `${alert.alert}: for`);
      assert.match(alert.labels?.severity ?? '', /^(warning|critical)$/, `${alert.alert}: severity`);
      assert.ok(alert.annotations?.summary && alert.annotations.description, `${alert.alert}: annotations`);
    }
  });
});

describe('the gauges behind them', () => {
  it('an operation in progress, its age and its job are counted until it ends', async () => {
    const instanceId = randomUUID();
    const res = await osb(broker())
      .put(instancePath(instanceId) + ASYNC, provisionBody({ service_id: TEST_SERVICE_ID, plan_id: SLOW_PLAN_ID }))
      .expect(202);
    const during = await scrapeDepot(); // the slow plan's job takes 3 seconds
    assert.equal(sample(during, 'depot_operations_in_progress{type="provision"}'), 1);
    assert.equal(sample(during, 'depot_operations_in_progress{type="bind"}'), 0);
    assert.ok(sample(during, 'depot_operation_oldest_in_progress_seconds{type="provision"}')! > 0, during);
    const jobs = ['waiting', 'prioritized', 'active'].map((s) => sample(during, `depot_queue_jobs{state="${s}"}`)!);
    assert.equal(
      jobs.reduce((a, b) => a + b),
      1,
    );
    assert.equal(sample(during, 'depot_ready'), 1);
    assert.equal((await waitForOperation(broker(), instancePath(instanceId), operationOf(res))).state, 'succeeded');
    const later = await scrapeDepot();
    assert.equal(sample(later, 'depot_operations_in_progress{type="provision"}'), 0);
    assert.equal(sample(later, 'depot_operation_oldest_in_progress_seconds{type="provision"}'), 0);
    assert.equal(sample(later, 'depot_queue_jobs{state="active"}'), 0);
  });

  it("the controller counts Ready and Failed objects of each kind from the leader's caches", async () => {
    await waitForReason(api!, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
    await create(
      api!,
      R.ServiceInstance,
      instance('fails', NS, {
        clusterServiceClassExternalName: 'depot-test',
        clusterServicePlanExternalName: 'provision-fail400',
      }),
    );
    await waitForReason(api!, R.ServiceInstance, 'fails', NS, 'ClusterServiceBrokerReturnedFailure', 'Failed');
    const scrape = await catalogController().metrics();
    assert.equal(sample(scrape, 'depot_controller_objects_ready{kind="ClusterServiceBroker"}'), 1, scrape);
    assert.equal(sample(scrape, 'depot_controller_objects{kind="ServiceInstance"}'), 1);
    assert.equal(sample(scrape, 'depot_controller_objects_failed{kind="ServiceInstance"}'), 1);
    assert.equal(sample(scrape, 'depot_controller_objects_ready{kind="ServiceInstance"}'), 0);
    assert.equal(sample(scrape, 'depot_controller_objects{kind="ServiceBinding"}'), 0);
  });

  it('while the state PostgreSQL is down a scrape still answers, depot_ready is 0, and 1 again after', async () => {
    await proxy!.cut();
    const down = await request(broker().metricsUrl).get('/metrics').timeout(8000).expect(200);
    assert.equal(sample(down.text, 'depot_ready'), 0);
    // What PostgreSQL said last stays: the previous value, not a gap.
    assert.equal(sample(down.text, 'depot_operations_in_progress{type="provision"}'), 0);
    await proxy!.restore();
    await waitFor(async () => sample(await scrapeDepot(), 'depot_ready') === 1, 20_000, 'depot_ready 1');
  });
});
