/**
 * Benchmark: time from `kubectl apply` of N ServiceInstance + ServiceBinding pairs (all at once)
 * to every one Ready, and the Kubernetes API writes the controller made per pair. Real etcd and
 * kube-apiserver, real Depot with the real PostgreSQL offering (N databases and N roles), the
 * controller as a process with its default timings (except the lease, which is irrelevant here).
 *
 *   node --import tsx bench/controller-apply-to-ready.ts [pairs=1,100] [service/plan=postgresql/small]
 *
 * `depot-test/ok` (the test offering, which creates nothing) separates the controller's own
 * cost from the time PostgreSQL takes to create databases.
 *
 * Prints one JSON line per run.
 */
import { readFile } from 'node:fs/promises';
import type { ServiceBinding, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { startDepot } from '../test/helpers.js';
import {
  R,
  binding,
  brokerAuthSecret,
  create,
  ensureNamespace,
  instance,
  startController,
  startKubeApi,
  waitFor,
  waitForReason,
} from '../test/kube-helpers.js';

const sizes = (process.argv[2] ?? '1,100').split(',').map(Number);
const [service, plan] = (process.argv[3] ?? 'postgresql/small').split('/') as [string, string];

/** Production timings: undo the test harness's fast settings. */
const DEFAULT_TIMINGS = {
  RETRY_BASE_DELAY_MS: '1000',
  RETRY_MAX_DELAY_SECONDS: '1200',
  POLL_INITIAL_DELAY_MS: '200',
  POLL_MAX_DELAY_SECONDS: '1200',
  RESYNC_SECONDS: '300',
  LOG_LEVEL: 'warn',
};

function writes(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const match of metrics.matchAll(
    /^depot_controller_apiserver_writes_total\{resource="([^"]+)",verb="([^"]+)"\} (\d+)/gm,
  )) {
    out[`${match[1]} ${match[2]}`] = Number(match[3]);
  }
  return out;
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    // Lease renewals happen on a timer, not per object.
    if (key.startsWith('leases ')) continue;
    if (value - (before[key] ?? 0) > 0) out[key] = value - (before[key] ?? 0);
  }
  return out;
}

/** A field of the controller process's /proc/PID/status (VmHWM: its peak resident set), in MB. */
async function procStatusMB(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kB = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  return kB === undefined ? undefined : +(Number(kB) / 1024).toFixed(1);
}

const api = await startKubeApi();
const depot = await startDepot('bench_controller', {
  env: { LOG_LEVEL: 'warn', WORKER_CONCURRENCY: '16', RETRY_AFTER_SECONDS: '1', TEST_OFFERING: 'enabled' },
});
const controller = await startController(api, DEFAULT_TIMINGS);
try {
  await ensureNamespace(api, 'bench');
  await brokerAuthSecret(api, 'bench', 'depot-auth');
  await create(api, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: 'bench', name: 'depot-auth' } } } },
  });
  await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog', 'Ready', 30_000);

  for (const [run, n] of sizes.entries()) {
    const ns = `bench-${run}`;
    await ensureNamespace(api, ns);
    const before = writes(await controller.metrics());
    const started = performance.now();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        await create(
          api,
          R.ServiceInstance,
          instance(`db-${i}`, ns, { clusterServiceClassExternalName: service, clusterServicePlanExternalName: plan }),
        );
        await create(api, R.ServiceBinding, binding(`db-${i}-binding`, ns, { instanceRef: { name: `db-${i}` } }));
      }),
    );
    const applied = performance.now();
    const readyAt: number[] = [];
    await waitFor(
      async () => {
        const [instances, bindings] = await Promise.all([
          api.client.list<ServiceInstance>(R.ServiceInstance, { namespace: ns }),
          api.client.list<ServiceBinding>(R.ServiceBinding, { namespace: ns }),
        ]);
        const ready = (o: { status?: { conditions?: Array<{ type: string; status: string }> } }) =>
          o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        const done = bindings.items.filter(ready).length;
        while (readyAt.length < done) readyAt.push(performance.now() - started);
        return instances.items.every(ready) && done === n;
      },
      600_000,
      `${n} pairs Ready`,
    );
    const allReady = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 1000)); // late writes (events) land
    const perRun = diff(writes(await controller.metrics()), before);
    const total = Object.values(perRun).reduce((a, b) => a + b, 0);
    const events = perRun['events create'] ?? 0;
    const sorted = [...readyAt].sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        pairs: n,
        service,
        plan,
        applySeconds: +((applied - started) / 1000).toFixed(3),
        allReadySeconds: +(allReady / 1000).toFixed(3),
        medianPairReadySeconds: +((sorted[Math.floor(sorted.length / 2)] ?? 0) / 1000).toFixed(3),
        writesPerPair: +(total / n).toFixed(2),
        writesPerPairWithoutEvents: +((total - events) / n).toFixed(2),
        writes: perRun,
        controllerPeakRssMB: await procStatusMB(controller.child.pid, 'VmHWM'),
        controllerRssMB: await procStatusMB(controller.child.pid, 'VmRSS'),
      }),
    );

    // Clean up: delete the bindings, then the instances, and time it.
    const deleteStarted = performance.now();
    await Promise.all(Array.from({ length: n }, (_, i) => api.client.delete(R.ServiceBinding, `db-${i}-binding`, ns)));
    await Promise.all(Array.from({ length: n }, (_, i) => api.client.delete(R.ServiceInstance, `db-${i}`, ns)));
    await waitFor(
      async () => (await api.client.list(R.ServiceInstance, { namespace: ns })).items.length === 0,
      600_000,
      'instances gone',
    );
    console.log(
      JSON.stringify({ pairs: n, deleteAllSeconds: +((performance.now() - deleteStarted) / 1000).toFixed(3) }),
    );
  }
} finally {
  await controller.stop();
  await depot.close();
  await api.stop();
}
