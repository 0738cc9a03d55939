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
import type { ServiceBinding, ServiceInstance } from '../../catalog-controller/api/v1beta1.js';
import { freePort } from '../../test/helpers.js';
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
import { ROOT, memory, nodeProcess, npmScript, spawnCommand, waitUntilAnswering } from '../lib/processes.js';
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

const ready = (o: { status?: { conditions?: Array<{ type: string; status: string }> } }) =>
  o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** One run of `n` pairs in a namespace of its own, with a controller of its own; the pairs are deleted after. */
export async function pairsRun(
  api: KubeApi,
  logDir: string,
  n: number,
  service: string,
  plan: string,
): Promise<PairsRun> {
  const ns = `bench-${n}-${Date.now()}`;
  await ensureNamespace(api, ns);
  const controller = await startController(api, logDir, String(n));
  try {
    await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog', 'Ready', 60_000);
    const before = writes(await controller.metrics());
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
    await waitFor(
      async () => {
        const [instances, bindings] = await Promise.all([
          api.client.list<ServiceInstance>(R.ServiceInstance, { namespace: ns }),
          api.client.list<ServiceBinding>(R.ServiceBinding, { namespace: ns }),
        ]);
        return instances.items.filter(ready).length === n && bindings.items.filter(ready).length === n;
      },
      600_000,
      `${n} pairs Ready`,
    );
    const allReady = performance.now();
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
      deleteAllSeconds: round((performance.now() - deleteStarted) / 1000, 3),
    };
  } finally {
    await controller.stop();
  }
}

/** The test API server, Depot and a ClusterServiceBroker for it, for `work`. */
export async function withCluster<T>(logDir: string, work: (api: KubeApi) => Promise<T>): Promise<T> {
  const api = await startKubeApi();
  try {
    const depot = await startBenchDepot('controller', logDir, { TEST_OFFERING: 'enabled', DRIFT_CHECK_SECONDS: '0' });
    try {
      await brokerAuthSecret(api, 'bench', 'depot-auth');
      await create(api, R.ClusterServiceBroker, {
        metadata: { name: 'depot' },
        spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: 'bench', name: 'depot-auth' } } } },
      });
      return await work(api);
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
  const runs = await withCluster(context.logDir, async (api) => {
    const out: PairsRun[] = [];
    for (const n of sizes) {
      context.progress(`${n} pairs`);
      out.push(await pairsRun(api, context.logDir, n, 'depot-test', 'ok'));
    }
    return out;
  });
  const rows: Row[] = runs.flatMap((r) => {
    const atTarget = r.pairs >= 1000;
    const check = (met: boolean) => (atTarget ? met : undefined);
    const target = (text: string) => (atTarget ? text : 'report');
    return [
      {
        scenario: `controller ${r.pairs} pairs: Ready after last create`,
        depot: `${r.readyAfterLastCreateSeconds.toFixed(2)} s`,
        floor: '',
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
    ];
  });
  return { rows, details: { runs } };
}
