import { PermanentOfferingError } from '../offering.js';

export const ER_NO_SUCH_THREAD = 1094;

/**
 * SQLSTATE classes that a retry cannot fix (feature not supported, data exception, integrity,
 * invalid authorization, invalid catalog name, syntax or access rule), and errors of class
 * HY000 that are as final: unknown collation, CREATE/DROP USER refused, plugin not loaded.
 * Connection loss, lock waits, deadlocks and too many connections are retried.
 */
const PERMANENT_SQLSTATE_CLASSES = new Set(['0A', '22', '23', '28', '3D', '42']);
const PERMANENT_ERRNOS = new Set([1273, 1396, 1524]);

/**
 * The error to throw for a failed statement: without mysql2's copy of the statement (which a
 * log line would carry), its message prefixed with the statement's first words, permanent when
 * retrying cannot help. For a statement with a secret, only the error's code.
 */
export function offeringError(error: unknown, sql: string, secret: boolean): Error {
  const e = error as { code?: string; errno?: number; sqlState?: string; sql?: unknown; message?: string };
  delete e.sql;
  const statement = sql.trim().split(/\s+/).slice(0, 2).join(' ');
  const message = secret
    ? `${statement}: ${e.code ?? 'failed'}${e.errno !== undefined ? ` (error ${e.errno})` : ''}`
    : `${statement}: ${e.message || e.code || String(error)}`;
  const permanent =
    (typeof e.sqlState === 'string' && PERMANENT_SQLSTATE_CLASSES.has(e.sqlState.slice(0, 2))) ||
    (e.errno !== undefined && PERMANENT_ERRNOS.has(e.errno));
  const wrapped = permanent ? new PermanentOfferingError(message) : new Error(message, secret ? {} : { cause: error });
  Object.assign(wrapped, { errno: e.errno, code: e.code });
  return wrapped;
}
