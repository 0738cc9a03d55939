import pg from 'pg';
import { withDatabase } from '../config.js';

/**
 * A pool or a client. The statements of the request and job paths are named (`{ name, text,
 * values }`, named `module.function`): each connection parses and plans them once.
 */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/**
 * How long a request waits for a connection (a new one, or one of the pool's when all are busy)
 * and for a statement's answer before it is told to come back later (503 with Retry-After).
 */
const CONNECT_TIMEOUT_MS = 10_000;
const QUERY_TIMEOUT_MS = 60_000;
/** TCP keepalive probes start after this much silence, so a half-open connection is noticed. */
const KEEPALIVE_DELAY_MS = 10_000;

export function createPool(connectionString: string, max = 10): pg.Pool {
  return new pg.Pool({
    connectionString,
    max,
    application_name: 'depot',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
  });
}

// Socket errors; SQLSTATE 08000/08001/08003/08004/08006 (the connection failed, not a protocol
// violation, which is a bug), 57P01–57P03 (shutting down, or not accepting connections yet) and
// 53300 (too many connections); the pool's own timeouts. All pass once the server answers again.
const UNAVAILABLE_CODES = new Set([
  ...['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'],
  ...['08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03', '53300'],
]);
const UNAVAILABLE_MESSAGES = new RegExp(
  '^(' +
    [
      'Connection terminated',
      'timeout exceeded when trying to connect',
      'Client has encountered a connection error',
      'Query read timeout',
    ].join('|') +
    ')',
);

/** Whether a pg error means the server cannot be reached now (as opposed to a failed statement). */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  if (error instanceof AggregateError) return error.errors.some(isDatabaseUnavailable); // several addresses tried
  return UNAVAILABLE_MESSAGES.test(error.message);
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
