/**
 * End-to-end provision and bind of a real offering (`postgresql` or `mysql`, plan `small`):
 * through Depot's OSB API (as `npm start` runs it), provision polled every 5 ms until
 * `succeeded`, bind answered synchronously; against the same offering's statements run
 * directly from this process (the offering called without HTTP, state or queue), interleaved
 * in the same run. Target: Depot's median ≤ the direct median + 30 ms.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../broker/config.js';
import type { InstanceRequest, Offering } from '../../broker/offerings/offering.js';
import { createOfferings } from '../../broker/offerings/registry.js';
import { createLogger } from '../../runtime/logger.js';
import { MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID, MYSQL_URL } from '../../test/mysql-helpers.js';
import { ADMIN_URL, SERVICE_ID, SMALL_PLAN_ID, defaultCatalogDocument, planOf } from '../../test/helpers.js';
import { startBenchDepot } from '../lib/depot.js';
import { OSB_HEADERS } from '../lib/load.js';
import type { Context, Outcome, Row } from '../lib/scenario.js';
import { median, round } from '../lib/stats.js';
import type { JsonObject } from '../../osb/index.js';

const PLANS = {
  postgresql: { serviceId: SERVICE_ID, planId: SMALL_PLAN_ID },
  mysql: { serviceId: MYSQL_SERVICE_ID, planId: MYSQL_SMALL_PLAN_ID },
} as const;
const SLACK_MS = 30;
const progress = { reportProgress: async () => undefined };

export async function endToEnd(context: Context, service: keyof typeof PLANS): Promise<Outcome> {
  const { serviceId, planId } = PLANS[service];
  const plan = planOf(defaultCatalogDocument(), serviceId, planId);
  const planSettings = (plan['x-depot'] ?? {}) as JsonObject;
  const env = { POSTGRES_SERVICE_URL: ADMIN_URL, MYSQL_SERVICE_URL: MYSQL_URL, DRIFT_CHECK_SECONDS: '0' };
  const offering = createOfferings(loadConfig(env), createLogger('silent')).find((o) => o.name === service)!;
  const depot = await startBenchDepot(service, context.logDir, env);
  const query = `service_id=${serviceId}&plan_id=${planId}`;
  const call = async (method: string, path: string, body?: object) => {
    const res = await fetch(depot.baseUrl + path, {
      method,
      headers: OSB_HEADERS,
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as { state?: string; description?: string } };
  };
  const untilDone = async (instancePath: string) => {
    for (;;) {
      const last = await call('GET', `${instancePath}/last_operation`);
      if (last.body.state === 'succeeded') return;
      if (last.body.state === 'failed') throw new Error(`${service}: ${last.body.description}`);
      await sleep(5);
    }
  };
  const samples = { depotProvision: [] as number[], directProvision: [] as number[] };
  const bindSamples = { depotBind: [] as number[], directBind: [] as number[] };
  const timed = async (into: number[] | undefined, work: () => Promise<unknown>) => {
    const started = performance.now();
    await work();
    into?.push(performance.now() - started);
  };
  const count = context.settings.rounds * 4;
  try {
    // One untimed round first (connections, caches, the JIT).
    for (let i = -1; i < count; i++) {
      const keep = i >= 0;
      const instancePath = `/v2/service_instances/${randomUUID()}`;
      const bindingPath = `${instancePath}/service_bindings/${randomUUID()}`;
      const body = { service_id: serviceId, plan_id: planId, organization_guid: 'org', space_guid: 'space' };
      await timed(keep ? samples.depotProvision : undefined, async () => {
        const res = await call('PUT', `${instancePath}?accepts_incomplete=true`, body);
        if (res.status !== 202) throw new Error(`${service} provision answered ${res.status}`);
        await untilDone(instancePath);
      });
      const instance: InstanceRequest = {
        instanceId: randomUUID(),
        planName: plan.name,
        planSettings,
        parameters: {},
        context: {},
      };
      await timed(keep ? samples.directProvision : undefined, () => offering.provision(instance, progress));
      await timed(keep ? bindSamples.depotBind : undefined, async () => {
        const res = await call('PUT', bindingPath, { service_id: serviceId, plan_id: planId });
        if (res.status !== 201) throw new Error(`${service} bind answered ${res.status}`);
      });
      const binding = { instance, bindingId: randomUUID(), parameters: {} };
      await timed(keep ? bindSamples.directBind : undefined, () => offering.bind(binding, progress));
      // Not timed: both are removed again.
      await call('DELETE', `${bindingPath}?${query}`);
      const res = await call('DELETE', `${instancePath}?accepts_incomplete=true&${query}`);
      if (res.status === 202) await untilDone(instancePath);
      await offering.unbind(binding, progress);
      await offering.deprovision(instance, progress);
    }
  } finally {
    await closeQuietly(offering);
    await depot.stop();
  }
  const rows = [
    row(`${service} provision (end to end)`, samples.depotProvision, samples.directProvision),
    row(`${service} bind (end to end)`, bindSamples.depotBind, bindSamples.directBind),
  ];
  const ms = (values: number[]) => values.map((v) => round(v, 1));
  return {
    rows,
    details: Object.fromEntries(Object.entries({ ...samples, ...bindSamples }).map(([k, v]) => [k, ms(v)])),
  };
}

function row(scenario: string, depot: number[], direct: number[]): Row {
  const [d, r] = [median(depot), median(direct)];
  return {
    scenario,
    depot: `${d.toFixed(1)} ms`,
    floor: `${r.toFixed(1)} ms (direct SQL)`,
    ratio: `${d - r < 0 ? '−' : '+'}${Math.abs(d - r).toFixed(1)} ms`,
    target: `≤ +${SLACK_MS} ms`,
    met: d <= r + SLACK_MS,
  };
}

async function closeQuietly(offering: Offering): Promise<void> {
  await offering.close().catch(() => undefined);
}
