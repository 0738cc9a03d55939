import type { Queryable } from './pool.js';

export interface RegisteredKey {
  id: string;
  check_value: string;
  retired: boolean;
}

export async function registeredKeys(db: Queryable): Promise<RegisteredKey[]> {
  const { rows } = await db.query<RegisteredKey>(
    'select id, check_value, retired_at is not null as retired from encryption_keys order by created_at',
  );
  return rows;
}

/** The key that seals from now on is listed (again, if rotation had retired it). */
export async function registerKey(db: Queryable, id: string, checkValue: string): Promise<void> {
  await db.query(
    `insert into encryption_keys (id, check_value) values ($1, $2)
     on conflict (id) do update set retired_at = null`,
    [id, checkValue],
  );
}

/** After a rotation that left no value on them: every key but the sealing one. */
export async function retireKeysExcept(db: Queryable, id: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'update encryption_keys set retired_at = now() where id <> $1 and retired_at is null returning id',
    [id],
  );
  return rows.map((r) => r.id);
}
