import type { Context, Outcome } from '../lib/scenario.js';
export async function brokerMemory(_context: Context): Promise<Outcome> {
  return { rows: [], details: {} };
}
