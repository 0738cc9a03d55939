import type { StateCipher } from '../crypto/state-cipher.js';
import type { Queryable } from './pool.js';
import { place, SEALED_COLUMNS, type SealedTable } from './sealed-columns.js';

/** Rows of `table` with a value not sealed by the first key (or not sealed at all). */
function stale(table: SealedTable, prefixParam: string): string {
  return SEALED_COLUMNS[table].map((c) => `(${c} is not null and not starts_with(${c}, ${prefixParam}))`).join(' or ');
}

/**
 * Seals again, with the first key, the next `limit` stale rows of `table` after `afterId`, in id
 * order; in a transaction. With `skipLocked`, rows another transaction holds are left for a later
 * pass (rotation beside live traffic never waits, so it never deadlocks). Returns the last id.
 * updated_at stays: re-sealing changes no value.
 */
export async function resealBatch(
  db: Queryable,
  cipher: StateCipher,
  table: SealedTable,
  afterId: string,
  limit: number,
  skipLocked: boolean,
): Promise<{ count: number; lastId: string | undefined }> {
  const columns = SEALED_COLUMNS[table];
  const { rows } = await db.query<Record<string, string | null> & { id: string }>(
    `select id, ${columns.join(', ')} from ${table} where id > $1 and (${stale(table, '$2')})
     order by id limit $3 for update${skipLocked ? ' skip locked' : ''}`,
    [afterId, cipher.primaryPrefix, limit],
  );
  if (rows.length === 0) return { count: 0, lastId: undefined };
  const values = columns.map((column) =>
    rows.map((row) => {
      const stored = row[column] ?? null;
      const where = place(table, column, row.id);
      return stored === null ? null : cipher.seal(cipher.open<unknown>(stored, where), where);
    }),
  );
  await db.query(
    `update ${table} as t set ${columns.map((c) => `${c} = v.${c}`).join(', ')}
     from (select unnest($1::text[]) as id, ${columns.map((c, i) => `unnest($${i + 2}::text[]) as ${c}`).join(', ')}) v
     where t.id = v.id`,
    [rows.map((r) => r.id), ...values],
  );
  return { count: rows.length, lastId: rows[rows.length - 1]!.id };
}

/** How many rows of `table` hold a value not sealed by the first key. */
export async function staleRows(db: Queryable, cipher: StateCipher, table: SealedTable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from ${table} where ${stale(table, '$1')}`,
    [cipher.primaryPrefix],
  );
  return rows[0]!.n;
}
