import type { JsonObject, OriginatingIdentity } from '../../osb/index.js';
import { FINALIZER, type KubeObject, type UserInfo } from '../api/v1beta1.js';
import type { ControllerContext } from '../controller-context.js';
import type { Resource } from '../kube/resources.js';

/** Why an object cannot be acted on yet; written as its Ready condition. */
export class Blocked {
  constructor(
    readonly reason: string,
    readonly message: string,
    /** Terminal until the spec changes (Failed=True), instead of retried. */
    readonly terminal = false,
  ) {}
}

/** A 202 from the broker, polled from memory first; `dueAt` keeps events from bringing polls forward. */
export interface PendingOperation<Operation extends string> {
  operation: Operation;
  /** OSB operation string from the 202 body. */
  osbOperation: string | undefined;
  polls: number;
  /** Not polled before this time (ms). */
  dueAt: number;
}

export function asObject(body: unknown): JsonObject | undefined {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as JsonObject) : undefined;
}

/** X-Broker-API-Originating-Identity from spec.userInfo, as the original sent it; omitted without one. */
export function originatingIdentity(user: UserInfo | undefined): { identity?: OriginatingIdentity } {
  return user ? { identity: { platform: 'kubernetes', value: { ...user } } } : {};
}

/** profile.md, "Kubernetes Context Object". */
export async function kubernetesContext(ctx: ControllerContext, namespace: string | undefined, instanceName: string): Promise<JsonObject> {
  return { platform: 'kubernetes', namespace, clusterid: await ctx.clusterId(), instance_name: instanceName };
}

/** Removes our finalizer (the object then goes, if it was being deleted). */
export async function removeFinalizer(ctx: ControllerContext, resource: Resource, object: KubeObject): Promise<void> {
  await ctx.updateObject(resource, object, (copy) => {
    const before = copy.metadata.finalizers ?? [];
    copy.metadata.finalizers = before.filter((f) => f !== FINALIZER);
    return copy.metadata.finalizers.length !== before.length;
  });
}
