import type { Logger } from 'pino';
import {
  LABEL,
  type KubeObject,
  type Secret,
  type ServiceBinding,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
  type ServicePlan,
} from './api/v1beta1.js';
import type { ControllerConfig } from './config.js';
import { Informer, type InformerOptions } from './kube/informer.js';
import type { KubeClient } from './kube/kube-client.js';
import { Resources, type Resource } from './kube/resources.js';

/** One cache per kind the controller reads. */
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

/** The cache of a kind named by its resource (for code that serves both scopes). */
export type InformerOf = <T extends KubeObject>(resource: Resource) => Informer<T>;

/** Label on the Secrets the controller writes, so it can watch just those. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'depot-catalog-controller';

/** Index of the bindings cache: "namespace/name" of the instance a binding's spec.instanceRef names. */
export const BY_INSTANCE = 'instance';

/** Indexes of the instances cache, named after the field: the name of the class or plan it refers to. */
export const BY_REF = {
  clusterServiceClassRef: 'clusterServiceClassRef',
  clusterServicePlanRef: 'clusterServicePlanRef',
  serviceClassRef: 'serviceClassRef',
  servicePlanRef: 'servicePlanRef',
} as const;

function refIndexes(): NonNullable<InformerOptions<ServiceInstance>['indexes']> {
  return Object.fromEntries(
    Object.values(BY_REF).map((field) => [
      field,
      (instance: ServiceInstance) => {
        const name = instance.spec[field]?.name;
        return name ? [name] : [];
      },
    ]),
  );
}

/** The informers of every kind, resynced every RESYNC interval; the Secret one sees only ours. */
export function createInformers(client: KubeClient, config: ControllerConfig, logger: Logger): Informers {
  const informer = <T extends KubeObject>(resource: Resource, options: InformerOptions<T> = {}): Informer<T> =>
    new Informer<T>(client, resource, logger, { resyncMs: config.resyncMs, ...options });
  // Classes are looked up by external name and id, plans by the class they belong to (the labels
  // the original kept for these lookups: sha224 hex of the field).
  const classLabels = [LABEL.externalName, LABEL.externalId];
  return {
    clusterServiceBrokers: informer<ServiceBroker>(Resources.ClusterServiceBroker),
    serviceBrokers: informer<ServiceBroker>(Resources.ServiceBroker),
    clusterServiceClasses: informer<ServiceClass>(Resources.ClusterServiceClass, { indexedLabels: classLabels }),
    serviceClasses: informer<ServiceClass>(Resources.ServiceClass, { indexedLabels: classLabels }),
    clusterServicePlans: informer<ServicePlan>(Resources.ClusterServicePlan, {
      indexedLabels: [LABEL.clusterClassRef],
    }),
    servicePlans: informer<ServicePlan>(Resources.ServicePlan, { indexedLabels: [LABEL.classRef] }),
    serviceInstances: informer<ServiceInstance>(Resources.ServiceInstance, { indexes: refIndexes() }),
    serviceBindings: informer<ServiceBinding>(Resources.ServiceBinding, {
      indexes: {
        [BY_INSTANCE]: (b) => (b.spec.instanceRef?.name ? [`${b.metadata.namespace}/${b.spec.instanceRef.name}`] : []),
      },
    }),
    bindingSecrets: informer<Secret>(Resources.Secret, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }),
  };
}

/** Looks an informer up by its resource's kind. */
export function informerLookup(informers: Informers): InformerOf {
  const byKind = new Map<string, Informer<KubeObject>>([
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
  return <T extends KubeObject>(resource: Resource): Informer<T> => {
    const informer = byKind.get(resource.kind);
    if (!informer) throw new Error(`no informer for ${resource.kind}`);
    return informer as unknown as Informer<T>;
  };
}
