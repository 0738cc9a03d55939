import type { Logger } from 'pino';
import type { KubeObject, ServiceClass, ServiceInstance, ServicePlan } from './api/v1beta1.js';
import { ClusterScope, NamespacedScope, type CatalogScope } from './catalog-scope.js';
import { ClusterReader } from './cluster-reader.js';
import { ConditionEvents } from './condition-events.js';
import { isReady } from './conditions.js';
import type { ControllerConfig } from './config.js';
import type { ControllerServices } from './controller-services.js';
import { BY_INSTANCE, createInformers, informerLookup, type Informers } from './informers.js';
import { EventRecorder } from './kube/event-recorder.js';
import type { Informer } from './kube/informer.js';
import type { KubeClient } from './kube/kube-client.js';
import { Resources, objectKey } from './kube/resources.js';
import type { ControllerMetrics } from './metrics.js';
import { ObjectWriter } from './object-writer.js';
import { OsbClientCache } from './osb-client/osb-client-cache.js';
import { BindingReconciler } from './reconcilers/binding-reconciler.js';
import { BrokerReconciler } from './reconcilers/broker-reconciler.js';
import { instanceRefs } from './reconcilers/common.js';
import { InstanceReconciler } from './reconcilers/instance-reconciler.js';
import { WorkQueue, type Reconcile } from './work-queue.js';

/**
 * The catalog controller: one informer per kind feeding one work queue per kind (brokers of
 * both scopes, instances, bindings), each with per-key exponential retry backoff.
 */
export class CatalogController {
  readonly context: ControllerServices;
  private readonly queues: WorkQueue[] = [];
  private readonly clusterBrokerQueue: WorkQueue;
  private readonly brokerQueue: WorkQueue;
  private readonly instanceQueue: WorkQueue;
  private readonly bindingQueue: WorkQueue;
  private readonly instances: InstanceReconciler;
  private started = false;

  constructor(client: KubeClient, config: ControllerConfig, logger: Logger, metrics: ControllerMetrics) {
    this.context = wireServices(client, config, logger, metrics);
    const informers = this.context.informers;

    const queueOptions = {
      concurrency: config.concurrentSyncs,
      baseDelayMs: config.retryBaseDelayMs,
      maxDelayMs: config.retryMaxDelayMs,
    };
    const queue = (name: string, reconcile: Reconcile): WorkQueue => {
      const q = new WorkQueue(name, reconcile, queueOptions, logger.child({ queue: name }), metrics);
      this.queues.push(q);
      return q;
    };
    const clusterBrokers = new BrokerReconciler(this.context, Resources.ClusterServiceBroker);
    const brokers = new BrokerReconciler(this.context, Resources.ServiceBroker);
    this.instances = new InstanceReconciler(this.context, (instance) => this.enqueueBindingsOf(instance, false));
    const bindings = new BindingReconciler(this.context);
    this.clusterBrokerQueue = queue('clusterservicebroker', (key) => clusterBrokers.reconcile(key));
    this.brokerQueue = queue('servicebroker', (key) => brokers.reconcile(key));
    this.instanceQueue = queue('serviceinstance', (key) => this.instances.reconcile(key));
    this.bindingQueue = queue('servicebinding', (key) => bindings.reconcile(key));
    this.wire(informers);
    metrics.watchObjects(() => [
      { kind: 'ClusterServiceBroker', objects: informers.clusterServiceBrokers.list() },
      { kind: 'ServiceBroker', objects: informers.serviceBrokers.list() },
      { kind: 'ServiceInstance', objects: informers.serviceInstances.list() },
      { kind: 'ServiceBinding', objects: informers.serviceBindings.list() },
    ]);
  }

  private wire(informers: Informers): void {
    informers.clusterServiceBrokers.on({
      upsert: (b, previous) =>
        this.clusterBrokerQueue.add(objectKey(b.metadata), { respectBackoff: !isUserChange(b, previous) }),
    });
    informers.serviceBrokers.on({
      upsert: (b, previous) =>
        this.brokerQueue.add(objectKey(b.metadata), { respectBackoff: !isUserChange(b, previous) }),
    });

    // A class or plan that appears, changes or goes: instances waiting on references look again,
    // and its broker checks whether a flagged entry can now be deleted.
    for (const [entries, scope] of [
      [informers.clusterServiceClasses, ClusterScope],
      [informers.clusterServicePlans, ClusterScope],
      [informers.serviceClasses, NamespacedScope],
      [informers.servicePlans, NamespacedScope],
    ] as Array<[Informer<ServiceClass | ServicePlan>, CatalogScope]>) {
      entries.on({
        upsert: (entry, previous) => {
          if (!previous) this.enqueueUnresolvedInstances();
          if (entry.status?.removedFromBrokerCatalog) this.enqueueBrokerOf(scope, entry);
        },
        deleted: () => this.enqueueUnresolvedInstances(),
      });
    }

    informers.serviceInstances.on({
      upsert: (instance, previous) => {
        this.instanceQueue.add(objectKey(instance.metadata), { respectBackoff: !isUserChange(instance, previous) });
        this.enqueueBindingsOf(instance, true);
      },
      deleted: (instance) => {
        this.instances.forget(objectKey(instance.metadata));
        this.enqueueBindingsOf(instance, false);
        // A flagged class or plan may have lost its last user.
        const refs = instanceRefs(this.context, instance);
        if (!('invalid' in refs) && refs.cls) this.enqueueBrokerOf(refs.scope, refs.cls);
      },
    });

    informers.serviceBindings.on({
      upsert: (binding, previous) =>
        this.bindingQueue.add(objectKey(binding.metadata), { respectBackoff: !isUserChange(binding, previous) }),
      // An instance waiting for its bindings to go can now be deprovisioned.
      deleted: (binding) =>
        this.instanceQueue.add(`${binding.metadata.namespace}/${binding.spec.instanceRef?.name}`, {
          respectBackoff: true,
        }),
    });

    // A binding Secret deleted by someone is written again by its binding.
    informers.bindingSecrets.on({
      deleted: (secret) => {
        const owner = secret.metadata.ownerReferences?.find((o) => o.controller && o.kind === 'ServiceBinding');
        if (!owner) return;
        const key = `${secret.metadata.namespace}/${owner.name}`;
        // A binding being deleted removed it itself.
        if (informers.serviceBindings.get(key)?.metadata.deletionTimestamp) return;
        this.bindingQueue.add(key);
      },
    });
  }

  /** Bindings of an instance look again: at once when it became Ready or went, else after any pending retry delay. */
  private enqueueBindingsOf(instance: ServiceInstance, respectBackoff: boolean): void {
    for (const binding of this.context.informers.serviceBindings.byIndex(BY_INSTANCE, objectKey(instance.metadata)))
      this.bindingQueue.add(objectKey(binding.metadata), { respectBackoff });
  }

  private enqueueUnresolvedInstances(): void {
    if (!this.started) return;
    for (const instance of this.context.informers.serviceInstances.list()) {
      if (!isReady(instance.status?.conditions))
        this.instanceQueue.add(objectKey(instance.metadata), { respectBackoff: true });
    }
  }

  private enqueueBrokerOf(scope: CatalogScope, entry: ServiceClass | ServicePlan): void {
    const key = BrokerReconciler.brokerKeyOf(scope, entry);
    if (key) (scope.cluster ? this.clusterBrokerQueue : this.brokerQueue).add(key);
  }

  /** Fills the caches, then starts the queues. */
  async start(): Promise<void> {
    const informers = Object.values(this.context.informers) as Array<Informer<KubeObject>>;
    await Promise.all(informers.map((i) => i.start()));
    this.started = true;
    for (const q of this.queues) q.start();
  }

  /** Stops taking work and waits (at most `timeoutMs`) for reconciles in progress. */
  async stop(timeoutMs: number): Promise<void> {
    for (const informer of Object.values(this.context.informers) as Array<Informer<KubeObject>>) informer.stop();
    await Promise.all(this.queues.map((q) => q.shutdown(timeoutMs)));
    this.context.osbClients.close();
  }
}

/** The reconcilers' services: caches, object writes with their Events, cluster reads, OSB clients. */
function wireServices(
  client: KubeClient,
  config: ControllerConfig,
  logger: Logger,
  metrics: ControllerMetrics,
): ControllerServices {
  const informers = createInformers(client, config, logger);
  const informerOf = informerLookup(informers);
  const events = new EventRecorder(client, 'depot-catalog-controller', logger, config.namespace);
  const objects = new ObjectWriter(client, informerOf, new ConditionEvents(events));
  const cluster = new ClusterReader(client, config.clusterId);
  const osbClients = new OsbClientCache(
    (namespace, name) => cluster.readSecret(namespace, name),
    metrics,
    {
      timeoutMs: config.osbRequestTimeoutMs,
      maxResponseBytes: config.osbMaxResponseBytes,
    },
    logger,
  );
  return { config, logger, client, informers, informerOf, objects, cluster, osbClients, events };
}

/**
 * A change a user made (a new object, a spec edit, a delete, annotations such as depot/abandon,
 * finalizers): handled at once. Anything else (status, resync) waits out a pending retry delay.
 */
function isUserChange(object: KubeObject, previous: KubeObject | undefined): boolean {
  if (!previous) return true;
  if (previous === object) return false;
  const a = object.metadata;
  const b = previous.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    JSON.stringify(a.annotations ?? {}) !== JSON.stringify(b.annotations ?? {}) ||
    JSON.stringify(a.finalizers ?? []) !== JSON.stringify(b.finalizers ?? [])
  );
}
