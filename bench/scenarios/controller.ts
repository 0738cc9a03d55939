import type { Context, Outcome } from '../lib/scenario.js';
export async function controllerScenario(_context: Context): Promise<Outcome> {
  return { rows: [], details: {} };
}
