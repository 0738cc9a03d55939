import { API_VERSION, GROUP, VERSION } from '../api/v1beta1.js';

/** Where a kind lives in the Kubernetes API. */
export interface Resource {
  apiVersion: string;
  kind: string;
  /** URL prefix: /api/v1 or /apis/<group>/<version>. */
  base: string;
  plural: string;
  namespaced: boolean;
}

function catalogKind(kind: string, plural: string, namespaced: boolean): Resource {
  return { apiVersion: API_VERSION, kind, base: `/apis/${GROUP}/${VERSION}`, plural, namespaced };
}

export const Resources = {
  ClusterServiceBroker: catalogKind('ClusterServiceBroker', 'clusterservicebrokers', false),
  ServiceBroker: catalogKind('ServiceBroker', 'servicebrokers', true),
  ClusterServiceClass: catalogKind('ClusterServiceClass', 'clusterserviceclasses', false),
  ServiceClass: catalogKind('ServiceClass', 'serviceclasses', true),
  ClusterServicePlan: catalogKind('ClusterServicePlan', 'clusterserviceplans', false),
  ServicePlan: catalogKind('ServicePlan', 'serviceplans', true),
  ServiceInstance: catalogKind('ServiceInstance', 'serviceinstances', true),
  ServiceBinding: catalogKind('ServiceBinding', 'servicebindings', true),
  Secret: { apiVersion: 'v1', kind: 'Secret', base: '/api/v1', plural: 'secrets', namespaced: true },
  Namespace: { apiVersion: 'v1', kind: 'Namespace', base: '/api/v1', plural: 'namespaces', namespaced: false },
  ConfigMap: { apiVersion: 'v1', kind: 'ConfigMap', base: '/api/v1', plural: 'configmaps', namespaced: true },
  Event: { apiVersion: 'v1', kind: 'Event', base: '/api/v1', plural: 'events', namespaced: true },
  Lease: {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    base: '/apis/coordination.k8s.io/v1',
    plural: 'leases',
    namespaced: true,
  },
} as const satisfies Record<string, Resource>;

/** Collection path: all namespaces when `namespace` is omitted for a namespaced kind. */
export function collectionPath(resource: Resource, namespace?: string): string {
  const ns = resource.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${resource.base}${ns}/${resource.plural}`;
}

export function objectPath(resource: Resource, name: string, namespace?: string): string {
  return `${collectionPath(resource, namespace)}/${encodeURIComponent(name)}`;
}

/** Cache and queue key: "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(meta: { name: string; namespace?: string }): string {
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}
