import type { ServiceBroker, ServiceInstance, ServiceInstanceSpec } from './api/v1beta1.js';
import { LABEL } from './api/v1beta1.js';
import { Resources, type Resource } from './kube/resources.js';

/**
 * Cluster-scoped brokers (ClusterServiceBroker → ClusterServiceClass/Plan) and namespaced ones
 * (ServiceBroker → ServiceClass/Plan) work alike; only kinds and field names differ.
 */
export interface CatalogScope {
  cluster: boolean;
  broker: Resource;
  class: Resource;
  plan: Resource;
  brokerNameField: 'clusterServiceBrokerName' | 'serviceBrokerName';
  /** The class reference, on plans and on instances alike. */
  classRefField: 'clusterServiceClassRef' | 'serviceClassRef';
  instancePlanRefField: 'clusterServicePlanRef' | 'servicePlanRef';
  brokerNameLabel: string;
  classRefLabel: string;
  planRefLabel: string;
  /** Fields of ServiceInstance.spec naming the class and plan, by external name, external id, k8s name. */
  specFields: {
    classExternalName: keyof ServiceInstanceSpec;
    planExternalName: keyof ServiceInstanceSpec;
    classExternalID: keyof ServiceInstanceSpec;
    planExternalID: keyof ServiceInstanceSpec;
    className: keyof ServiceInstanceSpec;
    planName: keyof ServiceInstanceSpec;
  };
}

export const ClusterScope: CatalogScope = {
  cluster: true,
  broker: Resources.ClusterServiceBroker,
  class: Resources.ClusterServiceClass,
  plan: Resources.ClusterServicePlan,
  brokerNameField: 'clusterServiceBrokerName',
  classRefField: 'clusterServiceClassRef',
  instancePlanRefField: 'clusterServicePlanRef',
  brokerNameLabel: LABEL.clusterBrokerName,
  classRefLabel: LABEL.clusterClassRef,
  planRefLabel: LABEL.clusterPlanRef,
  specFields: {
    classExternalName: 'clusterServiceClassExternalName',
    planExternalName: 'clusterServicePlanExternalName',
    classExternalID: 'clusterServiceClassExternalID',
    planExternalID: 'clusterServicePlanExternalID',
    className: 'clusterServiceClassName',
    planName: 'clusterServicePlanName',
  },
};

export const NamespacedScope: CatalogScope = {
  cluster: false,
  broker: Resources.ServiceBroker,
  class: Resources.ServiceClass,
  plan: Resources.ServicePlan,
  brokerNameField: 'serviceBrokerName',
  classRefField: 'serviceClassRef',
  instancePlanRefField: 'servicePlanRef',
  brokerNameLabel: LABEL.brokerName,
  classRefLabel: LABEL.classRef,
  planRefLabel: LABEL.planRef,
  specFields: {
    classExternalName: 'serviceClassExternalName',
    planExternalName: 'servicePlanExternalName',
    classExternalID: 'serviceClassExternalID',
    planExternalID: 'servicePlanExternalID',
    className: 'serviceClassName',
    planName: 'servicePlanName',
  },
};

export function scopeOfBroker(broker: ServiceBroker): CatalogScope {
  return broker.kind === 'ServiceBroker' ? NamespacedScope : ClusterScope;
}

/** Which scope an instance's spec names, or an error message for specs the original's webhook refused. */
export function scopeOfInstance(instance: ServiceInstance): CatalogScope | { invalid: string } {
  const named = (scope: CatalogScope): boolean =>
    Object.values(scope.specFields).some(
      (field) => typeof instance.spec[field] === 'string' && instance.spec[field] !== '',
    );
  const cluster = named(ClusterScope);
  const namespaced = named(NamespacedScope);
  if (cluster && namespaced)
    return { invalid: 'spec names both a ClusterServiceClass/Plan and a ServiceClass/Plan; use one kind' };
  if (!cluster && !namespaced) {
    return {
      invalid:
        'spec must name a class: clusterServiceClassExternalName, clusterServiceClassExternalID or ' +
        'clusterServiceClassName (or the serviceClass… fields)',
    };
  }
  return cluster ? ClusterScope : NamespacedScope;
}

/** "ClusterServiceClass/<as specified>" and the plan as specified, for the printer columns. */
export function userSpecifiedNames(instance: ServiceInstance): { className?: string; planName?: string } {
  const scope = scopeOfInstance(instance);
  if ('invalid' in scope) return {};
  const f = scope.specFields;
  const spec = instance.spec;
  const cls = (spec[f.classExternalName] ?? spec[f.classExternalID] ?? spec[f.className]) as string | undefined;
  const plan = (spec[f.planExternalName] ?? spec[f.planExternalID] ?? spec[f.planName]) as string | undefined;
  return {
    ...(cls ? { className: `${scope.class.kind}/${cls}` } : {}),
    ...(plan ? { planName: plan } : {}),
  };
}
