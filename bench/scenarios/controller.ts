/**
 * The controller: N ServiceInstance + ServiceBinding pairs created as fast as the test API
 * server (test/kube/cluster.sh: etcd and kube-apiserver) takes them, against Depot as
 * `npm start` runs it, with the controller as `npm run start:controller` runs it (its default
 * timings and logging). A fresh controller per N. Measured: the time from the last create to
 * every object Ready, the API writes the controller made per pair (its
 * depot_controller_apiserver_writes_total, without Lease renewals and Events), and its peak RSS
 * (VmHWM). Targets at 1,000 pairs: ≤ 5 s, ≤ 8 writes, ≤ 120 MB.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { pino } from 'pino';
import type { ServiceBinding, ServiceInstance } from '../../catalog-controller/api/v1beta1.js';
import { isReady } from '../../catalog-controller/conditions.js';
import { Informer } from '../../catalog-controller/kube/informer.js';
import { freePort } from '../../test/helpers.js';
import { npmScript } from '../../test/npm-script.js';
import {
  R,
  binding,
  brokerAuthSecret,
  create,
  ensureNamespace,
  instance,
  startKubeApi,
  waitFor,
  waitForReason,
  type KubeApi,
} from '../../test/kube-helpers.js';
import { startBenchDepot } from '../lib/depot.js';
import {
  ROOT,
  cpuTicks,
  memory,
  nodeProcess,
  processesNamed,
  spawnCommand,
  waitUntilAnswering,
} from '../lib/processes.js';
import type { Context, Outcome, Row } from '../lib/scenario.js';
import { round } from '../lib/stats.js';

const run = promisify(execFile);
const CLUSTER_SCRIPT = path.join(ROOT, 'test/kube/cluster.sh');
/** Creates in flight at once: enough to keep the API server busy. */
const CREATORS = 32;

export interface PairsRun {
  pairs: number;
  service: string;
  plan: string;
  createSeconds: number;
  /** From the last create until every instance and binding is Ready. */
  readyAfterLastCreateSeconds: number;
  allReadySeconds: number;
  writesPerPair: number;
  eventsPerPair: number;
  writes: Record<string, number>;
  controllerPeakRssKb: number;
  /** CPU seconds each process used from the first create until all were Ready. */
  cpuSeconds: Record<string, number>;
  deleteAllSeconds: number;
}

/** Whether test/kube/cluster.sh has its binaries (etcd, kube-apiserver, kubectl). */
export async function clusterInstalled(): Promise<boolean> {
  try {
    const { stdout } = await run('bash', [CLUSTER_SCRIPT, 'bin']);
    return ['etcd', 'kube-apiserver', 'kubectl'].every((name) => existsSync(path.join(stdout.trim(), name)));
  } catch {
    return false;
  }
}

function writes(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const match of metrics.matchAll(
    /^depot_controller_apiserver_writes_total\{resource="([^"]+)",verb="([^"]+)"\} (\d+)/gm,
  )) {
    // Lease renewals happen on a timer, not per object.
    if (match[1] !== 'leases') out[`${match[1]} ${match[2]}`] = Number(match[3]);
  }
  return out;
}

async function startController(api: KubeApi, logDir: string, name: string) {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawnCommand(
    npmScript('start:controller'),
    {
      KUBECONFIG: api.kubeconfig,
      CONTROLLER_PORT: String(port),
      METRICS_PORT: String(metricsPort),
      CLUSTER_ID: 'bench-cluster',
      // A fresh controller per run takes the lease at once from the last (irrelevant to the figures).
      LEASE_DURATION_SECONDS: '8',
      LEASE_RETRY_PERIOD_MS: '500',
    },
    path.join(logDir, `controller-${name}.log`),
  );
  await waitUntilAnswering(`http://127.0.0.1:${port}/healthz`, child, 30_000);
  const pid = nodeProcess(child);
  return {
    pid,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    stop: () => child.stop(),
  };
}

const silent = pino({ level: 'silent' });

/** One run of `n` pairs in a namespace of its own, with a controller of its own; the pairs are deleted after. */
export async function pairsRun(
  api: KubeApi,
  logDir: string,
  n: number,
  service: string,
  plan: string,
  depotPid?: number,
): Promise<PairsRun> {
  const ns = `bench-${n}-${Date.now()}`;
  await ensureNamespace(api, ns);
  const controller = await startController(api, logDir, String(n));
  // Seen through informers (a watch each): a list of every object per poll would load the API server under test.
  const instances = new Informer<ServiceInstance>(api.client, R.ServiceInstance, silent);
  const bindings = new Informer<ServiceBinding>(api.client, R.ServiceBinding, silent);
  try {
    await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog', 'Ready', 60_000);
    await Promise.all([instances.start(), bindings.start()]);
    const before = writes(await controller.metrics());
    const measured: Record<string, number[]> = {
      controller: [controller.pid],
      ...(depotPid ? { depot: [depotPid] } : {}),
      'kube-apiserver': processesNamed('kube-apiserver'),
      etcd: processesNamed('etcd'),
    };
    const ticks = () =>
      Object.fromEntries(Object.entries(measured).map(([k, pids]) => [k, pids.reduce((a, p) => a + cpuTicks(p), 0)]));
    const ticksBefore = ticks();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(CREATORS, n) }, async () => {
        for (let i = next++; i < n; i = next++) {
          const spec = { clusterServiceClassExternalName: service, clusterServicePlanExternalName: plan };
          await create(api, R.ServiceInstance, instance(`db-${i}`, ns, spec));
          await create(api, R.ServiceBinding, binding(`db-${i}-binding`, ns, { instanceRef: { name: `db-${i}` } }));
        }
      }),
    );
    const created = performance.now();
    const allReadyIn = (informer: Informer<ServiceInstance> | Informer<ServiceBinding>) =>
      informer.list(ns).filter((o) => isReady(o.status?.conditions)).length === n;
    await waitFor(async () => allReadyIn(instances) && allReadyIn(bindings), 600_000, `${n} pairs Ready`);
    const allReady = performance.now();
    const ticksAfter = ticks();
    const cpuSeconds = Object.fromEntries(
      Object.keys(measured).map((k) => [k, round(((ticksAfter[k] ?? 0) - (ticksBefore[k] ?? 0)) / 100, 2)]),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000)); // late writes (events) land
    const after = writes(await controller.metrics());
    const perRun: Record<string, number> = {};
    for (const [key, value] of Object.entries(after)) {
      if (value - (before[key] ?? 0) > 0) perRun[key] = value - (before[key] ?? 0);
    }
    const events = perRun['events create'] ?? 0;
    const total = Object.values(perRun).reduce((a, b) => a + b, 0);
    const peakKb = memory(controller.pid).peakKb;

    const deleteStarted = performance.now();
    await Promise.all(Array.from({ length: n }, (_, i) => api.client.delete(R.ServiceBinding, `db-${i}-binding`, ns)));
    await Promise.all(Array.from({ length: n }, (_, i) => api.client.delete(R.ServiceInstance, `db-${i}`, ns)));
    await waitFor(
      async () => (await api.client.list(R.ServiceInstance, { namespace: ns })).items.length === 0,
      600_000,
      'instances gone',
    );
    return {
      pairs: n,
      service,
      plan,
      createSeconds: round((created - started) / 1000, 3),
      readyAfterLastCreateSeconds: round((allReady - created) / 1000, 3),
      allReadySeconds: round((allReady - started) / 1000, 3),
      writesPerPair: round((total - events) / n, 2),
      eventsPerPair: round(events / n, 2),
      writes: perRun,
      controllerPeakRssKb: peakKb,
      cpuSeconds,
      deleteAllSeconds: round((performance.now() - deleteStarted) / 1000, 3),
    };
  } finally {
    instances.stop();
    bindings.stop();
    await controller.stop();
  }
}

/** The test API server, Depot and a ClusterServiceBroker for it, for `work`. */
export async function withCluster<T>(logDir: string, work: (api: KubeApi, depotPid: number) => Promise<T>): Promise<T> {
  const api = await startKubeApi();
  try {
    const depot = await startBenchDepot('controller', logDir, { TEST_OFFERING: 'enabled', DRIFT_CHECK_SECONDS: '0' });
    try {
      await brokerAuthSecret(api, 'bench', 'depot-auth');
      await create(api, R.ClusterServiceBroker, {
        metadata: { name: 'depot' },
        spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: 'bench', name: 'depot-auth' } } } },
      });
      return await work(api, depot.pid);
    } finally {
      await depot.stop();
    }
  } finally {
    await api.stop();
  }
}

export async function controllerScenario(context: Context): Promise<Outcome> {
  if (!(await clusterInstalled())) {
    const skipped = 'skipped: run bash test/kube/cluster.sh install';
    context.progress(skipped);
    return {
      rows: [{ scenario: 'controller', depot: skipped, floor: '', ratio: '', target: '', met: undefined }],
      details: { skipped },
    };
  }
  const sizes = (process.env.BENCH_PAIRS ?? '100,1000').split(',').map(Number);
  const { runs, apiWritesPerSecond } = await withCluster(context.logDir, async (api, depotPid) => {
    const out: PairsRun[] = [];
    for (const n of sizes) {
      context.progress(`${n} pairs`);
      out.push(await pairsRun(api, context.logDir, n, 'depot-test', 'ok', depotPid));
    }
    context.progress(`the API server alone: ${FLOOR_CREATES} creates`);
    return { runs: out, apiWritesPerSecond: await apiServerWrites(api, FLOOR_CREATES) };
  });
  const rows: Row[] = runs.flatMap((r) => {
    const atTarget = r.pairs >= 1000;
    const check = (met: boolean) => (atTarget ? met : undefined);
    const target = (text: string) => (atTarget ? text : 'report');
    return [
      {
        scenario: `controller ${r.pairs} pairs: Ready after last create`,
        depot: `${r.readyAfterLastCreateSeconds.toFixed(2)} s`,
        floor: `${apiServerSeconds(r, apiWritesPerSecond).toFixed(2)} s (as many creates, API server alone)`,
        ratio: '',
        target: target('≤ 5 s'),
        met: check(r.readyAfterLastCreateSeconds <= 5),
      },
      {
        scenario: `controller ${r.pairs} pairs: API writes per pair`,
        depot: `${r.writesPerPair} (+ ${r.eventsPerPair} events)`,
        floor: '',
        ratio: '',
        target: '≤ 8',
        met: r.writesPerPair <= 8,
      },
      {
        scenario: `controller ${r.pairs} pairs: peak RSS`,
        depot: `${(r.controllerPeakRssKb / 1024).toFixed(1)} MB`,
        floor: '',
        ratio: '',
        target: target('≤ 120 MB'),
        met: check(r.controllerPeakRssKb / 1024 <= 120),
      },
      {
        scenario: `controller ${r.pairs} pairs: CPU s until Ready`,
        depot: Object.entries(r.cpuSeconds)
          .map(([name, seconds]) => `${name} ${seconds}`)
          .join(', '),
        floor: '',
        ratio: '',
        target: 'report',
        met: undefined,
      },
    ];
  });
  rows.push({
    scenario: 'the API server alone: ServiceInstance creates',
    depot: `${Math.round(apiWritesPerSecond)} writes/s (${CREATORS} at once)`,
    floor: '',
    ratio: '',
    target: 'report',
    met: undefined,
  });
  return { rows, details: { runs, apiWritesPerSecond: round(apiWritesPerSecond, 1) } };
}

/** Creates of the API server's floor: enough for a steady rate. */
const FLOOR_CREATES = 3000;

/**
 * The floor of "Ready after last create": the time the API server alone needs for the run's writes
 * (the creates, the controller's writes and its events) at its measured rate, less the create time.
 */
function apiServerSeconds(r: PairsRun, writesPerSecond: number): number {
  const writes = 2 * r.pairs + Object.values(r.writes).reduce((a, b) => a + b, 0);
  return Math.max(0, writes / writesPerSecond - r.createSeconds);
}

/** The API server with no controller running: `n` ServiceInstance creates, CREATORS at once; writes per second. */
async function apiServerWrites(api: KubeApi, n: number): Promise<number> {
  const ns = `bench-floor-${Date.now()}`;
  await ensureNamespace(api, ns);
  const spec = { clusterServiceClassExternalName: 'depot-test', clusterServicePlanExternalName: 'ok' };
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CREATORS }, async () => {
      for (let i = next++; i < n; i = next++) await create(api, R.ServiceInstance, instance(`floor-${i}`, ns, spec));
    }),
  );
  return n / ((performance.now() - started) / 1000);
}
