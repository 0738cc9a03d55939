import { randomBytes } from 'node:crypto';
import { createPool, escape, escapeId, type Pool, type PoolConnection, type RowDataPacket } from 'mysql2/promise';
import type { JsonObject } from '../../../osb/index.js';
import { serverAddress } from '../../config.js';
import type { Logger } from '../../../runtime/logger.js';
import { idDigest, publicEndpoint, type PublicEndpoint } from '../endpoint.js';
import { namedObjects, type NamedObject } from '../named-objects.js';
import {
  PermanentOfferingError,
  type BindResult,
  type BindingRequest,
  type DriftRepair,
  type InstanceRequest,
  type Offering,
  type OperationContext,
  type ProvisionResult,
  type RecordedBinding,
  type UpdateInstanceRequest,
} from '../offering.js';
import { DEFAULT_CHARACTER_SET, requestedCharset } from './character-sets.js';
import { ER_NO_SUCH_THREAD, offeringError } from './mysql-errors.js';
import { nativePasswordHash } from './native-password.js';

export interface MysqlOfferingOptions {
  /** Admin connection to the server that holds the instances (needs CREATE USER, GRANT OPTION, …). */
  serviceUrl: string;
  /** Whether serviceUrl was configured (MYSQL_SERVICE_URL set) rather than defaulted. */
  serverConfigured?: boolean;
  /** Host and port written into credentials; default: those of serviceUrl. */
  publicHost?: string;
  publicPort?: number;
  logger: Logger;
  /** Tables dropped per statement when deprovisioning. */
  dropBatchSize?: number;
  /** How often deprovision reports its progress to last_operation. */
  progressIntervalMs?: number;
}

/** What a binding of this offering returns as `credentials`. */
export interface MysqlCredentials {
  uri: string;
  jdbcUrl: string;
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
}

/** A user on the server: its name and host (Depot creates `'name'@'%'`). */
interface Account {
  user: string;
  host: string;
}

/**
 * Names on the server, derived from ids by hashing: any id is safe, the database name stays
 * within 64 characters and user names within 32 (MySQL's limit; MariaDB allows 80). Every
 * user of an instance starts with `userPrefix`, which comes from the same digest as the
 * database's name.
 */
export function mysqlNames(instanceId: string, bindingId?: string) {
  const digest = idDigest(instanceId, 24);
  const userPrefix = `depot_${digest.slice(0, 13)}_`;
  return {
    /** 30 characters. */
    database: `depot_${digest}`,
    /** 20 characters. */
    userPrefix,
    /** 32 characters. */
    ...(bindingId !== undefined ? { username: `${userPrefix}${idDigest(bindingId, 12)}` } : {}),
  };
}

/**
 * The shapes of Depot's names on a MySQL server, for `depot orphans`, in the order they are removed
 * in: a binding's account (`'user'@'host'`), then an instance's database.
 */
export const MYSQL_NAME_SHAPES = {
  user: /^'depot_([0-9a-f]{13})_([0-9a-f]{12})'@'[^']*'$/,
  database: /^depot_([0-9a-f]{24})$/,
};

/** The plan's per-user connection limit, from its `x-depot` settings (checked at catalog load). */
function maxUserConnections(settings: JsonObject): number {
  const limit = settings.max_user_connections;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
    throw new PermanentOfferingError('the plan has no valid x-depot.max_user_connections');
  }
  return limit;
}

const DAY_MS = 86_400_000;

/** The privileges `grant all privileges on <database>.*` gives, as a condition on mysql.db `d` (drift repair). */
const ALL_GRANTED = ['Select', 'Insert', 'Update', 'Delete', 'Create', 'Drop', 'Index', 'Alter']
  .map((privilege) => `d.${privilege}_priv = 'Y'`)
  .join(' and ');

/**
 * Every statement of an operation ends well within OPERATION_TIMEOUT_SECONDS: metadata locks
 * are waited for 30 s at most, and on MariaDB a statement runs 5 minutes at most (MySQL has no
 * such limit but for SELECT; the setting is then refused and ignored).
 */
const SESSION_SETTINGS = ['set session lock_wait_timeout = 30', 'set session max_statement_time = 300'];
/** And none waits on a dead connection for ever: mysql2 gives up on it (and closes it) after 6 minutes. */
const STATEMENT_TIMEOUT_MS = 360_000;

const ident = (name: string) => escapeId(name, true);
const literal = (value: string) => escape(value);
const account = ({ user, host }: Account) => `${literal(user)}@${literal(host)}`;
/** A database name as GRANT takes it (and mysql.db stores it): `_` and `%` are wildcards there, so escaped. */
const grantedName = (name: string) => name.replace(/[\\_%]/g, '\\$&');
const grantDatabase = (name: string) => ident(grantedName(name));
/** A LIKE pattern (with `escape '!'`) for names that start with `prefix`. */
const startingWith = (prefix: string) => `${prefix.replace(/[!_%]/g, '!$&')}%`;

/**
 * The `mysql` offering, on a shared MariaDB (10.6 or later) or MySQL (8.0 or later) server: an
 * instance is a database of its own; a binding is a user with a random password, every
 * privilege on that database (but GRANT OPTION) and none anywhere else: it sees no other
 * database, no `mysql.*`, no other session, and has neither PROCESS, FILE nor SUPER. Unbind
 * locks the user, kills its sessions and drops it; deprovision does so for every user of the
 * instance, then drops the tables (reporting progress) and the database.
 */
export class MysqlOffering implements Offering {
  readonly name = 'mysql';
  readonly planSettingsSchema: JsonObject = {
    type: 'object',
    required: ['max_user_connections'],
    additionalProperties: false,
    properties: {
      max_user_connections: { type: 'integer', minimum: 1, maximum: 100000 },
    },
  };
  /**
   * A binding with expires_at gets PASSWORD EXPIRE INTERVAL: from then on the server runs none
   * of its statements but SET PASSWORD. MySQL counts in whole days, so the password expires at
   * the first whole day after bind time that is not before expires_at.
   */
  readonly enforcesCredentialExpiry = true;
  readonly server: string;
  readonly serverConfigured: boolean;
  private readonly admin: Pool;
  private readonly endpoint: PublicEndpoint;
  private serverChecked: Promise<'mariadb' | 'mysql'> | undefined;

  constructor(private readonly options: MysqlOfferingOptions) {
    this.admin = createPool({
      uri: options.serviceUrl,
      connectionLimit: 4,
      connectTimeout: 10_000,
      multipleStatements: false,
      // The admin never reads a table's contents: no dates or big numbers to convert.
      dateStrings: true,
    });
    this.admin.pool.on('connection', (connection) => {
      for (const statement of SESSION_SETTINGS) connection.query(statement, () => undefined);
    });
    this.endpoint = publicEndpoint(options.serviceUrl, 3306, options.publicHost, options.publicPort);
    this.server = `MySQL at ${serverAddress(options.serviceUrl, 3306)} (MYSQL_SERVICE_URL)`;
    this.serverConfigured = options.serverConfigured ?? true;
  }

  async provision(request: InstanceRequest): Promise<ProvisionResult> {
    await this.requireServer();
    const { database } = mysqlNames(request.instanceId);
    const charset = await this.charsetClause(request.parameters);
    await this.run(`create database if not exists ${ident(database)} ${charset}`);
    // A re-run (or a database left by a crashed one) gets the requested defaults all the same.
    await this.run(`alter database ${ident(database)} ${charset}`);
    return {};
  }

  /**
   * Brings every user of the instance to the plan's connection limit (on an upgrade or a plan
   * change the plan's current one, otherwise the one the instance was built with) and, when the
   * update asks for another character set or collation, the database to it. Defaults the tenant
   * set itself (ALTER DATABASE … COLLATE) stay otherwise.
   */
  async update(request: UpdateInstanceRequest): Promise<void> {
    await this.requireServer();
    const { database } = mysqlNames(request.instanceId);
    if (!(await this.databaseExists(database))) {
      throw new PermanentOfferingError(`the database of service instance ${request.instanceId} does not exist`);
    }
    const limit = maxUserConnections(request.planSettings);
    const asked = (['character_set', 'collation'] as const).some(
      (name) => JSON.stringify(request.parameters[name]) !== JSON.stringify(request.previous.parameters[name]),
    );
    if (asked) await this.run(`alter database ${ident(database)} ${await this.charsetClause(request.parameters)}`);
    for (const user of await this.accountsOf(request.instanceId)) {
      await this.run(`alter user if exists ${account(user)} with max_user_connections ${limit}`);
    }
  }

  /**
   * Users first (locked, their sessions killed, dropped), so that nobody writes while the
   * tables go; then the tables a batch at a time, reporting "dropped N of M tables" once a
   * second; then the database with what is left in it (views, routines, events).
   */
  async deprovision(request: InstanceRequest, context: OperationContext): Promise<void> {
    const { database } = mysqlNames(request.instanceId);
    const interval = this.options.progressIntervalMs ?? 1000;
    let reported = Date.now();
    const users = await this.accountsOf(request.instanceId);
    const progress = (dropped: number) =>
      context.reportProgress(`Deprovisioning: dropped ${dropped} of ${users.length} users.`);
    await progress(0);
    for (const [done, user] of users.entries()) {
      await this.dropAccount(user);
      if (Date.now() - reported >= interval || done + 1 === users.length) {
        await progress(done + 1);
        reported = Date.now();
      }
    }
    await this.killSessions('DB', database);
    await this.dropTables(database, context);
    await this.run(`drop database if exists ${ident(database)}`);
  }

  async bind(request: BindingRequest): Promise<BindResult> {
    const flavor = await this.requireServer();
    const { database, username } = mysqlNames(request.instance.instanceId, request.bindingId);
    if (!(await this.databaseExists(database))) {
      throw new PermanentOfferingError(
        `the database of service instance ${request.instance.instanceId} does not exist`,
      );
    }
    const password = randomBytes(24).toString('base64url');
    await this.putUser(flavor, database, username!, password, request);
    const address = `${this.endpoint.uriHost}:${this.endpoint.port}/${database}`;
    const credentials: MysqlCredentials = {
      uri: `mysql://${username}:${password}@${address}`,
      jdbcUrl: `jdbc:mysql://${address}?user=${username}&password=${password}`,
      host: this.endpoint.host,
      port: this.endpoint.port,
      database,
      username: username!,
      password,
    };
    return { credentials: { ...credentials } };
  }

  /**
   * A binding's user with this password, the plan's connection limit, the binding's lifetime and
   * every privilege on the database. A retried job (or a repair) finds the user there: it gets
   * this password, nothing else changes.
   */
  private async putUser(
    flavor: 'mariadb' | 'mysql',
    database: string,
    username: string,
    password: string,
    request: BindingRequest,
  ): Promise<void> {
    const user = { user: username, host: '%' };
    // MariaDB takes the password's hash, which keeps the password out of its logs; MySQL
    // (whose default plugin hashes with a salt) takes the password and masks it in its logs.
    const identified =
      flavor === 'mariadb'
        ? `identified by password ${literal(nativePasswordHash(password))}`
        : `identified by ${literal(password)}`;
    const limit = maxUserConnections(request.instance.planSettings);
    // A plan's credential lifetime: the password expires at the first whole day not before expires_at.
    const days = request.expiresAt ? Math.ceil((request.expiresAt.getTime() - Date.now()) / DAY_MS) : undefined;
    const expiry =
      days === undefined
        ? 'password expire never'
        : days < 1
          ? 'password expire'
          : `password expire interval ${days} day`;
    await this.run(`create user if not exists ${account(user)} ${identified}`, { secret: true });
    await this.run(
      `alter user ${account(user)} ${identified} with max_user_connections ${limit} account unlock ${expiry}`,
      { secret: true },
    );
    await this.run(`grant all privileges on ${grantDatabase(database)}.* to ${account(user)}`);
  }

  /**
   * Drift repair: the database (made again, empty, if dropped), and each binding's user with the
   * password the platform holds, its privileges on the database and the plan's connection limit.
   * Two queries an instance, whatever its bindings. MySQL salts its password hashes, so there a
   * password changed by hand is not seen (a dropped user or a revoked grant is).
   */
  async repair(instance: InstanceRequest, bindings: RecordedBinding[]): Promise<DriftRepair[]> {
    const flavor = await this.requireServer();
    const repairs: DriftRepair[] = [];
    const { database, userPrefix } = mysqlNames(instance.instanceId);
    if (!(await this.databaseExists(database))) {
      await this.provision(instance);
      repairs.push({ kind: 'database' });
    }
    const users = new Map(
      (
        await this.query<{ user: string; auth: string; connections: number; granted: number }>(
          `select u.User as user, u.authentication_string as auth, u.max_user_connections as connections,
             exists (select 1 from mysql.db d where d.User = u.User and d.Host = u.Host and d.Db = ?
                      and ${ALL_GRANTED}) as granted
             from mysql.user u where u.Host = '%' and u.User like ? escape '!'`,
          [grantedName(database), startingWith(userPrefix)],
        )
      ).map((row) => [row.user, row]),
    );
    const limit = maxUserConnections(instance.planSettings);
    for (const { request, credentials } of bindings) {
      if (typeof credentials.password !== 'string') continue;
      const { username } = mysqlNames(instance.instanceId, request.bindingId);
      const found = users.get(username!);
      const password = flavor === 'mysql' || found?.auth === nativePasswordHash(credentials.password);
      if (found && password && Number(found.granted) === 1 && Number(found.connections) === limit) continue;
      await this.putUser(flavor, database, username!, credentials.password, request);
      repairs.push({
        kind: !found ? 'user' : password ? 'user_grants' : 'user_password',
        bindingId: request.bindingId,
      });
    }
    return repairs;
  }

  async unbind(request: BindingRequest): Promise<void> {
    const { username } = mysqlNames(request.instance.instanceId, request.bindingId);
    await this.dropAccount({ user: username!, host: '%' });
  }

  /** Every database and account on the server with Depot's names (two queries). */
  async namedObjects(): Promise<NamedObject[]> {
    const databases = await this.query<{ name: string }>(
      "select schema_name as name from information_schema.schemata where schema_name like 'depot\\_%'",
    );
    const users = await this.query<Account>(
      "select User as user, Host as host from mysql.user where User like 'depot\\_%'",
    );
    return namedObjects(
      [...users.map((user) => account(user)), ...databases.map((row) => row.name)],
      MYSQL_NAME_SHAPES,
    );
  }

  async removeNamedObject(object: NamedObject): Promise<void> {
    if (object.kind === 'user') {
      const [, user, host] = /^'(.*)'@'(.*)'$/.exec(object.name)!;
      await this.dropAccount({ user: user!, host: host! });
    }
    if (object.kind === 'database') {
      await this.killSessions('DB', object.name);
      await this.dropTables(object.name, { reportProgress: async () => {} });
      await this.run(`drop database if exists ${ident(object.name)}`);
    }
  }

  async ping(): Promise<void> {
    await this.requireServer();
  }

  async close(): Promise<void> {
    await this.admin.end();
  }

  /**
   * Locks the user (no new sessions), kills its sessions, drops it. A re-run finds it gone and
   * still kills any session left under its name.
   */
  private async dropAccount(user: Account): Promise<void> {
    await this.run(`alter user if exists ${account(user)} account lock`);
    await this.killSessions('USER', user.user);
    await this.run(`drop user if exists ${account(user)}`);
  }

  /** Kills every session of a user (`USER`), or on a database (`DB`). */
  private async killSessions(column: 'USER' | 'DB', value: string): Promise<void> {
    const sessions = await this.query<{ id: number }>(
      `select ID as id from information_schema.PROCESSLIST where ${column} = ? and ID <> connection_id()`,
      [value],
    );
    for (const { id } of sessions) {
      await this.run(`kill connection ${Number(id)}`).catch((error: unknown) => {
        if ((error as { errno?: number }).errno !== ER_NO_SUCH_THREAD) throw error;
      });
    }
  }

  /**
   * Drops the database's tables, `dropBatchSize` a statement, on a session that does not check
   * foreign keys (so their order does not matter), reporting progress once a second.
   */
  private async dropTables(database: string, context: OperationContext): Promise<void> {
    const batch = this.options.dropBatchSize ?? 100;
    const interval = this.options.progressIntervalMs ?? 1000;
    const tables = await this.tablesOf(database);
    const progress = (dropped: number) =>
      context.reportProgress(`Deprovisioning: dropped ${dropped} of ${tables.length} tables.`);
    await progress(0);
    if (tables.length === 0) return;
    const session = await this.admin.getConnection();
    let clean = false;
    try {
      await this.run('set session foreign_key_checks = 0', { on: session });
      let reported = Date.now();
      for (let dropped = 0; dropped < tables.length;) {
        const names = tables.slice(dropped, dropped + batch).map((table) => `${ident(database)}.${ident(table)}`);
        await this.run(`drop table if exists ${names.join(', ')}`, { on: session });
        dropped += names.length;
        if (Date.now() - reported >= interval || dropped === tables.length) {
          await progress(dropped);
          reported = Date.now();
        }
      }
      await this.run('set session foreign_key_checks = 1', { on: session });
      clean = true;
    } finally {
      // A session left without foreign key checks never goes back to the pool.
      if (clean) session.release();
      else session.destroy();
    }
  }

  /**
   * The users of an instance: those named after it, and any other that has privileges on its
   * database (so that none outlives it).
   */
  private accountsOf(instanceId: string): Promise<Account[]> {
    const { database, userPrefix } = mysqlNames(instanceId);
    return this.query<Account>(
      `select User as user, Host as host from mysql.user where User like ? escape '!'
        union select User as user, Host as host from mysql.db where Db in (?, ?)`,
      [startingWith(userPrefix), database, grantedName(database)],
    );
  }

  private async tablesOf(database: string): Promise<string[]> {
    const rows = await this.query<{ name: string }>(
      `select TABLE_NAME as name from information_schema.TABLES
        where TABLE_SCHEMA = ? and TABLE_TYPE in ('BASE TABLE', 'SYSTEM VERSIONED') order by TABLE_NAME`,
      [database],
    );
    return rows.map((row) => row.name);
  }

  private async databaseExists(database: string): Promise<boolean> {
    const rows = await this.query('select 1 from information_schema.SCHEMATA where SCHEMA_NAME = ?', [database]);
    return rows.length === 1;
  }

  /**
   * `character set … collate …` for the parameters: the allow-list first (the names go into
   * SQL), then what only the server knows: that it has the character set and the collation,
   * and that the collation belongs to the character set. Refused before anything changes.
   */
  private async charsetClause(parameters: JsonObject): Promise<string> {
    const { characterSet, collation } = requestedCharset(parameters);
    if (collation !== undefined) {
      const [known] = await this.query<{ charset: string }>(
        'select CHARACTER_SET_NAME as charset from information_schema.COLLATIONS where COLLATION_NAME = ?',
        [collation],
      );
      if (!known)
        throw new PermanentOfferingError(`parameters.collation: ${this.server} has no collation ${collation}`);
      if (characterSet !== undefined && known.charset !== characterSet) {
        throw new PermanentOfferingError(
          `parameters.collation: ${collation} is a collation of ${known.charset}, not of ${characterSet} ` +
            '(parameters.character_set)',
        );
      }
      return `character set ${ident(known.charset)} collate ${ident(collation)}`;
    }
    const wanted = characterSet ?? DEFAULT_CHARACTER_SET;
    const known = await this.query('select 1 from information_schema.CHARACTER_SETS where CHARACTER_SET_NAME = ?', [
      wanted,
    ]);
    if (known.length === 0) {
      throw new PermanentOfferingError(`parameters.character_set: ${this.server} has no character set ${wanted}`);
    }
    return `character set ${ident(wanted)}`;
  }

  /**
   * Whether the server can hold tenants; if not, provision, update and bind fail at once,
   * saying why (and Depot does not start, or leaves `mysql` out):
   * - MariaDB 10.6 or later, or MySQL 8.0 or later (CREATE USER IF NOT EXISTS, ACCOUNT LOCK,
   *   PASSWORD EXPIRE INTERVAL);
   * - no anonymous user (`''@host`): it would take the logins of bindings that come from its
   *   host, and anyone could use whatever it may.
   */
  private requireServer(): Promise<'mariadb' | 'mysql'> {
    this.serverChecked ??= (async () => {
      const [row] = await this.query<{ version: string }>('select version() as version');
      const version = row?.version ?? '';
      const flavor = /mariadb/i.test(version) ? 'mariadb' : 'mysql';
      const [major = 0, minor = 0] = version.split(/[.-]/).map(Number);
      const recent = flavor === 'mariadb' ? major > 10 || (major === 10 && minor >= 6) : major >= 8;
      if (!recent) {
        throw new PermanentOfferingError(
          `the mysql offering needs MariaDB 10.6 or later, or MySQL 8.0 or later; ${this.server} runs ${version}`,
        );
      }
      const anonymous = await this.query<Account>("select User as user, Host as host from mysql.user where User = ''");
      if (anonymous.length > 0) {
        throw new PermanentOfferingError(
          `${this.server} has anonymous users (${anonymous.map((a) => `''@'${a.host}'`).join(', ')}), which would ` +
            'take the logins of bindings from their host. Drop them (DROP USER ' +
            `${anonymous.map((a) => `''@'${a.host}'`).join(', ')}).`,
        );
      }
      return flavor;
    })().catch((error: unknown) => {
      this.serverChecked = undefined; // checked again next time (the server may have been fixed)
      throw error;
    });
    return this.serverChecked;
  }

  /** A query's rows, on the admin pool. */
  private async query<T extends object>(sql: string, values: unknown[] = []): Promise<T[]> {
    try {
      const [rows] = await this.admin.query<(T & RowDataPacket)[]>({ sql, values, timeout: STATEMENT_TIMEOUT_MS });
      return rows;
    } catch (error) {
      throw offeringError(error, sql, false);
    }
  }

  /**
   * A statement, on the admin pool or on one session. `secret`: the statement carries a
   * password (or its hash), so an error says only its code, never the server's message (a
   * syntax error quotes the statement).
   */
  private async run(sql: string, options: { secret?: boolean; on?: PoolConnection } = {}): Promise<void> {
    try {
      await (options.on ?? this.admin).query({ sql, timeout: STATEMENT_TIMEOUT_MS });
    } catch (error) {
      throw offeringError(error, sql, options.secret ?? false);
    }
  }
}
