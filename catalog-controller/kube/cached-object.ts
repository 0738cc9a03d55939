import type { KubeObject, ObjectMeta } from '../api/v1beta1.js';

/** kubectl apply's copy of the applied manifest: as large as the object, and never read here. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The object as the informer keeps it: every field but `metadata`, and of `metadata` only what
 * the reconcilers and writers read (managedFields, often larger than the rest of the object,
 * selfLink and the last-applied annotation are left out). The writers never PUT a cached object
 * whole (ObjectWriter sends a merge patch of what changed; a status write changes only status),
 * so what is left out here is kept by the API server.
 */
export function cachedObject<T extends KubeObject>(object: T): T {
  const m = object.metadata;
  const metadata: ObjectMeta = { name: m.name };
  if (m.namespace !== undefined) metadata.namespace = m.namespace;
  if (m.uid !== undefined) metadata.uid = m.uid;
  if (m.resourceVersion !== undefined) metadata.resourceVersion = m.resourceVersion;
  if (m.generation !== undefined) metadata.generation = m.generation;
  if (m.creationTimestamp !== undefined) metadata.creationTimestamp = m.creationTimestamp;
  if (m.deletionTimestamp !== undefined) metadata.deletionTimestamp = m.deletionTimestamp;
  if (m.labels !== undefined) metadata.labels = m.labels;
  if (m.annotations !== undefined) {
    const { [LAST_APPLIED_ANNOTATION]: _applied, ...annotations } = m.annotations;
    metadata.annotations = annotations;
  }
  if (m.finalizers !== undefined) metadata.finalizers = m.finalizers;
  if (m.ownerReferences !== undefined) metadata.ownerReferences = m.ownerReferences;
  return { ...object, metadata };
}
