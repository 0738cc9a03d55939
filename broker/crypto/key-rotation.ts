import type pg from 'pg';
import { transaction } from '../db/pool.js';
import { retireKeysExcept } from '../db/encryption-keys.js';
import { resealBatch, staleRows } from '../db/reseal.js';
import { SEALED_COLUMNS, type SealedTable } from '../db/sealed-columns.js';
import type { StateCipher } from './state-cipher.js';

export interface RotationOptions {
  /** Rows re-sealed per transaction. */
  batchSize?: number;
  /** Passes over the tables before giving up on rows that other transactions keep locked. */
  maxPasses?: number;
  onProgress?: (progress: RotationProgress) => void;
}

export interface RotationProgress {
  table: SealedTable;
  /** Rows of this table re-sealed so far, of those found stale when the rotation began. */
  done: number;
  total: number;
}

export interface RotationResult {
  resealed: number;
  /** Rows still on another key (or plaintext): a replica may still seal with an old first key. */
  remaining: number;
  /** Keys no value names any more, now retired (Depot then starts without them). */
  retired: string[];
}

const TABLES = Object.keys(SEALED_COLUMNS) as SealedTable[];

/**
 * `npm run rotate-keys`: every value not sealed with the first key is sealed with it, a batch per
 * transaction, so it can run beside live traffic and several replicas, and stop and start again
 * (each run takes up what is still stale). Keys are retired only when no value names them.
 */
export async function rotateKeys(pool: pg.Pool, cipher: StateCipher, options: RotationOptions = {}) {
  const { batchSize = 200, maxPasses = 20, onProgress } = options;
  const totals = new Map<SealedTable, number>();
  for (const table of TABLES) totals.set(table, await staleRows(pool, cipher, table));
  const done = new Map<SealedTable, number>(TABLES.map((t) => [t, 0]));
  let remaining = 0;
  for (let pass = 0; pass < maxPasses; pass++) {
    for (const table of TABLES) {
      let afterId = '';
      for (;;) {
        const batch = await transaction(pool, (client) => resealBatch(client, cipher, table, afterId, batchSize, true));
        if (batch.lastId === undefined) break;
        afterId = batch.lastId;
        done.set(table, done.get(table)! + batch.count);
        const total = Math.max(totals.get(table)!, done.get(table)!);
        onProgress?.({ table, done: done.get(table)!, total });
      }
    }
    remaining = 0;
    for (const table of TABLES) remaining += await staleRows(pool, cipher, table);
    if (remaining === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200)); // rows locked by live traffic: again
  }
  const resealed = [...done.values()].reduce((a, b) => a + b, 0);
  const retired = remaining === 0 ? await retireKeysExcept(pool, cipher.primary.id) : [];
  return { resealed, remaining, retired } satisfies RotationResult;
}
