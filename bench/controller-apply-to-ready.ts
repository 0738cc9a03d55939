/**
 * Benchmark: N ServiceInstance + ServiceBinding pairs created as fast as the test API server
 * takes them, against Depot and the controller as `npm start` and `npm run start:controller`
 * run them; the time until every one is Ready, the API writes per pair and the controller's
 * peak RSS. The same runs as `npm run bench controller` (bench/scenarios/controller.ts), with a
 * choice of sizes and plan:
 *
 *   node --import tsx bench/controller-apply-to-ready.ts [pairs=1,100] [service/plan=postgresql/small]
 *
 * `depot-test/ok` (the test offering, which creates nothing) separates the controller's own
 * cost from the time PostgreSQL takes to create databases. Prints one JSON line per run.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pairsRun, withCluster } from './scenarios/controller.js';

const sizes = (process.argv[2] ?? '1,100').split(',').map(Number);
const [service, plan] = (process.argv[3] ?? 'postgresql/small').split('/') as [string, string];
const logDir = await mkdtemp(path.join(tmpdir(), 'depot-bench-'));

await withCluster(logDir, async (api) => {
  for (const n of sizes) console.log(JSON.stringify(await pairsRun(api, logDir, n, service, plan)));
});
