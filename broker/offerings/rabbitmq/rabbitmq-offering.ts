import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
import { ManagementApi, ManagementApiError, segment } from './management-api.js';
import { HASHING_ALGORITHM, hasPassword, rabbitPasswordHash } from './password-hash.js';
import { rabbitmqCredentials } from './rabbitmq-credentials.js';

export interface RabbitmqOfferingOptions {
  /** The management API as an administrator (`http://user:password@host:15672`). */
  serviceUrl: string;
  /** Whether serviceUrl was configured (RABBITMQ_SERVICE_URL set) rather than defaulted. */
  serverConfigured?: boolean;
  /** AMQP host and port written into credentials; default: serviceUrl's host, port 5672. */
  publicHost?: string;
  publicPort?: number;
  logger: Logger;
  /** How often deprovision reports its progress to last_operation. */
  progressIntervalMs?: number;
}

/** Names on the server, derived from ids by hashing: any id maps to a safe vhost and user name. */
export function rabbitmqNames(instanceId: string) {
  const instance = idDigest(instanceId, 24);
  return {
    vhost: `depot-${instance}`,
    /** Every user of the instance's bindings starts with it. */
    userPrefix: `depot-${instance}-`,
  };
}

/**
 * The shapes of Depot's names on a RabbitMQ server, for `depot orphans`, in the order they are
 * removed in: a binding's user, then an instance's vhost.
 */
export const RABBITMQ_NAME_SHAPES = {
  user: /^depot-([0-9a-f]{24})-([0-9a-f]{12})$/,
  vhost: /^depot-([0-9a-f]{24})$/,
};

/** The user of a binding. */
export function rabbitmqUsername(instanceId: string, bindingId: string): string {
  return `${rabbitmqNames(instanceId).userPrefix}${idDigest(bindingId, 12)}`;
}

/** A binding may configure, write and read every resource of its vhost, and nothing elsewhere. */
const BINDING_PERMISSIONS = { configure: '.*', write: '.*', read: '.*' };

/** A user's tags, as RabbitMQ 3.9+ (a list) or earlier (a comma-separated string) gives them. */
const tagList = (tags: string[] | string | undefined): string[] =>
  Array.isArray(tags)
    ? tags
    : String(tags ?? '')
        .split(',')
        .filter(Boolean);

/** How long a vhost's deletion may take (RabbitMQ deletes its queues one by one meanwhile). */
const VHOST_DELETE_TIMEOUT_MS = 10 * 60_000;

/** How many times unbind closes a user's connections that are still listed (100 ms apart). */
const CLOSE_ROUNDS = 50;

interface User {
  name: string;
}
interface UserRecord extends User {
  password_hash: string;
  hashing_algorithm: string;
  tags: string[] | string;
}
interface Permission {
  user: string;
  configure: string;
  write: string;
  read: string;
}
interface Connection {
  name: string;
}
interface Page {
  total_count: number;
}
interface Whoami {
  name: string;
  tags: string[] | string;
}
interface Overview {
  rabbitmq_version?: string;
  product_version?: string;
}

/**
 * The `rabbitmq` offering, on a shared RabbitMQ server driven through its management HTTP API:
 * an instance is a virtual host (`depot-<hash>`); a binding is a user with a random password,
 * no tags (so no management access) and configure/write/read `.*` on that vhost only. Unbind
 * deletes the user (RabbitMQ closes its connections) and closes any connection left; deprovision
 * deletes the instance's users, then the vhost with its queues, exchanges and messages,
 * reporting progress.
 */
export class RabbitmqOffering implements Offering {
  readonly name = 'rabbitmq';
  /** The `shared` plan has no settings. */
  readonly planSettingsSchema: JsonObject = { type: 'object', additionalProperties: false, properties: {} };
  /** RabbitMQ's internal users cannot expire; plans of this offering have no credential lifetime. */
  readonly enforcesCredentialExpiry = false;
  readonly server: string;
  readonly serverConfigured: boolean;
  private readonly api: ManagementApi;
  private readonly endpoint: PublicEndpoint;
  /** The management API's root as applications reach it, without credentials. */
  private readonly management: URL;

  constructor(private readonly options: RabbitmqOfferingOptions) {
    this.api = new ManagementApi({ serviceUrl: options.serviceUrl });
    const admin = new URL(options.serviceUrl);
    this.endpoint = publicEndpoint(options.serviceUrl, 5672, options.publicHost, options.publicPort ?? 5672);
    this.management = new URL(this.api.apiUrl.replace(/api\/$/, ''));
    if (options.publicHost) this.management.hostname = this.endpoint.uriHost;
    const defaultPort = admin.protocol === 'https:' ? 443 : 80;
    this.server = `RabbitMQ at ${serverAddress(options.serviceUrl, defaultPort)} (RABBITMQ_SERVICE_URL)`;
    this.serverConfigured = options.serverConfigured ?? true;
  }

  /** PUT creates the vhost, or sets the same description on one a re-run finds there (its contents stay). */
  async provision(request: InstanceRequest): Promise<ProvisionResult> {
    const { vhost } = rabbitmqNames(request.instanceId);
    await this.api.put(`vhosts/${segment(vhost)}`, {
      description: `Depot service instance ${request.instanceId}`,
      tags: 'depot',
    });
    return {};
  }

  /** The `shared` plan has no settings and instances take no parameters: nothing changes. */
  async update(request: UpdateInstanceRequest): Promise<void> {
    await this.requireVhost(request.instanceId);
  }

  async deprovision(request: InstanceRequest, context: OperationContext): Promise<void> {
    const { vhost, userPrefix } = rabbitmqNames(request.instanceId);
    // Users first: deleting one closes its connections, so nobody declares or publishes
    // anything new while the vhost goes.
    const users = ((await this.api.get<User[]>('users?columns=name')) ?? [])
      .map((u) => u.name)
      .filter((name) => name.startsWith(userPrefix));
    const interval = this.options.progressIntervalMs ?? 1000;
    let reported = Date.now();
    await context.reportProgress(`Deprovisioning: deleted 0 of ${users.length} users.`);
    for (const [i, user] of users.entries()) {
      await this.deleteUser(user);
      if (Date.now() - reported >= interval) {
        await context.reportProgress(`Deprovisioning: deleted ${i + 1} of ${users.length} users.`);
        reported = Date.now();
      }
    }
    await this.deleteVhost(vhost, context, interval);
  }

  async bind(request: BindingRequest): Promise<BindResult> {
    const { instanceId } = request.instance;
    const { vhost } = rabbitmqNames(instanceId);
    await this.requireVhost(instanceId);
    const username = rabbitmqUsername(instanceId, request.bindingId);
    const password = randomBytes(24).toString('base64url');
    // A retried job finds the user there: PUT gives it a new password, nothing else changes.
    await this.putUser(username, password);
    await this.permit(vhost, username);
    const credentials = rabbitmqCredentials({
      username,
      password,
      vhost,
      amqp: this.endpoint,
      management: this.management,
    });
    return { credentials: { ...credentials } };
  }

  /**
   * Drift repair: the vhost (made again, empty, if deleted), and each binding's user with the
   * password the platform holds, no tags, and its permissions on the vhost. Two API calls an
   * instance and one a binding.
   */
  async repair(instance: InstanceRequest, bindings: RecordedBinding[]): Promise<DriftRepair[]> {
    const { vhost } = rabbitmqNames(instance.instanceId);
    const repairs: DriftRepair[] = [];
    if (!(await this.api.get(`vhosts/${segment(vhost)}`))) {
      await this.provision(instance);
      repairs.push({ kind: 'vhost' });
    }
    const granted = (await this.api.get<Permission[]>(`vhosts/${segment(vhost)}/permissions`)) ?? [];
    const permitted = new Set(
      granted
        .filter((p) => (['configure', 'write', 'read'] as const).every((k) => p[k] === BINDING_PERMISSIONS[k]))
        .map((p) => p.user),
    );
    for (const { request, credentials } of bindings) {
      if (typeof credentials.password !== 'string') continue;
      const username = rabbitmqUsername(instance.instanceId, request.bindingId);
      const user = await this.api.get<UserRecord>(`users/${segment(username)}`);
      const loginHolds =
        user?.hashing_algorithm === HASHING_ALGORITHM &&
        hasPassword(user.password_hash, credentials.password) &&
        tagList(user.tags).length === 0;
      if (loginHolds && permitted.has(username)) continue;
      if (!loginHolds) await this.putUser(username, credentials.password);
      await this.permit(vhost, username);
      repairs.push({
        kind: !user ? 'user' : loginHolds ? 'permissions' : 'user_password',
        bindingId: request.bindingId,
      });
    }
    return repairs;
  }

  async unbind(request: BindingRequest): Promise<void> {
    await this.deleteUser(rabbitmqUsername(request.instance.instanceId, request.bindingId));
  }

  /**
   * The API answers as an administrator (the `administrator` tag is needed to create vhosts and
   * users); throws saying what is wrong otherwise.
   */
  async ping(): Promise<void> {
    const whoami = await this.api.get<Whoami>('whoami');
    if (!whoami || !tagList(whoami.tags).includes('administrator')) {
      throw new PermanentOfferingError(
        `the user ${JSON.stringify(whoami?.name ?? '')} of ${this.server} lacks the administrator tag, ` +
          'which creating virtual hosts and users needs',
      );
    }
    const overview = await this.api.get<Overview>('overview');
    const version = overview?.rabbitmq_version ?? overview?.product_version ?? '';
    const [major = 0, minor = 0] = version.split('.').map(Number);
    if (major < 3 || (major === 3 && minor < 8)) {
      throw new PermanentOfferingError(
        `the rabbitmq offering needs RabbitMQ 3.8 or later; ${this.server} runs ${version || 'an unknown version'}`,
      );
    }
  }

  /** Every user and vhost on the server with Depot's names (two requests). */
  async namedObjects(): Promise<NamedObject[]> {
    const users = (await this.api.get<User[]>('users?columns=name')) ?? [];
    const vhosts = (await this.api.get<Array<{ name: string }>>('vhosts?columns=name')) ?? [];
    return namedObjects(
      [...users, ...vhosts].map((object) => object.name),
      RABBITMQ_NAME_SHAPES,
    );
  }

  async removeNamedObject(object: NamedObject): Promise<void> {
    if (object.kind === 'user') await this.deleteUser(object.name);
    if (object.kind === 'vhost') await this.api.delete(`vhosts/${segment(object.name)}`, VHOST_DELETE_TIMEOUT_MS);
  }

  async close(): Promise<void> {}

  /** No tags: the user cannot use the management API or UI, only AMQP. */
  private async putUser(username: string, password: string): Promise<void> {
    await this.api.put(`users/${segment(username)}`, {
      password_hash: rabbitPasswordHash(password),
      hashing_algorithm: HASHING_ALGORITHM,
      tags: '',
    });
  }

  private async permit(vhost: string, username: string): Promise<void> {
    await this.api.put(`permissions/${segment(vhost)}/${segment(username)}`, BINDING_PERMISSIONS);
  }

  /** Deletes a user, then makes sure none of its connections is left open. */
  private async deleteUser(username: string): Promise<void> {
    await this.api.delete(`users/${segment(username)}`);
    await this.closeConnections(username);
  }

  /**
   * Deleting a user already makes RabbitMQ close its connections, but their tracking entries
   * linger a moment, and a DELETE of a connection that is closing may answer 500. So: close
   * what is still listed, one by one (ignoring such answers), until nothing is.
   */
  private async closeConnections(username: string): Promise<void> {
    for (let round = 0; ; round++) {
      const open = (await this.api.get<Connection[]>(`connections/username/${segment(username)}`)) ?? [];
      if (open.length === 0) return;
      if (round >= CLOSE_ROUNDS) {
        throw new ManagementApiError(
          `RabbitMQ management API: ${open.length} connection(s) of ${username} still open after being closed`,
        );
      }
      for (const connection of open) {
        await this.api.delete(`connections/${segment(connection.name)}`).catch((error: Error) => {
          this.options.logger.debug(
            { user: username, reason: error.message },
            'rabbitmq offering: closing a connection',
          );
        });
      }
      await sleep(100);
    }
  }

  /**
   * One DELETE removes the vhost with its queues, exchanges, bindings, policies and permissions,
   * and closes its connections. RabbitMQ deletes the queues one by one meanwhile (a few seconds
   * for thousands): "deleted N of M queues" shows in last_operation while it runs.
   */
  private async deleteVhost(vhost: string, context: OperationContext, interval: number): Promise<void> {
    const path = `vhosts/${segment(vhost)}`;
    const queues = async () =>
      (await this.api.get<Page>(`queues/${segment(vhost)}?page=1&page_size=1&columns=name`))?.total_count;
    const total = await queues();
    if (total === undefined) return; // already gone
    const progress = (left: number) =>
      context.reportProgress(`Deprovisioning: deleted ${total - Math.min(left, total)} of ${total} queues.`);
    await progress(total);
    const deletion = this.api.delete(path, VHOST_DELETE_TIMEOUT_MS);
    let finished = false;
    // Handled here, so that a job told to stop (reportProgress throws) does not wait for it.
    const settled = deletion.then(
      () => void (finished = true),
      () => void (finished = true),
    );
    // While it runs: the queues left, every `interval` (a failed look is no reason to stop).
    while (!finished) {
      await Promise.race([settled, sleep(Math.max(interval, 50))]);
      if (finished) break;
      const left = await queues().catch(() => undefined);
      if (left !== undefined && !finished) await progress(left);
    }
    await deletion;
  }

  private async requireVhost(instanceId: string): Promise<void> {
    const { vhost } = rabbitmqNames(instanceId);
    if (!(await this.api.get(`vhosts/${segment(vhost)}`))) {
      throw new PermanentOfferingError(`the virtual host of service instance ${instanceId} does not exist`);
    }
  }
}
