import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { packagePath } from '../../runtime/package-root.js';

const MIGRATIONS_DIR = packagePath('migrations');
/** Arbitrary constant: the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK = 0x6465706f; // "depo"

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads `migrations/NNN_name.sql`, ordered by number. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_[\w-]+\.sql$/.test(f));
  const migrations = await Promise.all(
    files.map(async (file) => ({
      version: Number(file.split('_', 1)[0]),
      name: file,
      sql: await readFile(path.join(dir, file), 'utf8'),
    })),
  );
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new Error(`two migrations share number ${migrations[i]!.version}`);
    }
  }
  return migrations;
}

/** Code that completes a migration's SQL in its transaction (e.g. sealing the rows that exist). */
export type MigrationStep = (client: pg.PoolClient) => Promise<void>;

export interface MigrateOptions {
  migrations?: Migration[];
  /** By migration number. */
  steps?: Readonly<Record<number, MigrationStep>>;
}

/**
 * Applies the pending migrations, each in its own transaction, under an advisory lock so
 * that replicas starting together apply each one exactly once. Returns the names applied.
 */
export async function migrate(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  const all = options.migrations ?? (await readMigrations());
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`create table if not exists depot_migrations (
      version integer primary key, name text not null, applied_at timestamptz not null default now())`);
    const { rows } = await client.query<{ version: number }>('select version from depot_migrations');
    const done = new Set(rows.map((r) => r.version));
    for (const migration of all) {
      if (done.has(migration.version)) continue;
      await client.query('begin');
      try {
        await client.query(migration.sql);
        await options.steps?.[migration.version]?.(client);
        await client.query('insert into depot_migrations (version, name) values ($1, $2)', [
          migration.version,
          migration.name,
        ]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw new Error(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(migration.name);
    }
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
  return applied;
}
