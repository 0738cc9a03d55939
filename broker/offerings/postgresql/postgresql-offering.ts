import { randomBytes } from 'node:crypto';
import pg from 'pg';
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
  type RecordedBinding,
  type InstanceRequest,
  type Offering,
  type ProvisionResult,
  type UpdateInstanceRequest,
} from '../offering.js';
import { scramSha256Verifier } from './scram.js';

export interface PostgresqlOfferingOptions {
  /** Admin connection to the server that holds the instances (needs CREATEDB and CREATEROLE). */
  serviceUrl: string;
  /** Whether serviceUrl was configured (POSTGRES_SERVICE_URL set) rather than defaulted. */
  serverConfigured?: boolean;
  /** Host and port written into credentials; default: those of serviceUrl. */
  publicHost?: string;
  publicPort?: number;
  logger: Logger;
}

/** What a binding of this offering returns as `credentials`. */
export interface PostgresqlCredentials {
  uri: string;
  jdbcUrl: string;
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
}

/**
 * Extensions a tenant may ask for: trusted, self-contained ones. Never those that reach
 * outside the database (dblink, postgres_fdw, file_fdw, adminpack, …).
 */
export const ALLOWED_EXTENSIONS = new Set([
  'btree_gin',
  'btree_gist',
  'citext',
  'fuzzystrmatch',
  'hstore',
  'intarray',
  'ltree',
  'pg_trgm',
  'pgcrypto',
  'tablefunc',
  'unaccent',
  'uuid-ossp',
]);

/**
 * Database-level defaults a plan may set (`x-depot.database_settings`): ordinary session
 * settings (PGC_USERSET), applied with ALTER DATABASE … SET. Changing them in the catalog and
 * bumping the plan's maintenance_info is what an upgrade rolls out.
 */
export const DATABASE_SETTINGS = [
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'work_mem',
] as const;

/** The plan's connection limit, from its `x-depot` settings (checked at catalog load). */
function connectionLimit(settings: JsonObject): number {
  const limit = settings.connection_limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
    throw new PermanentOfferingError('the plan has no valid x-depot.connection_limit');
  }
  return limit;
}

/** Names on the server, derived from ids by hashing: any id is safe, and always ≤ 63 bytes. */
export function postgresNames(instanceId: string, bindingId?: string) {
  const database = `depot_${idDigest(instanceId, 24)}`;
  return {
    database,
    owner: `${database}_owner`,
    ...(bindingId !== undefined ? { login: `${database}_${idDigest(bindingId, 12)}` } : {}),
  };
}

/**
 * The shapes of postgresNames' names, for `depot orphans`, in the order they are removed in: a
 * login role (which may own objects in the database), the database, then its owner role.
 */
export const POSTGRES_NAME_SHAPES = {
  login_role: /^depot_([0-9a-f]{24})_([0-9a-f]{12})$/,
  database: /^depot_([0-9a-f]{24})$/,
  owner_role: /^depot_([0-9a-f]{24})_owner$/,
};

/**
 * Every statement of an operation ends well within OPERATION_TIMEOUT_SECONDS, so a job does
 * not go on changing the server long after its operation was failed for taking too long.
 */
const SESSION_SETTINGS = {
  application_name: 'depot-postgresql-offering',
  statement_timeout: 5 * 60_000,
  lock_timeout: 30_000,
  connectionTimeoutMillis: 10_000,
};

const ident = pg.escapeIdentifier;
const literal = pg.escapeLiteral;

/**
 * The `postgresql` offering: an instance is a database owned by a NOLOGIN role, a binding is
 * a LOGIN role that is a member of it (so every binding sees the same tables). All names are
 * quoted identifiers derived from hashes; parameters are checked against an allow-list by
 * the plan schema before they get here.
 */
export class PostgresqlOffering implements Offering {
  readonly name = 'postgresql';
  readonly planSettingsSchema: JsonObject = {
    type: 'object',
    required: ['connection_limit'],
    additionalProperties: false,
    properties: {
      connection_limit: { type: 'integer', minimum: 1, maximum: 100000 },
      database_settings: {
        type: 'object',
        additionalProperties: false,
        // Values PostgreSQL takes for each: a plan it would refuse is refused at catalog load.
        properties: Object.fromEntries(
          DATABASE_SETTINGS.map((name) => [
            name,
            name === 'work_mem'
              ? {
                  anyOf: [
                    { type: 'integer', minimum: 64, maximum: 2147483647 },
                    { type: 'string', pattern: '^[1-9]\\d* ?(kB|MB|GB|TB)$' },
                  ],
                }
              : {
                  anyOf: [
                    { type: 'integer', minimum: 0, maximum: 2147483647 },
                    { type: 'string', pattern: '^\\d+ ?(us|ms|s|min|h|d)$' },
                  ],
                },
          ]),
        ),
      },
    },
  };
  /** Binding roles get VALID UNTIL: PostgreSQL refuses their password after expires_at. */
  readonly enforcesCredentialExpiry = true;
  readonly server: string;
  readonly serverConfigured: boolean;
  private readonly admin: pg.Pool;
  private readonly endpoint: PublicEndpoint;

  constructor(private readonly options: PostgresqlOfferingOptions) {
    this.admin = new pg.Pool({ connectionString: options.serviceUrl, max: 4, ...SESSION_SETTINGS });
    this.admin.on('error', (error) =>
      options.logger.warn({ err: error }, 'postgresql offering: idle connection error'),
    );
    this.endpoint = publicEndpoint(options.serviceUrl, 5432, options.publicHost, options.publicPort);
    this.server = `PostgreSQL at ${serverAddress(options.serviceUrl, 5432)} (POSTGRES_SERVICE_URL)`;
    this.serverConfigured = options.serverConfigured ?? true;
  }

  provision(request: InstanceRequest): Promise<ProvisionResult> {
    return classifyErrors(async () => {
      const { database, owner } = postgresNames(request.instanceId);
      const limit = connectionLimit(request.planSettings);
      await this.ensureRole(owner, 'nologin');
      if (!(await this.databaseExists(database))) {
        await ignoring('42P04', () =>
          this.admin.query(`create database ${ident(database)} owner ${ident(owner)} connection limit ${limit}`),
        );
      } else {
        await this.admin.query(`alter database ${ident(database)} owner to ${ident(owner)}`);
      }
      await this.admin.query(
        `comment on database ${ident(database)} is ${literal(`Depot service instance ${request.instanceId}`)}`,
      );
      await this.converge(database, request);
      return {};
    });
  }

  /**
   * Brings the database to the plan's settings and the parameters. On an upgrade the settings
   * are the plan's current ones (a new connection limit, new database settings); otherwise
   * they are those the instance was built with, so nothing changes that the user didn't ask for.
   */
  update(request: UpdateInstanceRequest): Promise<void> {
    return classifyErrors(async () => {
      const { database } = postgresNames(request.instanceId);
      if (!(await this.databaseExists(database))) {
        throw new PermanentOfferingError(`the database of service instance ${request.instanceId} does not exist`);
      }
      await this.converge(database, request);
    });
  }

  /**
   * Idempotent, in one transaction: connection limit, database settings, no access for PUBLIC;
   * then extensions. Of the settings, only those a plan may set are touched: the plan's are
   * set, the others reset; settings the tenant made itself (as the owner) stay.
   */
  private async converge(database: string, request: InstanceRequest): Promise<void> {
    const limit = connectionLimit(request.planSettings);
    const settings = databaseSettings(request.planSettings);
    const client = await this.admin.connect();
    try {
      await client.query('begin');
      await client.query(`alter database ${ident(database)} connection limit ${limit}`);
      for (const name of DATABASE_SETTINGS) {
        const value = settings[name];
        await client.query(
          value === undefined
            ? `alter database ${ident(database)} reset ${ident(name)}`
            : `alter database ${ident(database)} set ${ident(name)} = ${literal(String(value))}`,
        );
      }
      await client.query(`revoke all on database ${ident(database)} from public`);
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    await this.createExtensions(database, request.parameters);
  }

  deprovision(request: InstanceRequest): Promise<void> {
    return classifyErrors(async () => {
      const { database, owner } = postgresNames(request.instanceId);
      // WITH (FORCE) ends every session on the database first (PostgreSQL 13+).
      await this.admin.query(`drop database if exists ${ident(database)} with (force)`);
      const members = await this.admin.query<{ rolname: string }>(
        `select r.rolname from pg_auth_members m
           join pg_roles r on r.oid = m.member join pg_roles g on g.oid = m.roleid
          where g.rolname = $1`,
        [owner],
      );
      for (const { rolname } of members.rows) await this.dropLogin(rolname);
      await this.admin.query(`drop role if exists ${ident(owner)}`);
    });
  }

  bind(request: BindingRequest): Promise<BindResult> {
    return classifyErrors(async () => {
      const { database, owner, login } = postgresNames(request.instance.instanceId, request.bindingId);
      if (!(await this.databaseExists(database))) {
        throw new PermanentOfferingError(
          `the database of service instance ${request.instance.instanceId} does not exist`,
        );
      }
      const password = randomBytes(24).toString('base64url');
      // A retried job finds the role already there: it gets a new password, nothing else changes.
      await this.putLogin(login!, owner, password, request.expiresAt);
      const address = `${this.endpoint.uriHost}:${this.endpoint.port}/${database}`;
      const credentials: PostgresqlCredentials = {
        uri: `postgresql://${login}:${password}@${address}`,
        jdbcUrl: `jdbc:postgresql://${address}?user=${login}&password=${password}`,
        host: this.endpoint.host,
        port: this.endpoint.port,
        database,
        username: login!,
        password,
      };
      return { credentials: { ...credentials } };
    });
  }

  /**
   * Drift repair: the owner role and the database (made again, empty, if dropped), and each
   * binding's login role with its membership, with the password the platform holds.
   */
  repair(instance: InstanceRequest, bindings: RecordedBinding[]): Promise<DriftRepair[]> {
    return classifyErrors(async () => {
      const repairs: DriftRepair[] = [];
      const { database, owner } = postgresNames(instance.instanceId);
      if (!(await this.roleExists(owner))) repairs.push({ kind: 'owner_role' });
      if (!(await this.databaseExists(database))) repairs.push({ kind: 'database' });
      if (repairs.length > 0) await this.provision(instance);
      // One query for every login role of the instance: whether it may log in and is a member of the owner.
      const { rows } = await this.admin.query<{ rolname: string; rolcanlogin: boolean; member: boolean }>(
        `select r.rolname, r.rolcanlogin, exists (
           select 1 from pg_auth_members m join pg_roles g on g.oid = m.roleid
            where m.member = r.oid and g.rolname = $2) as member
           from pg_roles r where left(r.rolname, length($1)) = $1`,
        [`${database}_`, owner],
      );
      const logins = new Map(rows.map((row) => [row.rolname, row]));
      for (const { request, credentials } of bindings) {
        const { login } = postgresNames(instance.instanceId, request.bindingId);
        const found = logins.get(login!);
        if (found?.rolcanlogin && found.member) continue;
        if (typeof credentials.password !== 'string') continue;
        await this.putLogin(login!, owner, credentials.password, request.expiresAt);
        repairs.push({ kind: found ? 'login_role_grants' : 'login_role', bindingId: request.bindingId });
      }
      return repairs;
    });
  }

  /** A binding's login role with this password (and lifetime), a member of the owner role. */
  private async putLogin(login: string, owner: string, password: string, expiresAt: Date | undefined) {
    await this.ensureRole(login, 'login');
    const verifier = await scramSha256Verifier(password);
    // A plan's credential lifetime: the password stops working at expires_at.
    const validUntil = expiresAt ? expiresAt.toISOString() : 'infinity';
    await this.admin.query(
      `alter role ${ident(login)} with login password ${literal(verifier)} valid until ${literal(validUntil)}`,
    );
    await this.admin.query(`grant ${ident(owner)} to ${ident(login)}`);
    // Sessions act as the owner role, so tables belong to the instance, not to one binding.
    await this.admin.query(`alter role ${ident(login)} set role = ${ident(owner)}`);
  }

  unbind(request: BindingRequest): Promise<void> {
    return classifyErrors(async () => {
      const { login } = postgresNames(request.instance.instanceId, request.bindingId);
      await this.dropLogin(login!);
    });
  }

  /** Every database and role on the server with Depot's names (one query). */
  async namedObjects(): Promise<NamedObject[]> {
    const { rows } = await this.admin.query<{ name: string }>(
      `select datname as name from pg_database where datname like 'depot\\_%'
       union all select rolname from pg_roles where rolname like 'depot\\_%'`,
    );
    return namedObjects(
      rows.map((row) => row.name),
      POSTGRES_NAME_SHAPES,
    );
  }

  async removeNamedObject(object: NamedObject): Promise<void> {
    if (object.kind === 'login_role') return this.dropLogin(object.name);
    // WITH (FORCE) ends the database's sessions first (PostgreSQL 13+).
    if (object.kind === 'database')
      await this.admin.query(`drop database if exists ${ident(object.name)} with (force)`);
    if (object.kind === 'owner_role') await this.admin.query(`drop role if exists ${ident(object.name)}`);
  }

  async ping(): Promise<void> {
    await this.admin.query('select 1');
  }

  async close(): Promise<void> {
    await this.admin.end();
  }

  /** Ends a login role's sessions and drops it; whatever it owned goes to the instance's owner. */
  private async dropLogin(role: string): Promise<void> {
    if (!(await this.roleExists(role))) return;
    await this.admin.query(`alter role ${ident(role)} nologin`);
    await this.admin.query('select pg_terminate_backend(pid) from pg_stat_activity where usename = $1', [role]);
    // Objects the role created outside `set role` (e.g. after RESET ROLE) are dropped with it.
    const databases = await this.admin.query<{ datname: string }>(
      `select distinct d.datname from pg_shdepend s join pg_database d on d.oid = s.dbid
        join pg_roles r on r.oid = s.refobjid where r.rolname = $1`,
      [role],
    );
    for (const { datname } of databases.rows) {
      await this.inDatabase(datname, async (client) => {
        await client.query(`drop owned by ${ident(role)}`);
      });
    }
    await this.admin.query(`drop role if exists ${ident(role)}`);
  }

  private async databaseExists(name: string): Promise<boolean> {
    return (await this.admin.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1;
  }

  private async roleExists(name: string): Promise<boolean> {
    return (await this.admin.query('select 1 from pg_roles where rolname = $1', [name])).rowCount === 1;
  }

  private async ensureRole(role: string, login: 'login' | 'nologin'): Promise<void> {
    if (await this.roleExists(role)) return;
    await ignoring('42710', () => this.admin.query(`create role ${ident(role)} ${login}`));
  }

  private async createExtensions(database: string, parameters: JsonObject): Promise<void> {
    const requested: unknown[] = Array.isArray(parameters.extensions) ? parameters.extensions : [];
    // Enforced here too, whatever the catalog's plan schema says: extensions run as the admin.
    const refused = requested.filter((e) => typeof e !== 'string' || !ALLOWED_EXTENSIONS.has(e));
    if (refused.length > 0) {
      throw new PermanentOfferingError(
        `extensions ${refused.map((e) => JSON.stringify(e)).join(', ')} are not allowed; ` +
          `allowed: ${[...ALLOWED_EXTENSIONS].join(', ')}`,
      );
    }
    const extensions = requested as string[];
    if (extensions.length === 0) return;
    await this.inDatabase(database, async (client) => {
      for (const extension of extensions) await client.query(`create extension if not exists ${ident(extension)}`);
    });
  }

  private async inDatabase(database: string, work: (client: pg.Client) => Promise<void>): Promise<void> {
    const url = new URL(this.options.serviceUrl);
    url.pathname = `/${encodeURIComponent(database)}`;
    const client = new pg.Client({ connectionString: url.toString(), ...SESSION_SETTINGS });
    await client.connect();
    try {
      await work(client);
    } finally {
      await client.end();
    }
  }
}

/** The plan's `x-depot.database_settings` (names checked against DATABASE_SETTINGS at catalog load). */
function databaseSettings(settings: JsonObject): Record<string, string | number> {
  const given = settings.database_settings;
  if (given === undefined) return {};
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new PermanentOfferingError('the plan has an invalid x-depot.database_settings');
  }
  const entries = Object.entries(given);
  const unknown = entries.filter(([name]) => !(DATABASE_SETTINGS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new PermanentOfferingError(`x-depot.database_settings may not set ${unknown[0]![0]}`);
  return Object.fromEntries(
    entries.filter((e): e is [string, string | number] => typeof e[1] === 'string' || typeof e[1] === 'number'),
  );
}

/**
 * SQLSTATE classes that a retry cannot fix (syntax or access rule, feature not supported,
 * data exception, integrity, invalid catalog name, invalid authorization): the operation
 * fails at once. Connection loss, resource shortage and lock conflicts are retried.
 */
const PERMANENT_SQLSTATE_CLASSES = new Set(['0A', '22', '23', '28', '3D', '42']);

async function classifyErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && PERMANENT_SQLSTATE_CLASSES.has(code.slice(0, 2))) {
      throw new PermanentOfferingError((error as Error).message);
    }
    throw error;
  }
}

/** Runs a statement, treating the given SQLSTATE (a concurrent create) as success. */
async function ignoring(sqlstate: string, statement: () => Promise<unknown>): Promise<void> {
  try {
    await statement();
  } catch (error) {
    if ((error as { code?: string }).code !== sqlstate) throw error;
  }
}
