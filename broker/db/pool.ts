import pg from 'pg';
import { withDatabase } from '../config.js';

export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

export function createPool(connectionString: string, max = 10): pg.Pool {
  return new pg.Pool({ connectionString, max, application_name: 'depot' });
}

/** Runs `work` in a transaction on one client of the pool. */
export async function transaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** The database name in a connection URL (default: the user's name, as libpq does). */
export function databaseName(connectionUrl: string): string {
  const parsed = new URL(connectionUrl);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  return name || decodeURIComponent(parsed.username) || process.env.USER || 'postgres';
}

/**
 * Creates the database DATABASE_URL names if it does not exist yet, through the server's
 * `postgres` maintenance database. Safe when several replicas start at once.
 */
export async function ensureDatabase(connectionUrl: string): Promise<boolean> {
  const name = databaseName(connectionUrl);
  const client = new pg.Client({ connectionString: withDatabase(connectionUrl, 'postgres') });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount) return false;
    try {
      await client.query(`create database ${pg.escapeIdentifier(name)}`);
      // The state holds binding credentials; the roles Depot hands out must not connect to it.
      await client.query(`revoke connect, temporary on database ${pg.escapeIdentifier(name)} from public`);
      return true;
    } catch (error) {
      // 42P04 duplicate_database: another replica created it between our check and create.
      if ((error as { code?: string }).code === '42P04') return false;
      throw error;
    }
  } finally {
    await client.end();
  }
}
