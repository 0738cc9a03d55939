/**
 * What the `mysql` offering's tests share: the service and plan ids of the built-in catalog,
 * the tenants' server as its admin sees it, and logins with a binding's credentials as an
 * application makes them (mysql2, from the `uri`).
 */
import { createConnection, createPool, type Connection, type Pool, type RowDataPacket } from 'mysql2/promise';

/** MYSQL_SERVICE_URL for the tests: the machine's MariaDB (root, no password) unless TEST_MYSQL_URL says otherwise. */
export const MYSQL_URL = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const MYSQL_SERVICE_ID = 'a3df844d-ff9e-4d63-b80c-8ca2ee0cd983';
export const MYSQL_SMALL_PLAN_ID = '54acf1fa-7dbb-4e31-b67b-90eb23606151';
export const MYSQL_STANDARD_PLAN_ID = '6563a0aa-09fa-47aa-a30d-c6d8839726bd';

export const mysqlQuery = (planId = MYSQL_SMALL_PLAN_ID) => `service_id=${MYSQL_SERVICE_ID}&plan_id=${planId}`;
export const mysqlBody = (planId = MYSQL_SMALL_PLAN_ID) => ({ service_id: MYSQL_SERVICE_ID, plan_id: planId });

let adminPool: Pool | undefined;

/** Rows of a query on the tenants' server, as its admin. */
export async function mysqlAdmin<T extends object = Record<string, unknown>>(
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  adminPool ??= createPool({ uri: MYSQL_URL, connectionLimit: 2 });
  const [rows] = await adminPool.query<(T & RowDataPacket)[]>(sql, values);
  return rows;
}

const sessions: Connection[] = [];

/** A session opened with a binding's uri; rejects with the server's error when the login is refused. */
export async function mysqlLogin(uri: string): Promise<Connection> {
  const session = await createConnection({ uri, connectTimeout: 5000 });
  session.on('error', () => undefined); // a killed session reports it on its next query
  sessions.push(session);
  return session;
}

/** The error of a login or a statement (errno and message), or undefined when it succeeds. */
export async function refusal(
  attempt: Promise<unknown>,
): Promise<{ errno: number | undefined; code: string | undefined; message: string } | undefined> {
  try {
    await attempt;
    return undefined;
  } catch (error) {
    const e = error as { errno?: number; code?: string; message: string };
    return { errno: e.errno, code: e.code, message: e.message };
  }
}

/** The server's sessions of a user. */
export async function sessionsOf(username: string): Promise<number> {
  return (await mysqlAdmin('select ID from information_schema.PROCESSLIST where USER = ?', [username])).length;
}

export async function databaseExists(database: string): Promise<boolean> {
  return (await mysqlAdmin('select 1 from information_schema.SCHEMATA where SCHEMA_NAME = ?', [database])).length === 1;
}

/** The users on the server whose names start with `prefix`. */
export async function usersLike(prefix: string): Promise<string[]> {
  const rows = await mysqlAdmin<{ user: string }>("select User as user from mysql.user where User like ? escape '!'", [
    `${prefix.replace(/[!_%]/g, '!$&')}%`,
  ]);
  return rows.map((row) => row.user).sort();
}

/** Closes the sessions and the admin pool the tests opened. */
export async function closeMysql(): Promise<void> {
  for (const session of sessions.splice(0)) session.destroy();
  await adminPool?.end();
  adminPool = undefined;
}

/** The rows of a query in a session, as plain objects. */
export async function rowsOf<T extends object = Record<string, unknown>>(
  session: Connection,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const [rows] = await session.query<(T & RowDataPacket)[]>(sql, values);
  return rows.map((row) => ({ ...row }));
}
