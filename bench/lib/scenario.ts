/** What a scenario of `npm run bench` is given and gives back: rows of the table, and details for the JSON. */
import type { Settings } from './load.js';

export interface Row {
  scenario: string;
  depot: string;
  floor: string;
  /** The median ratio (or difference) the target is about. */
  ratio: string;
  target: string;
  /** undefined: reported only, no target. */
  met: boolean | undefined;
}

export interface Context {
  settings: Settings;
  /** Where the children's logs go (a temporary directory of the run). */
  logDir: string;
  /** One line to stderr: what the scenario is doing now. */
  progress(message: string): void;
}

export interface Outcome {
  rows: Row[];
  details: object;
}

/** A row for a throughput ratio against a floor, with its target (undefined: reported only). */
export function ratioRow(
  scenario: string,
  comparison: { medianRatio: number; depot: Rate[]; floor: Rate[] },
  minimum: number | undefined,
): Row {
  return {
    scenario,
    depot: rate(comparison.depot),
    floor: rate(comparison.floor),
    ratio: comparison.medianRatio.toFixed(2),
    target: minimum === undefined ? 'report' : `≥ ${minimum}`,
    met: minimum === undefined ? undefined : comparison.medianRatio >= minimum,
  };
}

interface Rate {
  requestsPerSecond: number;
  p99Ms: number;
}

/** The median rounds' requests per second and p99 latency, e.g. "4210 req/s, p99 6 ms". */
function rate(rounds: Rate[]): string {
  const middle = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
  const perSecond = Math.round(middle(rounds.map((r) => r.requestsPerSecond)));
  return `${perSecond} req/s, p99 ${middle(rounds.map((r) => r.p99Ms))} ms`;
}
