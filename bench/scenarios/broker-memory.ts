/**
 * The broker's memory and start-up: Depot as `npm start` runs it with the instant test plan;
 * start-up is from the spawn until /readyz answers, idle RSS is read 3 s later, and peak RSS
 * (VmHWM) after catalog load and then provision-accept load of 2 × BENCH_SECONDS each.
 * Targets: peak ≤ 120 MB; idle RSS and start-up are reported.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBenchDepot } from '../lib/depot.js';
import { measure, type Workload } from '../lib/load.js';
import type { Context, Outcome } from '../lib/scenario.js';

const PEAK_LIMIT_MB = 120;
const MB = (kb: number) => Math.round(kb / 102.4) / 10;

export async function brokerMemory(context: Context): Promise<Outcome> {
  const depot = await startBenchDepot('memory', context.logDir, { TEST_OFFERING: 'enabled', DRIFT_CHECK_SECONDS: '0' });
  try {
    await sleep(3000);
    const idle = depot.memory();
    const seconds = context.settings.seconds * 2;
    const catalog: Workload = { method: 'GET', status: 200, request: () => ({ path: '/v2/catalog' }) };
    const accept: Workload = {
      method: 'PUT',
      status: 202,
      request: () => ({
        path: `/v2/service_instances/${randomUUID()}?accepts_incomplete=true`,
        body: JSON.stringify({
          service_id: '0e570000-7e57-4000-8000-000000000000',
          plan_id: '0e570000-7e57-4000-8000-000000000001',
          organization_guid: 'org',
          space_guid: 'space',
        }),
      }),
    };
    const catalogLoad = await measure(depot.baseUrl, catalog, seconds, context.settings.connections);
    const acceptLoad = await measure(depot.baseUrl, accept, seconds, context.settings.connections);
    const peak = depot.memory().peakKb;
    return {
      rows: [
        {
          scenario: 'broker peak RSS (catalog + accept load)',
          depot: `${MB(peak)} MB`,
          floor: '',
          ratio: '',
          target: `≤ ${PEAK_LIMIT_MB} MB`,
          met: MB(peak) <= PEAK_LIMIT_MB,
        },
        {
          scenario: 'broker idle RSS',
          depot: `${MB(idle.rssKb)} MB`,
          floor: '',
          ratio: '',
          target: 'report',
          met: undefined,
        },
        {
          scenario: 'broker start-up (to /readyz)',
          depot: `${(depot.startupMs / 1000).toFixed(2)} s`,
          floor: '',
          ratio: '',
          target: 'report',
          met: undefined,
        },
      ],
      details: { startupMs: Math.round(depot.startupMs), idle, peakKb: peak, catalogLoad, acceptLoad },
    };
  } finally {
    await depot.stop();
  }
}
