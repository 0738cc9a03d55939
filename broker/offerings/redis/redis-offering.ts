import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { JsonObject } from '../../../osb/index.js';
import { serverAddress } from '../../config.js';
import type { Logger } from '../../../runtime/logger.js';
import { idDigest, publicEndpoint, type PublicEndpoint } from '../endpoint.js';
import { namedObjects, type NamedObject } from '../named-objects.js';
import { redisOptions } from '../../redis.js';
import {
  PermanentOfferingError,
  type BindResult,
  type BindingRequest,
  type DriftRepair,
  type RecordedBinding,
  type InstanceRequest,
  type Offering,
  type OperationContext,
  type ProvisionResult,
} from '../offering.js';

export interface RedisOfferingOptions {
  /** Admin connection to the server that holds the instances (needs ACL SETUSER, SCAN, UNLINK). */
  serviceUrl: string;
  /** Whether serviceUrl was configured (REDIS_SERVICE_URL set) rather than defaulted. */
  serverConfigured?: boolean;
  /** Host and port written into credentials; default: those of serviceUrl. */
  publicHost?: string;
  publicPort?: number;
  logger: Logger;
  /** Keys scanned and unlinked per round trip when deprovisioning. */
  deleteBatchSize?: number;
  /** How often deprovision reports its progress to last_operation. */
  progressIntervalMs?: number;
}

/** What a binding of this offering returns as `credentials`. */
export interface RedisCredentials {
  uri: string;
  host: string;
  port: number;
  username: string;
  password: string;
  key_prefix: string;
}

/** Names on the server, derived from ids by hashing: any id is safe in a glob pattern and a URI. */
export function redisNames(instanceId: string) {
  const instance = idDigest(instanceId, 24);
  return {
    /** Every key and channel of the instance starts with it. */
    keyPrefix: `si:${instance}:`,
    /** Every ACL user of the instance's bindings starts with it. */
    userPrefix: `si-${instance}-`,
  };
}

/**
 * The shapes of Depot's names on a Redis server, for `depot orphans`, in the order they are removed
 * in: a binding's ACL user, then an instance's keys (`si:<digest>:*`, one object for all of them).
 */
export const REDIS_NAME_SHAPES = {
  acl_user: /^si-([0-9a-f]{24})-([0-9a-f]{12})$/,
  keys: /^si:([0-9a-f]{24}):\*$/,
};

/** The ACL user of a binding. */
export function redisUsername(instanceId: string, bindingId: string): string {
  return `${redisNames(instanceId).userPrefix}${idDigest(bindingId, 12)}`;
}

/**
 * Commands a binding may not run, beyond `-@admin -@dangerous` (CONFIG, FLUSHALL, KEYS, INFO,
 * MONITOR, CLIENT KILL/LIST, DEBUG, SHUTDOWN, SORT, MIGRATE, …):
 * - scripting (EVAL, FUNCTION, SCRIPT): a script can hold the whole server for seconds, and
 *   functions are server-wide;
 * - commands that see or reach beyond the instance's keys: SCAN, RANDOMKEY and DBSIZE see the
 *   whole keyspace, PUBSUB lists every channel, CLIENT TRACKING in broadcast mode reports other
 *   tenants' key names;
 *   MEMORY STATS/DOCTOR/MALLOC-STATS report on the whole server (MEMORY PURGE acts on it), and
 *   CLUSTER subcommands list keys of any slot;
 * - SELECT, MOVE and COPY (… DB n), which would put keys where deprovisioning does not look.
 * Module commands are not confined by key patterns: servers with modules are refused.
 */
export const DENIED_COMMANDS = [
  '-@admin',
  '-@dangerous',
  '-@scripting',
  '-scan',
  '-randomkey',
  '-dbsize',
  '-pubsub',
  '-client|tracking',
  '-cluster',
  '-memory|stats',
  '-memory|doctor',
  '-memory|malloc-stats',
  '-memory|purge',
  '-select',
  '-move',
  '-copy',
];

/**
 * The ACL rules of a binding's user: its instance's keys and channels, no administration.
 * Read-only users also lose the write commands (XREADGROUP, for one, only reads its key yet
 * changes the stream's consumer group).
 */
export function bindingAclRules(keyPrefix: string, readOnly: boolean): string[] {
  return [
    `${readOnly ? '%R' : ''}~${keyPrefix}*`,
    `&${keyPrefix}*`,
    '+@all',
    ...DENIED_COMMANDS,
    ...(readOnly ? ['-@write'] : []),
  ];
}

/**
 * The `redis` offering, on a shared Redis 7 server: an instance is a key prefix
 * (`si:<hash>:`); a binding is an ACL user with a random password that can only use keys and
 * channels under that prefix and cannot run administrative or dangerous commands. Unbind
 * deletes the user (which ends its connections); deprovision deletes the users, then the keys,
 * in batches, reporting progress.
 */
export class RedisOffering implements Offering {
  readonly name = 'redis';
  readonly planSettingsSchema: JsonObject = { type: 'object', additionalProperties: false, properties: {} };
  /** Redis ACL users cannot expire; plans of this offering have no credential lifetime. */
  readonly enforcesCredentialExpiry = false;
  readonly server: string;
  readonly serverConfigured: boolean;
  private readonly admin: Redis;
  private readonly endpoint: PublicEndpoint;
  private readonly scheme: string;
  private serverChecked: Promise<void> | undefined;

  constructor(private readonly options: RedisOfferingOptions) {
    this.admin = new Redis({
      ...redisOptions(options.serviceUrl),
      connectionName: 'depot-redis-offering',
      // While the server is away (a restart, a failover) commands wait through about 30 s of
      // reconnecting, then fail and the job is retried; none waits on a dead socket for ever.
      maxRetriesPerRequest: 20,
      commandTimeout: 30_000,
      connectTimeout: 10_000,
    });
    this.admin.on('error', (error: Error) => options.logger.warn({ err: error }, 'redis offering: connection error'));
    this.endpoint = publicEndpoint(options.serviceUrl, 6379, options.publicHost, options.publicPort);
    this.scheme = new URL(options.serviceUrl).protocol === 'rediss:' ? 'rediss' : 'redis';
    this.server = `Redis at ${serverAddress(options.serviceUrl, 6379)} (REDIS_SERVICE_URL)`;
    this.serverConfigured = options.serverConfigured ?? true;
  }

  /** Nothing to create: the key prefix is the instance. Checks the server can isolate tenants. */
  async provision(_request: InstanceRequest): Promise<ProvisionResult> {
    await this.requireIsolation();
    return {};
  }

  /** The `shared` plan has no settings and instances take no parameters: nothing changes. */
  async update(): Promise<void> {
    await this.requireIsolation();
  }

  async deprovision(request: InstanceRequest, context: OperationContext): Promise<void> {
    const { keyPrefix, userPrefix } = redisNames(request.instanceId);
    // Users first, so that nobody writes new keys while they are being deleted.
    const users = ((await this.command('ACL', 'USERS')) as string[]).filter((u) => u.startsWith(userPrefix));
    for (const user of users) await this.deleteUser(user);
    await this.deleteKeys(keyPrefix, context);
    await this.persistAcl();
  }

  async bind(request: BindingRequest): Promise<BindResult> {
    await this.requireIsolation();
    const { keyPrefix } = redisNames(request.instance.instanceId);
    const username = redisUsername(request.instance.instanceId, request.bindingId);
    const password = randomBytes(24).toString('base64url');
    // `#<sha256>` rather than `>password`: the clear password never travels in a command that
    // could end up in an error report. A retried job resets the user with a new password.
    const hash = createHash('sha256').update(password).digest('hex');
    const readOnly = request.parameters.read_only === true;
    await this.command('ACL', 'SETUSER', username, 'reset', 'on', `#${hash}`, ...bindingAclRules(keyPrefix, readOnly));
    await this.persistAcl();
    const credentials: RedisCredentials = {
      uri:
        `${this.scheme}://${encodeURIComponent(username)}:${password}@${this.endpoint.uriHost}:` +
        `${this.endpoint.port}`,
      host: this.endpoint.host,
      port: this.endpoint.port,
      username: username,
      password,
      key_prefix: keyPrefix,
    };
    return { credentials: { ...credentials } };
  }

  /**
   * Drift repair: each binding's ACL user as bind made it, with the password the platform holds
   * (Redis keeps users in memory unless it has an ACL file, so a restart loses them). The user is
   * set again and compared with what the server had; ACL SAVE when one changed.
   */
  async repair(instance: InstanceRequest, bindings: RecordedBinding[]): Promise<DriftRepair[]> {
    await this.requireIsolation();
    const { keyPrefix } = redisNames(instance.instanceId);
    const users = bindings.flatMap(({ request, credentials }) =>
      typeof credentials.password === 'string'
        ? [
            {
              bindingId: request.bindingId,
              username: redisUsername(instance.instanceId, request.bindingId),
              hash: createHash('sha256').update(credentials.password).digest('hex'),
              rules: bindingAclRules(keyPrefix, request.parameters.read_only === true),
            },
          ]
        : [],
    );
    // Each step's commands go out together (one round trip a step, not one a binding).
    const read = () =>
      Promise.all(users.map(async ({ username }) => JSON.stringify(await this.command('ACL', 'GETUSER', username))));
    const before = await read();
    await Promise.all(
      users.map(({ username, hash, rules }) =>
        this.command('ACL', 'SETUSER', username, 'reset', 'on', `#${hash}`, ...rules),
      ),
    );
    const after = await read();
    const repairs: DriftRepair[] = users.flatMap(({ bindingId }, i) =>
      after[i] === before[i] ? [] : [{ kind: before[i] === 'null' ? 'acl_user' : 'acl_rules', bindingId }],
    );
    if (repairs.length > 0) await this.persistAcl();
    return repairs;
  }

  async unbind(request: BindingRequest): Promise<void> {
    await this.deleteUser(redisUsername(request.instance.instanceId, request.bindingId));
    await this.persistAcl();
  }

  /** Every ACL user with Depot's names, and every instance prefix that has keys (one SCAN of the keyspace). */
  async namedObjects(): Promise<NamedObject[]> {
    const names = new Set((await this.command('ACL', 'USERS')) as string[]);
    let cursor = '0';
    do {
      const [next, keys] = (await this.command('SCAN', cursor, 'MATCH', 'si:*', 'COUNT', '1000')) as [string, string[]];
      cursor = next;
      for (const key of keys) {
        const prefix = /^si:[0-9a-f]{24}:/.exec(key)?.[0];
        if (prefix) names.add(`${prefix}*`);
      }
    } while (cursor !== '0');
    return namedObjects(names, REDIS_NAME_SHAPES);
  }

  async removeNamedObject(object: NamedObject): Promise<void> {
    if (object.kind === 'acl_user') {
      await this.deleteUser(object.name);
      await this.persistAcl();
    }
    if (object.kind === 'keys') await this.deleteKeys(object.name.slice(0, -1), { reportProgress: async () => {} });
  }

  async ping(): Promise<void> {
    await this.admin.ping();
    await this.requireIsolation();
  }

  async close(): Promise<void> {
    this.admin.disconnect();
  }

  /** ACL DELUSER also ends the user's connections; CLIENT KILL makes sure of it. */
  private async deleteUser(username: string): Promise<void> {
    await this.command('ACL', 'DELUSER', username);
    await this.command('CLIENT', 'KILL', 'USER', username).catch((error: Error) => {
      if (!/no such user/i.test(error.message)) throw error;
    });
  }

  /**
   * Deletes every key under the prefix, a batch at a time (SCAN + UNLINK: each round trip
   * is short, so the server goes on serving everyone else), reporting "deleted N of about M
   * keys" once a second. M is estimated by sampling, without a pass over the keyspace.
   */
  private async deleteKeys(keyPrefix: string, context: OperationContext): Promise<void> {
    const batch = this.options.deleteBatchSize ?? 1000;
    const interval = this.options.progressIntervalMs ?? 1000;
    const estimate = await this.estimateKeys(keyPrefix);
    const progress = (deleted: number) =>
      context.reportProgress(`Deprovisioning: deleted ${deleted} of about ${Math.max(estimate, deleted)} keys.`);
    await progress(0);
    let deleted = 0;
    let reported = Date.now();
    let cursor = '0';
    do {
      const [next, keys] = (await this.command('SCAN', cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', String(batch))) as [
        string,
        string[],
      ];
      cursor = next;
      if (keys.length > 0) deleted += (await this.command('UNLINK', ...keys)) as number;
      if (Date.now() - reported >= interval) {
        await progress(deleted);
        reported = Date.now();
      }
    } while (cursor !== '0');
    await progress(deleted);
  }

  /** DBSIZE × the share of up to 1000 random keys that carry the prefix. */
  private async estimateKeys(keyPrefix: string): Promise<number> {
    const total = (await this.command('DBSIZE')) as number;
    const samples = Math.min(total, 1000);
    if (samples === 0) return 0;
    const pipeline = this.admin.pipeline();
    for (let i = 0; i < samples; i++) pipeline.randomkey();
    const results = (await pipeline.exec()) ?? [];
    const hits = results.filter(
      ([error, key]) => !error && typeof key === 'string' && key.startsWith(keyPrefix),
    ).length;
    return Math.round((total * hits) / samples);
  }

  /**
   * Whether ACL users can keep tenants apart on this server; if not, provision, update and bind
   * fail at once, saying why:
   * - Redis 7 or later (read-only key patterns, per-subcommand ACL categories);
   * - no password-less `default` user: anyone, a binding included, could `AUTH default` and
   *   own the server (a stock Redis is like this: give tenants a server of their own);
   * - no modules: their commands are not confined by key patterns.
   */
  private requireIsolation(): Promise<void> {
    this.serverChecked ??= (async () => {
      const info = (await this.command('INFO', 'server')) as string;
      const version = /redis_version:(\d+)/.exec(info)?.[1];
      if (!version || Number(version) < 7) {
        throw new PermanentOfferingError(
          `the redis offering needs Redis 7 or later for ACLs; ${this.server} runs ${version ?? 'an unknown version'}`,
        );
      }
      const flags = aclField((await this.command('ACL', 'GETUSER', 'default')) as unknown[] | null, 'flags');
      if (Array.isArray(flags) && flags.includes('on') && flags.includes('nopass')) {
        throw new PermanentOfferingError(
          `${this.server} lets anyone log in as "default" without a password, ` +
            'so its tenants could not be kept apart. ' +
            'Turn that user off (ACL SETUSER default off) or give it a password, ' +
            'and give Depot an admin user of its own.',
        );
      }
      const modules = (await this.command('MODULE', 'LIST')) as unknown[];
      if (modules.length > 0) {
        throw new PermanentOfferingError(
          `${this.server} has modules loaded, whose commands ACL key patterns do not confine`,
        );
      }
    })().catch((error: unknown) => {
      this.serverChecked = undefined; // checked again next time (the server may have been fixed)
      throw error;
    });
    return this.serverChecked;
  }

  /** ACL SAVE when the server keeps its users in an ACL file, so that they survive a restart. */
  private async persistAcl(): Promise<void> {
    await this.command('ACL', 'SAVE').catch((error: Error) => {
      if (!/not configured to use an ACL file/i.test(error.message)) throw error;
    });
  }

  /**
   * One command on the admin connection. Errors are re-thrown without ioredis's copy of the
   * command's arguments (a log line must never carry a password hash or key names), also in
   * the error kept as the cause.
   */
  private async command(name: string, ...args: string[]): Promise<unknown> {
    try {
      return await this.admin.call(name, ...args);
    } catch (error) {
      delete (error as { command?: unknown }).command;
      const message = `${name}${args[0] && /^[A-Z]+$/.test(args[0]) ? ` ${args[0]}` : ''}: ${(error as Error).message}`;
      // A refused command (NOPERM, a wrong argument) will be refused again: fail at once.
      if (/^(NOPERM|WRONGTYPE|ERR (unknown|Error in ACL|syntax))/.test((error as Error).message)) {
        throw new PermanentOfferingError(message);
      }
      throw new Error(message, { cause: error });
    }
  }
}

/** A field of an ACL GETUSER reply (a flat list of names and values). */
function aclField(reply: unknown[] | null, name: string): unknown {
  if (!reply) return undefined;
  const index = reply.findIndex((entry, i) => i % 2 === 0 && entry === name);
  return index >= 0 ? reply[index + 1] : undefined;
}
