import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type {
  Condition,
  ConfigMap,
  KubeObject,
  Namespace,
  Secret,
  ServiceBinding,
  ServiceBroker,
  ServiceClass,
  ServiceInstance,
  ServicePlan,
} from './api/v1beta1.js';
import { ConditionType } from './api/v1beta1.js';
import { findCondition, lastConditionState } from './conditions.js';
import type { ControllerConfig } from './config.js';
import type { EventRecorder } from './kube/event-recorder.js';
import type { Informer } from './kube/informer.js';
import { KubeApiError, type KubeClient } from './kube/kube-client.js';
import { Resources, objectKey, type Resource } from './kube/resources.js';
import type { ControllerMetrics } from './metrics.js';
import { OsbClient } from './osb-client/osb-client.js';
import { agreedApiMinor } from './osb-version.js';

export interface Informers {
  clusterServiceBrokers: Informer<ServiceBroker>;
  serviceBrokers: Informer<ServiceBroker>;
  clusterServiceClasses: Informer<ServiceClass>;
  serviceClasses: Informer<ServiceClass>;
  clusterServicePlans: Informer<ServicePlan>;
  servicePlans: Informer<ServicePlan>;
  serviceInstances: Informer<ServiceInstance>;
  serviceBindings: Informer<ServiceBinding>;
  /** Only the Secrets this controller writes (label MANAGED_BY). */
  bindingSecrets: Informer<Secret>;
}

/** Label on the Secrets the controller writes, so it can watch just those. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'depot-catalog-controller';

/** The broker's auth Secret is missing or lacks a key (ErrorGettingAuthCredentials). */
export class BrokerAuthError extends Error {
  override name = 'BrokerAuthError';
}

/** Reasons whose events are Warnings; every other transition is Normal. */
const NORMAL_REASONS = new Set([
  'FetchedCatalog',
  'ProvisionRequestInFlight',
  'UpdateInstanceRequestInFlight',
  'DeprovisionRequestInFlight',
  'Provisioning',
  'UpdatingInstance',
  'Deprovisioning',
  'ProvisionedSuccessfully',
  'InstanceUpdatedSuccessfully',
  'DeprovisionedSuccessfully',
  'OrphanMitigationSuccessful',
  'BindingRequestInFlight',
  'UnbindingRequestInFlight',
  'Binding',
  'Unbinding',
  'InjectedBindResult',
  'UnboundSuccessfully',
  'DeletedClusterServiceBrokerSuccessfully',
  'DeletedSuccessfully',
]);

/** What every reconciler shares: the API client, the caches, broker clients, events, config. */
export class ControllerContext {
  /** Per broker: the spec and Authorization it was built with, and the client. */
  private readonly osbClients = new Map<
    string,
    { spec: string; authorization: string | undefined; client: OsbClient }
  >();
  private readonly namespaceUids = new Map<string, string>();
  private resolvedClusterId: string | undefined;
  private readonly informersByKind: ReadonlyMap<string, Informer<KubeObject>>;

  constructor(
    readonly client: KubeClient,
    readonly informers: Informers,
    readonly config: ControllerConfig,
    readonly logger: Logger,
    readonly metrics: ControllerMetrics,
    readonly events: EventRecorder,
  ) {
    this.informersByKind = new Map<string, Informer<KubeObject>>([
      [Resources.ClusterServiceBroker.kind, informers.clusterServiceBrokers],
      [Resources.ServiceBroker.kind, informers.serviceBrokers],
      [Resources.ClusterServiceClass.kind, informers.clusterServiceClasses],
      [Resources.ServiceClass.kind, informers.serviceClasses],
      [Resources.ClusterServicePlan.kind, informers.clusterServicePlans],
      [Resources.ServicePlan.kind, informers.servicePlans],
      [Resources.ServiceInstance.kind, informers.serviceInstances],
      [Resources.ServiceBinding.kind, informers.serviceBindings],
      [Resources.Secret.kind, informers.bindingSecrets],
    ] as Array<[string, Informer<KubeObject>]>);
  }

  now(): string {
    return new Date().toISOString();
  }

  informerOf<T extends KubeObject>(resource: Resource): Informer<T> {
    const informer = this.informersByKind.get(resource.kind);
    if (!informer) throw new Error(`no informer for ${resource.kind}`);
    return informer as unknown as Informer<T>;
  }

  /**
   * Writes `status` through the status subresource. `mutate` is applied to a copy of the
   * status of the cached (newest known) object; nothing is written when it changes nothing.
   * `recalculate` then derives fields from the result, and `lastConditionState` always
   * follows the conditions. A 409 Conflict re-reads the object and re-applies both (for up to
   * 10 s). A change of the Ready condition's reason is an Event.
   */
  writeStatus<T extends KubeObject & { status?: S }, S extends object>(
    resource: Resource,
    object: T,
    mutate: (status: S, object: T) => void,
    recalculate?: (status: S, object: T) => void,
  ): Promise<T> {
    const fresh = this.informerOf<T>(resource).get(objectKey(object.metadata)) ?? object;
    return this.retryOnConflict(resource, fresh, async (current) => {
      const before = (current.status ?? {}) as S;
      const next = structuredClone(before);
      mutate(next, current);
      recalculate?.(next, current);
      const state = lastConditionState(conditionsOf(next));
      if (state) (next as { lastConditionState?: string }).lastConditionState = state;
      stripUndefined(next as unknown as Record<string, unknown>);
      if (isDeepStrictEqual(next, before)) return current;
      const written = await this.client.updateStatus<T>(resource, { ...current, status: next });
      this.informerOf<T>(resource).observe(withKind(resource, written));
      this.recordTransition(written, conditionsOf(before), conditionsOf(next));
      return written;
    });
  }

  /** Creates an object and puts it in the cache at once (its ADDED event may come later). */
  async createObject<T extends KubeObject>(resource: Resource, object: T): Promise<T> {
    const created = withKind(resource, await this.client.create<T>(resource, object));
    this.informerOf<T>(resource).observe(created);
    return created;
  }

  /** Updates the object itself (metadata, spec) with the same conflict handling; `mutate` returns false for "nothing to do". */
  updateObject<T extends KubeObject>(resource: Resource, object: T, mutate: (copy: T) => boolean): Promise<T> {
    return this.retryOnConflict(resource, object, async (current) => {
      const copy = structuredClone(current);
      if (!mutate(copy)) return current;
      const written = withKind(resource, await this.client.update<T>(resource, copy));
      // The last finalizer removed: the object is gone, and its DELETED event may already
      // have arrived. It must not come back into the cache.
      const gone = written.metadata.deletionTimestamp && !written.metadata.finalizers?.length;
      if (!gone) this.informerOf<T>(resource).observe(written);
      return written;
    });
  }

  /** Runs `write`; on 409 Conflict reads the object again and retries, every 100 ms for up to 10 s. */
  private async retryOnConflict<T extends KubeObject>(
    resource: Resource,
    object: T,
    write: (current: T) => Promise<T>,
  ): Promise<T> {
    let current = object;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return await write(current);
      } catch (error) {
        if (!(error instanceof KubeApiError && error.isConflict) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
        current = withKind(
          resource,
          await this.client.get<T>(resource, current.metadata.name, current.metadata.namespace),
        );
      }
    }
  }

  private recordTransition(object: KubeObject, before: Condition[] | undefined, after: Condition[] | undefined): void {
    for (const type of [ConditionType.Ready, ConditionType.Failed]) {
      const was = findCondition(before, type);
      const is = findCondition(after, type);
      if (!is || (was && was.reason === is.reason && was.status === is.status && was.message === is.message)) continue;
      if (type === ConditionType.Failed && is.status !== 'True') continue;
      this.events.record(object, NORMAL_REASONS.has(is.reason) ? 'Normal' : 'Warning', is.reason, is.message);
    }
  }

  /** A Secret by API read (not cached: parametersFrom and auth Secrets are not watched). */
  async readSecret(namespace: string, name: string): Promise<Secret | undefined> {
    return this.client.find<Secret>(Resources.Secret, name, namespace);
  }

  /** space_guid and app_guid: the namespace's UID (it never changes, so it is cached). */
  async namespaceUid(namespace: string): Promise<string> {
    const cached = this.namespaceUids.get(namespace);
    if (cached) return cached;
    const object = await this.client.get<Namespace>(Resources.Namespace, namespace);
    const uid = object.metadata.uid ?? namespace;
    this.namespaceUids.set(namespace, uid);
    return uid;
  }

  /** organization_guid and context.clusterid: CLUSTER_ID, else ConfigMap default/cluster-info key `id` (created when missing). */
  async clusterId(): Promise<string> {
    if (this.config.clusterId) return this.config.clusterId;
    if (this.resolvedClusterId) return this.resolvedClusterId;
    const existing = await this.client.find<ConfigMap>(Resources.ConfigMap, 'cluster-info', 'default');
    let id = existing?.data?.id;
    if (!id) {
      const fresh = crypto.randomUUID();
      try {
        await this.client.create<ConfigMap>(Resources.ConfigMap, {
          metadata: { name: 'cluster-info', namespace: 'default' },
          data: { id: fresh },
        });
        id = fresh;
      } catch (error) {
        if (!(error instanceof KubeApiError && error.isAlreadyExists)) throw error;
        id = (await this.client.get<ConfigMap>(Resources.ConfigMap, 'cluster-info', 'default')).data?.id ?? fresh;
      }
    }
    this.resolvedClusterId = id;
    return id;
  }

  /**
   * The OSB client of a broker, speaking the version agreed with it (agreedApiMinor), with
   * credentials from its auth Secret. Cached per broker spec; `fresh` re-reads the Secret
   * (catalog fetches do, so a rotated password is picked up).
   */
  async osbClient(broker: ServiceBroker, fresh = false): Promise<OsbClient> {
    return (await this.brokerConnection(broker, fresh)).atVersion(agreedApiMinor(broker));
  }

  private async brokerConnection(broker: ServiceBroker, fresh: boolean): Promise<OsbClient> {
    const key = `${broker.kind}/${objectKey(broker.metadata)}`;
    const cached = this.osbClients.get(key);
    const spec = JSON.stringify(broker.spec);
    if (cached?.spec === spec && !fresh) return cached.client;
    const authorization = await this.brokerAuthorization(broker);
    if (cached?.spec === spec && cached.authorization === authorization) return cached.client;
    cached?.client.close();
    const brokerName = broker.metadata.name;
    const client = new OsbClient({
      url: broker.spec.url,
      ...(authorization ? { authorization } : {}),
      ...(broker.spec.caBundle ? { caBundle: broker.spec.caBundle } : {}),
      insecureSkipTLSVerify: broker.spec.insecureSkipTLSVerify === true,
      timeoutMs: this.config.osbRequestTimeoutMs,
      observe: (method, status) => this.metrics.osbRequests.inc({ broker: brokerName, method, status }),
    });
    this.osbClients.set(key, { spec, authorization, client });
    return client;
  }

  forgetOsbClient(broker: ServiceBroker): void {
    const key = `${broker.kind}/${objectKey(broker.metadata)}`;
    this.osbClients.get(key)?.client.close();
    this.osbClients.delete(key);
  }

  private async brokerAuthorization(broker: ServiceBroker): Promise<string | undefined> {
    const auth = broker.spec.authInfo;
    const ref = auth?.basic?.secretRef ?? auth?.bearer?.secretRef;
    if (!auth || !ref) return undefined;
    // ClusterServiceBroker names the Secret's namespace; a ServiceBroker's is its own.
    const namespace = broker.kind === 'ServiceBroker' ? broker.metadata.namespace : ref.namespace;
    if (!namespace || !ref.name) throw new BrokerAuthError('authInfo secretRef needs a namespace and a name');
    const secret = await this.readSecret(namespace, ref.name);
    if (!secret) throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" not found`);
    const read = (key: string): string | undefined => {
      const value = secret.data?.[key];
      return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    };
    if (auth.basic?.secretRef) {
      const username = read('username');
      const password = read('password');
      if (username === undefined || password === undefined) {
        throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" must have keys "username" and "password"`);
      }
      return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    const token = read('token');
    if (token === undefined) throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" must have key "token"`);
    return `Bearer ${token}`;
  }

  closeOsbClients(): void {
    for (const { client } of this.osbClients.values()) client.close();
    this.osbClients.clear();
  }
}

/** Objects from the API may lack apiVersion and kind; events and owner references need them. */
function withKind<T extends KubeObject>(resource: Resource, object: T): T {
  object.apiVersion ??= resource.apiVersion;
  object.kind ??= resource.kind;
  return object;
}

function conditionsOf(status: object): Condition[] | undefined {
  return (status as { conditions?: Condition[] }).conditions;
}

function stripUndefined(object: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) delete object[key];
    else if (value && typeof value === 'object' && !Array.isArray(value))
      stripUndefined(value as Record<string, unknown>);
  }
}
