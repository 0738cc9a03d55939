/**
 * `npm run bench`: Depot against its floors, one scenario after another; a progress line per
 * scenario on stderr, one table on stdout, and everything measured in bench/results/<time>.json.
 *
 *   npm run bench [-- scenario,scenario]     or BENCH_SCENARIOS=catalog,accept npm run bench
 *   BENCH_ROUNDS (5), BENCH_SECONDS (3): rounds of each side and their length in seconds
 *   BENCH_PAIRS (100,1000): the controller scenario's sizes
 *
 * The scenarios and their targets: docs/benchmarks.md.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Settings } from './lib/load.js';
import { ROOT } from './lib/processes.js';
import type { Context, Outcome, Row } from './lib/scenario.js';
import { brokerMemory } from './scenarios/broker-memory.js';
import { controllerScenario } from './scenarios/controller.js';
import { endToEnd } from './scenarios/end-to-end.js';
import { bind, catalog, getBinding, lastOperation, provisionAccept } from './scenarios/osb-load.js';

const SCENARIOS: Record<string, (context: Context) => Promise<Outcome>> = {
  catalog,
  accept: provisionAccept,
  last_operation: lastOperation,
  bind,
  get_binding: getBinding,
  postgresql: (context) => endToEnd(context, 'postgresql'),
  mysql: (context) => endToEnd(context, 'mysql'),
  controller: controllerScenario,
  memory: brokerMemory,
};

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

const chosen = (process.argv[2] ?? process.env.BENCH_SCENARIOS ?? Object.keys(SCENARIOS).join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const unknown = chosen.filter((name) => !SCENARIOS[name]);
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown scenario ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}\n`);
  process.exit(2);
}
const seconds = positive('BENCH_SECONDS', 3);
const settings: Settings = {
  rounds: Math.round(positive('BENCH_ROUNDS', 5)),
  seconds,
  warmupSeconds: Math.min(2, seconds),
  connections: 10,
};

const startedAt = new Date();
const logDir = await mkdtemp(path.join(tmpdir(), 'depot-bench-'));
const rows: Row[] = [];
const details: Record<string, object> = {};
const began = performance.now();
let failed = false;
for (const name of chosen) {
  const t0 = performance.now();
  const context: Context = {
    settings,
    logDir,
    progress: (message) => process.stderr.write(`bench: ${name}: ${message}\n`),
  };
  context.progress('running');
  try {
    const outcome = await SCENARIOS[name]!(context);
    rows.push(...outcome.rows);
    details[name] = outcome.details;
    const summary = outcome.rows.map((r) => `${r.scenario} ${r.ratio || r.depot} (${r.target})`).join('; ');
    context.progress(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${summary}`);
  } catch (error) {
    failed = true;
    rows.push({ scenario: name, depot: 'error', floor: '', ratio: '', target: '', met: false });
    details[name] = { error: (error as Error).stack ?? String(error) };
    context.progress(`failed: ${(error as Error).message} (logs in ${logDir})`);
  }
}

const metText = (row: Row) => (row.met === undefined ? '' : row.met ? 'yes' : 'NO');
const table = [
  ['scenario', 'Depot', 'floor', 'ratio (median)', 'target', 'met?'],
  ...rows.map((row) => [row.scenario, row.depot, row.floor, row.ratio, row.target, metText(row)]),
];
const widths = table[0]!.map((_, i) => Math.max(...table.map((line) => line[i]!.length)));
const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
process.stdout.write(
  [line(table[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...table.slice(1).map(line)].join('\n') +
    '\n',
);

const resultsDir = path.join(ROOT, 'bench/results');
await mkdir(resultsDir, { recursive: true });
const file = path.join(resultsDir, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
const durationSeconds = Math.round((performance.now() - began) / 1000);
await writeFile(file, `${JSON.stringify({ startedAt, durationSeconds, settings, rows, details }, null, 2)}\n`);
process.stderr.write(`bench: ${durationSeconds} s; results in ${path.relative(process.cwd(), file)}\n`);
if (!failed) await rm(logDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
